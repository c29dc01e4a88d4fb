"""The four adapters the recorded tests run against, and what each vendor sends back in each situation.

A `Vendor` writes replies in the vendor's own wire format (`reply`, the `cascade.testing.wire` builder with the
vendor's field names) and holds the few facts a shared test checks the adapter against: the model the vendor says
answered, its prices, its error bodies, the adapter's words for a reply it cannot read. Shared tests ask for a
situation (`answer`, `rate_limited`, ...); vendor-specific tests call `reply` with what only that vendor sends.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from cascade.policy import Policy
from cascade.providers import DEFAULT_BASE_URL_ENV, DEFAULT_KEY_ENV, get_provider_class
from cascade.providers.base import Provider, ProviderSettings
from cascade.testing import FakeVendorServer, wire
from cascade.testing.wire import FakeReply

QUESTION = "What is 2 + 2? Reply with the number only."
SYSTEM = "You are a terse calculator."
CONVERSATION = [
    {"role": "user", "content": QUESTION},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": "And that times 3?"},
]
# A judge's first token and its top log-probabilities: the expected score is 8.1 out of 10.
SCORE_LOGPROBS = {"8": math.log(0.7), "9": math.log(0.2), "7": math.log(0.1)}


@dataclass(frozen=True)
class Vendor(ABC):
    """One adapter: `id` names it in test ids and is its cassette folder (`cassettes/<id>/`)."""

    id: str
    model: str
    served_by: str  # the model id the vendor says answered
    price: tuple[float, float]  # USD per million input and output tokens (list prices, from genai-prices)
    backend: str | None = None

    provider: ClassVar[str]
    # The field and value that mark a reply stopped at max output tokens, and where the usage is.
    truncation: ClassVar[tuple[str, str]]
    usage_field: ClassVar[str] = "usage"
    request_id_header: ClassVar[str | None]
    overloaded_status: ClassVar[int] = 503
    # The adapter's words for a missing key, for a reply without usage and for a body that is not JSON.
    missing_key_words: ClassVar[str]
    no_usage_words: ClassVar[str] = "no usage"
    not_json_words: ClassVar[str]

    def __str__(self) -> str:
        return self.id

    # -- the policy and the adapter ---------------------------------------------------------------

    def policy(self, *, judge: dict[str, Any] | None = None, **stage: Any) -> Policy:
        """One stage on this vendor (no retries, 256 output tokens unless `stage` says otherwise); with
        `judge`, a judge on the same vendor grades it."""
        data: dict[str, Any] = {
            "name": f"recorded-{self.id}",
            "version": "1",
            "stages": [
                {
                    "name": "only",
                    "provider": self.provider,
                    "model": self.model,
                    "max_output_tokens": 256,
                    "retries": 0,
                    **stage,
                }
            ],
        }
        if judge is not None:
            data["judge"] = {"provider": self.provider, "model": self.model, "retries": 0, **judge}
            data["judge_last_stage"] = True
        if self.backend is not None:
            data["providers"] = {self.provider: {"backend": self.backend}}
        return Policy.from_dict(data)

    def adapter(self) -> Provider:
        """The adapter `Cascade` builds for `policy()`: key and base URL from the default variables."""
        settings = ProviderSettings(
            api_key_env=DEFAULT_KEY_ENV[self.provider],
            base_url_env=DEFAULT_BASE_URL_ENV[self.provider],
            backend=self.backend,
        )
        return get_provider_class(self.provider, self.backend)(settings)

    def base_url(self, server: FakeVendorServer) -> str:
        return server.url

    # -- what the vendor sends ------------------------------------------------------------------------

    @abstractmethod
    def reply(self, text: Any, input_tokens: int, output_tokens: int, **fields: Any) -> FakeReply:
        """A reply from the vendor's wire builder (`fields` in its own names), as served by `served_by`."""

    def answer(self, text: str, *, input_tokens: int, output_tokens: int, truncated: bool = False) -> FakeReply:
        """A finished answer, or one stopped at max output tokens."""
        field, value = self.truncation
        return self.reply(text, input_tokens, output_tokens, **({field: value} if truncated else {}))

    def structured(self, data: Any, *, input_tokens: int, output_tokens: int) -> FakeReply:
        """A structured answer: the JSON as the answer's text (every vendor's native structured output)."""
        return self.answer(json.dumps(data), input_tokens=input_tokens, output_tokens=output_tokens)

    @abstractmethod
    def tool_calls(self, calls: list[dict[str, Any]], *, input_tokens: int, output_tokens: int) -> FakeReply:
        """A turn of tool calls (`{"id", "name", "arguments"}` each), and no text."""

    @abstractmethod
    def streamed(self, texts: list[str], *, input_tokens: int, output_tokens: int, **fields: Any) -> FakeReply:
        """A streamed answer in the vendor's SSE format, one event per text (`fields` in the builder's names)."""

    @abstractmethod
    def overloaded_mid_stream(self, texts: list[str]) -> FakeReply:
        """A stream that sends these texts, then the vendor's overloaded error inside the stream."""

    def scored(self, top_logprobs: Mapping[str, float]) -> FakeReply:
        """A judge's score token with its top log-probabilities (for vendors that return them)."""
        token = max(top_logprobs, key=lambda candidate: top_logprobs[candidate])
        return self.reply(token, 310, 1, top_logprobs=top_logprobs)

    def without_usage(self) -> FakeReply:
        reply = self.answer("4", input_tokens=18, output_tokens=1)
        del reply.body[self.usage_field]
        return reply

    @abstractmethod
    def rate_limited(self, *, retry_after: float) -> FakeReply:
        """A 429 with the vendor's hint for when to try again."""

    @abstractmethod
    def server_error(self) -> FakeReply:
        """A 500."""

    @abstractmethod
    def overloaded(self) -> FakeReply:
        """The vendor's overloaded status (`overloaded_status`)."""

    # -- what the adapter makes of it ----------------------------------------------------------------

    def request_ids(self, reply: FakeReply) -> set[str | None]:
        """The request id the adapter may report for an answer: the request-id header's while synthesizing, the
        body's id on replay (cassettes drop request-id headers)."""
        assert self.request_id_header is not None
        return {reply.headers[self.request_id_header], str(reply.body["id"])}

    def error_body(self, reply: FakeReply) -> Any:
        """The `body` of the adapter's error for an error reply."""
        return reply.body

    def error_words(self, reply: FakeReply) -> list[str]:
        """What the adapter's error message must quote from an error reply."""
        return [reply.body["error"]["message"]]


