"""Gemini `generateContent` replies and errors, read from the wire JSON that both Google SDKs receive.

`google-genai` (pydantic models) and the legacy `google-generativeai` (protobuf messages) parse the same JSON into
different objects; each adapter turns its object back into that JSON (camelCase keys, enum names) and the finish
reason, usage and block logic lives here once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeGuard

from cascade.errors import MalformedResponseError, ProviderError
from cascade.providers.base import Completion, FinishReason, error_for_status

_FINISH_REASONS: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    # The model paused and could go on from a continuation token (we turn the SDK's automatic follow-up
    # requests off, so a stage stays one request): the text is incomplete, as with MAX_TOKENS.
    "CONTINUATION": "length",
    "SAFETY": "blocked",
    "RECITATION": "blocked",
    "BLOCKLIST": "blocked",
    "PROHIBITED_CONTENT": "blocked",
    "SPII": "blocked",
    "IMAGE_SAFETY": "blocked",
    "IMAGE_PROHIBITED_CONTENT": "blocked",
    "MODEL_ARMOR": "blocked",
}
_RETRY_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def parse_completion(body: Mapping[str, Any], *, provider: str, requested_model: str, latency_s: float) -> Completion:
    """A `Completion` from a generateContent reply; `MalformedResponseError` when fields we rely on are missing."""

    model = str(body.get("modelVersion") or requested_model)

    def malformed(problem: str) -> MalformedResponseError:
        return MalformedResponseError(f"{provider}: generateContent reply {problem}", provider=provider, model=model)

    # Runs on every Gemini call: plain loops, and `type(...) is dict` before the (slower) Mapping check.
    usage = body.get("usageMetadata")
    if not _is_mapping(usage):
        raise malformed("has no usageMetadata")
    counts: dict[str, int] = {}
    for key in _COUNT_KEYS:
        n = usage.get(key) or 0
        if not isinstance(n, int) or n < 0:
            raise malformed(f"has unusable token counts: {dict(usage)!r}")
        counts[key] = n
    if not counts["promptTokenCount"]:
        raise malformed(f"has unusable token counts: {dict(usage)!r}")
    prompt, candidates_tokens, thoughts = (
        counts["promptTokenCount"],
        counts["candidatesTokenCount"],
        counts["thoughtsTokenCount"],
    )
    if "thoughtsTokenCount" not in usage:
        # Thinking is billed as output. The legacy SDK's protos predate `thoughtsTokenCount` and drop it, but the
        # total still counts it: recover it from the total (no tools are sent, so nothing else hides there).
        thoughts = max(0, counts["totalTokenCount"] - prompt - candidates_tokens - counts["toolUsePromptTokenCount"])
    common: dict[str, Any] = {
        "input_tokens": prompt,
        "output_tokens": candidates_tokens + thoughts,
        "reasoning_tokens": thoughts,
        "cached_input_tokens": counts["cachedContentTokenCount"],
        "model": model,
        "latency_s": latency_s,
        "provider": provider,
        "request_id": body.get("responseId"),
    }

    candidates = body.get("candidates")
    if not candidates:
        feedback = body.get("promptFeedback") or {}
        block_reason = feedback.get("blockReason")
        if not block_reason:
            raise malformed("has neither candidates nor promptFeedback.blockReason")
        refusal = feedback.get("blockReasonMessage") or f"prompt blocked: {block_reason}"
        return Completion(text=None, finish_reason="blocked", refusal=refusal, **common)

    candidate = candidates[0]
    if not _is_mapping(candidate):
        raise malformed("has a candidate that is not an object")
    raw_reason = candidate.get("finishReason")
    if raw_reason is None:
        # A complete (non-streamed) candidate always says why it stopped.
        raise malformed("has a candidate without finishReason")
    # Unknown reasons, including numbers of enums newer than the legacy protos, are "other".
    finish_reason = _FINISH_REASONS.get(raw_reason, "other") if isinstance(raw_reason, str) else "other"
    if finish_reason == "blocked":
        refusal = candidate.get("finishMessage") or f"answer blocked: {raw_reason}"
        return Completion(text=None, finish_reason="blocked", refusal=refusal, **common)

    parts = (candidate.get("content") or {}).get("parts") or []
    texts: list[str] = []
    for part in parts:
        if _is_mapping(part):
            part_text = part.get("text")
            if isinstance(part_text, str) and not part.get("thought"):
                texts.append(part_text)
    text = "".join(texts) if texts else None
    if finish_reason == "stop" and text is None:
        raise malformed("finished with STOP but has no text")
    return Completion(
        text=text,
        finish_reason=finish_reason,
        first_token_logprobs=_first_token_logprobs(candidate),
        **common,
    )


def http_error(status: int, message: str, *, body: Any = None, headers: Any = None, **where: str) -> ProviderError:
    """The cascade error for a Gemini HTTP error; a 429 without `retry-after` takes the body's RetryInfo delay."""
    return error_for_status(status, message, body=body, headers=headers, retry_after=retry_delay(body), **where)


def retry_delay(body: Any) -> float | None:
    """Seconds from a `google.rpc.RetryInfo` detail (`"retryDelay": "37s"`) in an error body, else None."""
    error = body.get("error") if isinstance(body, Mapping) else None
    details = error.get("details") if isinstance(error, Mapping) else None
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, Mapping) and detail.get("@type") == _RETRY_INFO:
            match = _RETRY_DELAY.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def error_message(body: Any, fallback: str) -> str:
    """The `error.message` of a Google error body, the start of a body that is not JSON, else the fallback."""
    if isinstance(body, str) and body.strip():
        return body.strip()[:200]
    error = body.get("error") if isinstance(body, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else None
    return message if isinstance(message, str) and message else fallback


_COUNT_KEYS = (
    "promptTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "cachedContentTokenCount",
    "toolUsePromptTokenCount",
    "totalTokenCount",
)


def _is_mapping(value: Any) -> TypeGuard[Mapping[str, Any]]:
    return type(value) is dict or isinstance(value, Mapping)


def _first_token_logprobs(candidate: Mapping[str, Any]) -> dict[str, float]:
    steps = (candidate.get("logprobsResult") or {}).get("topCandidates") or []
    if not steps:
        return {}
    return {
        c["token"]: float(c["logProbability"])
        for c in steps[0].get("candidates") or []
        if "token" in c and "logProbability" in c
    }