@dataclass(frozen=True)
class OpenAI(Vendor):
    provider = "openai"
    truncation = ("finish_reason", "length")

    def reply(self, text: Any, input_tokens: int, output_tokens: int, **fields: Any) -> FakeReply:
        return wire.openai_chat(
            text, prompt_tokens=input_tokens, completion_tokens=output_tokens, model=self.served_by, **fields
        )

    def tool_calls(self, calls: list[dict[str, Any]], *, input_tokens: int, output_tokens: int) -> FakeReply:
        return self.reply(None, input_tokens, output_tokens, tool_calls=calls)

    def streamed(self, texts: list[str], *, input_tokens: int, output_tokens: int, **fields: Any) -> FakeReply:
        return wire.openai_stream(
            texts or None, prompt_tokens=input_tokens, completion_tokens=output_tokens, model=self.served_by, **fields
        )

    def overloaded_mid_stream(self, texts: list[str]) -> FakeReply:
        error = {"message": "The server is overloaded.", "type": "server_error", "code": "server_is_overloaded"}
        return self.streamed(texts, input_tokens=20, output_tokens=len(texts), error=error)

    request_id_header = "x-request-id"
    missing_key_words = "OPENAI_API_KEY"
    not_json_words = "is not a completion object but str"

    def base_url(self, server: FakeVendorServer) -> str:
        return server.url + "/v1"

    refusal_text = "I'm sorry, I can't help with that."

    def refusal(self, *, input_tokens: int, output_tokens: int) -> FakeReply:
        return self.reply(None, input_tokens, output_tokens, refusal=self.refusal_text)

    def rate_limited(self, *, retry_after: float) -> FakeReply:
        return wire.openai_error(
            429,
            "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 500, Used 500, Requested 1.",
            type_="requests",
            code="rate_limit_exceeded",
            retry_after=retry_after,
        )

    def server_error(self) -> FakeReply:
        message = "The server had an error while processing your request. Sorry about that!"
        return wire.openai_error(500, message, type_="server_error", code=None)

    def overloaded(self) -> FakeReply:
        message = "The engine is currently overloaded, please try again later."
        return wire.openai_error(503, message, type_="server_error", code=None)

    def error_body(self, reply: FakeReply) -> Any:
        return reply.body["error"]  # the SDK unwraps `{"error": {...}}`


@dataclass(frozen=True)
class Anthropic(Vendor):
    """No log-probabilities on this wire: `scored` does not apply."""

    provider = "anthropic"
    refusal_text = "The request could enable the development of malware."

    def refusal(self, *, input_tokens: int, output_tokens: int) -> FakeReply:
        return self.reply(
            "I can",  # a refusal may cut in after some text: none of it is an answer
            input_tokens,
            output_tokens,
            stop_reason="refusal",
            stop_details={"type": "refusal", "category": "cyber", "explanation": self.refusal_text},
        )

    def reply(self, text: Any, input_tokens: int, output_tokens: int, **fields: Any) -> FakeReply:
        return wire.anthropic_message(
            text, input_tokens=input_tokens, output_tokens=output_tokens, model=self.served_by, **fields
        )

    def tool_calls(self, calls: list[dict[str, Any]], *, input_tokens: int, output_tokens: int) -> FakeReply:
        uses = [{"id": c["id"], "name": c["name"], "input": c["arguments"]} for c in calls]
        return self.reply(None, input_tokens, output_tokens, tool_uses=uses)

    def streamed(self, texts: list[str], *, input_tokens: int, output_tokens: int, **fields: Any) -> FakeReply:
        if "tool_calls" in fields:
            fields["tool_uses"] = [
                {"id": c["id"], "name": c["name"], "input": c["arguments"]} for c in fields.pop("tool_calls")
            ]
        return wire.anthropic_stream(
            texts or None, input_tokens=input_tokens, output_tokens=output_tokens, model=self.served_by, **fields
        )

    def overloaded_mid_stream(self, texts: list[str]) -> FakeReply:
        return self.streamed(texts, input_tokens=20, output_tokens=len(texts), error=("overloaded_error", "Overloaded"))

    truncation = ("stop_reason", "max_tokens")
    request_id_header = "request-id"
    overloaded_status = 529

    def rate_limited(self, *, retry_after: float) -> FakeReply:
        message = "This request would exceed the rate limit for your organization of 50 requests per minute."
        return wire.anthropic_error(429, "rate_limit_error", message, retry_after=retry_after)

    def server_error(self) -> FakeReply:
        return wire.anthropic_error(500, "api_error", "Internal server error")

    def overloaded(self) -> FakeReply:
        return wire.anthropic_error(529, "overloaded_error", "Overloaded")

    missing_key_words = "ANTHROPIC_API_KEY"
    not_json_words = "is not a message object but str"

    def error_words(self, reply: FakeReply) -> list[str]:
        error = reply.body["error"]
        return [f"{error['type']}: {error['message']}"]  # the adapter leads with the error type


@dataclass(frozen=True)
class Gemini(Vendor):
    """google-genai. A 429's hint comes in the body, as a `google.rpc.RetryInfo` detail."""

    provider = "google"
    truncation = ("finish_reason", "MAX_TOKENS")
    # The legacy SDK's REST transport asks for `$alt=json;enum-encoding=int`: its replies number their enums.
    int_enums: ClassVar[bool] = False

    def reply(self, text: Any, input_tokens: int, output_tokens: int, **fields: Any) -> FakeReply:
        return wire.gemini_content(
            text,
            prompt_tokens=input_tokens,
            output_tokens=output_tokens,
            model=self.served_by,
            int_enums=self.int_enums,
            **fields,
        )

    def tool_calls(self, calls: list[dict[str, Any]], *, input_tokens: int, output_tokens: int) -> FakeReply:
        # Gemini 3 gives each call an id; the adapter makes one up for replies without.
        functions = [{"id": c["id"], "name": c["name"], "args": c["arguments"]} for c in calls]
        return self.reply(None, input_tokens, output_tokens, function_calls=functions)

    def streamed(self, texts: list[str], *, input_tokens: int, output_tokens: int, **fields: Any) -> FakeReply:
        if "tool_calls" in fields:
            fields["function_calls"] = [
                {"id": c["id"], "name": c["name"], "args": c["arguments"]} for c in fields.pop("tool_calls")
            ]
        return wire.gemini_stream(
            texts,
            prompt_tokens=input_tokens,
            output_tokens=output_tokens,
            model=self.served_by,
            json_array=self.int_enums,  # the legacy SDK's REST transport reads one JSON array, enums numbered
            **fields,
        )

    def overloaded_mid_stream(self, texts: list[str]) -> FakeReply:
        error = (503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
        return self.streamed(texts, input_tokens=20, output_tokens=len(texts), error=error)

    usage_field = "usageMetadata"
    no_usage_words = "usageMetadata"
    request_id_header = None
    missing_key_words = "GEMINI_API_KEY or GOOGLE_API_KEY"
    not_json_words = "reply body is not JSON"

    def rate_limited(self, *, retry_after: float) -> FakeReply:
        message = "You exceeded your current quota, please check your plan and billing details."
        return wire.gemini_error(429, "RESOURCE_EXHAUSTED", message, retry_delay_s=retry_after)

    def server_error(self) -> FakeReply:
        message = "An internal error has occurred. Please retry or report in AI Studio."
        return wire.gemini_error(500, "INTERNAL", message)

    def overloaded(self) -> FakeReply:
        return wire.gemini_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")

    def request_ids(self, reply: FakeReply) -> set[str | None]:
        return {str(reply.body["responseId"])}  # no request-id header


@dataclass(frozen=True)
class GeminiLegacy(Gemini):
    """google-generativeai (`backend: generativeai`), on the same wire with its own quirks: replies number their
    enums; its protos predate `responseId` (no request id, and no header to fall back on) and
    `thoughtsTokenCount` (the adapter recovers it from the total); it reads a body that is not JSON with protobuf's
    parser, which has its own words for it."""

    int_enums = True
    not_json_words = "Failed to load JSON"

    def request_ids(self, reply: FakeReply) -> set[str | None]:
        return {None}


OPENAI = OpenAI("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", (0.15, 0.60))
ANTHROPIC = Anthropic("anthropic", "claude-haiku-4-5", "claude-haiku-4-5-20251001", (1.00, 5.00))
GOOGLE = Gemini("google", "gemini-2.5-flash", "gemini-2.5-flash", (0.30, 2.50))  # the default backend
GOOGLE_LEGACY = GeminiLegacy("google_legacy", "gemini-2.5-flash", "gemini-2.5-flash", (0.30, 2.50), "generativeai")
VENDORS = (OPENAI, ANTHROPIC, GOOGLE, GOOGLE_LEGACY)


def usd(vendor: Vendor, input_tokens: int, output_tokens: int) -> float:
    """The price of a call without cached tokens, from the published prices."""
    return (input_tokens * vendor.price[0] + output_tokens * vendor.price[1]) / 1e6
