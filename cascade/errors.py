"""Every error `cascade` raises. Usage errors are raised before any vendor call; run-time errors
describe one vendor call (and are recorded in the trace) or the fate of a whole query.

    CascadeError
    ├── UsageError                      the caller or a policy must change; nothing was sent
    │   ├── PolicyError                 a policy file or dict is invalid (file, field path, problem)
    │   ├── MissingAPIKeyError          names the environment variable to set
    │   ├── MissingDependencyError      names the extra to install (`pip install 'cascade-router[openai]'`)
    │   ├── InvalidQueryError           also a ValueError: empty, non-text or oversized query
    │   ├── InvalidArgumentError        also a ValueError: an argument out of range (`concurrency=0`)
    │   ├── JSONLinesError              a JSON-lines file cannot be used (file, line, problem)
    │   └── TraceError                  a traces or labels file cannot be used (file, line or id, problem)
    ├── ProviderError                   one vendor call failed (provider, model)
    │   ├── VendorHTTPError             status_code, body, retry_after
    │   │   ├── AuthenticationError     401, 403
    │   │   ├── BadRequestError         400, 404, 409, 413, 422
    │   │   ├── RateLimitedError        429
    │   │   └── ServerError             5xx
    │   │       └── OverloadedError     503, and Anthropic's 529
    │   ├── VendorTimeoutError          no reply within the stage's timeout
    │   ├── VendorConnectionError       the vendor could not be reached
    │   ├── MalformedResponseError      a 200 reply with no usable body (not JSON, no text, no usage)
    │   │   └── StreamInterruptedError  a stream that broke or ended before the vendor finished the answer
    │   ├── UnusableAnswerError         a well-formed reply that is not an answer
    │   │   ├── ContentBlockedError     safety block or refusal
    │   │   ├── TruncatedError          stopped at max output tokens
    │   │   └── OutputSchemaError       does not fit the structure asked for (output_type, a tool's parameters)
    │   ├── CircuitOpenError            not sent: the model's circuit breaker is open (retry_in_s)
    │   └── RateLimitWaitError          not sent: no turn under the fleet's rate limit before the deadline
    ├── JudgeError                      a judge reply that is not {"score": 0-10, "reason": ...}
    ├── BudgetExhaustedError            the budget allowed no answer at all (carries the result)
    │   └── SpendLimitError             a fleet spend limit (policy or tenant, per period) did (carries `refusal`)
    ├── CascadeExhausted                every tier failed (carries the result and its attempts)
    └── BatchError                      queries of a batch failed (carries every query's outcome)

Messages never contain API keys: adapters build them from status codes and vendor error bodies, and
`redact()` masks anything key-shaped that a vendor chose to echo back.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cascade.result import CascadeResult

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "BatchError",
    "BudgetExhaustedError",
    "CascadeError",
    "CascadeExhausted",
    "CircuitOpenError",
    "ContentBlockedError",
    "InvalidArgumentError",
    "InvalidQueryError",
    "JSONLinesError",
    "JudgeError",
    "MalformedResponseError",
    "MissingAPIKeyError",
    "MissingDependencyError",
    "OutputSchemaError",
    "OverloadedError",
    "PolicyError",
    "ProviderError",
    "RateLimitWaitError",
    "RateLimitedError",
    "ServerError",
    "SpendLimitError",
    "StreamInterruptedError",
    "TraceError",
    "TruncatedError",
    "UnusableAnswerError",
    "UsageError",
    "VendorConnectionError",
    "VendorHTTPError",
    "VendorTimeoutError",
    "redact",
]

# Vendor key shapes (OpenAI sk-..., Anthropic sk-ant-..., Google AIza...) and bearer tokens.
_KEY_PATTERN = re.compile(
    r"(sk-(?:proj-|ant-)?[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|Bearer\s+[A-Za-z0-9._~+/=\-]+)"
)
_extra_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a key in use so that `redact` masks it even when it has no familiar shape."""
    if value and len(value) >= 6:
        _extra_secrets.add(value)


def redact(text: str) -> str:
    """Mask key-shaped substrings and every key cascade has been given."""
    text = _KEY_PATTERN.sub("***", text)
    for secret in _extra_secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def redact_data(value: Any) -> Any:
    """`redact` applied to every string in a JSON-like value (an error body a vendor sent back)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(v) for v in value]
    return value


class CascadeError(Exception):
    """Base of every error raised by cascade."""


class UsageError(CascadeError):
    """Something the caller or the policy must change; no vendor call was made."""


class PolicyError(UsageError):
    """A policy is invalid. The message reads `FILE: FIELD.PATH: problem`, one line per problem."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        # One line per problem, whatever the document holds: newlines in a message or key are flattened.
        lines = [_one_line(f"{source}: {path}: {msg}" if path else f"{source}: {msg}") for path, msg in problems]
        super().__init__("\n".join(lines))


def _one_line(text: str) -> str:
    return " ".join(text.split()) if any(c in text for c in "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029") else text


class MissingAPIKeyError(UsageError):
    """No API key for a provider. Names the variables that were looked at."""

    def __init__(self, provider: str, env_vars: tuple[str, ...]) -> None:
        self.provider = provider
        self.env_vars = env_vars
        names = " or ".join(env_vars)
        super().__init__(
            f"no API key for {provider}: set {names}, or pass it from Python as "
            f"Cascade(..., api_keys={{{provider!r}: '<key>'}}). To try cascade without keys, run `cascade demo`."
        )


class MissingDependencyError(UsageError):
    """A policy needs a vendor SDK that is not installed."""

    def __init__(self, provider: str, extra: str, module: str) -> None:
        self.provider = provider
        self.extra = extra
        super().__init__(f"provider {provider!r} needs the {module!r} package: pip install 'cascade-router[{extra}]'")


class InvalidQueryError(UsageError, ValueError):
    """The query cannot be sent: empty, not text, or longer than every stage accepts."""


class InvalidArgumentError(UsageError, ValueError):
    """An argument is out of range (for example `concurrency=0`); a ValueError too, for callers that catch those."""


class JSONLinesError(UsageError):
    """A JSON-lines file (queries, results, traces) cannot be used. The message reads `FILE:LINE: problem`."""


class TraceError(UsageError):
    """A traces or labels file cannot be used (`cascade eval`, `tune`): names the file, the line or id, and why."""


class ProviderError(CascadeError):
    """One vendor call failed. `provider` and `model` say which."""

    def __init__(self, message: str, *, provider: str = "", model: str = "") -> None:
        self.provider = provider
        self.model = model
        super().__init__(redact(message))

    @property
    def retryable(self) -> bool:
        """Whether trying the same call again may succeed."""
        return False


class VendorHTTPError(ProviderError):
    """The vendor answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        model: str = "",
        status_code: int | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, provider=provider, model=model)
        self.status_code = status_code
        self.body = redact_data(body)
        self.retry_after = retry_after


class AuthenticationError(VendorHTTPError):
    """401 or 403: the key is wrong, revoked or lacks access."""


class BadRequestError(VendorHTTPError):
    """The vendor rejected the request itself (unknown model, bad parameter, too long)."""


class RateLimitedError(VendorHTTPError):
    """429. `retry_after` holds the vendor's hint in seconds, when it sent one."""

    @property
    def retryable(self) -> bool:
        return True


class ServerError(VendorHTTPError):
    """A 5xx from the vendor."""

    @property
    def retryable(self) -> bool:
        return True


class OverloadedError(ServerError):
    """503, or Anthropic's 529 `overloaded_error`."""


class VendorTimeoutError(ProviderError):
    """No complete reply within the stage's timeout."""

    @property
    def retryable(self) -> bool:
        return True


class VendorConnectionError(ProviderError):
    """The vendor could not be reached (refused, reset, DNS)."""

    @property
    def retryable(self) -> bool:
        return True


class MalformedResponseError(ProviderError):
    """A successful status with a body that is not a usable reply (not JSON, no text, no usage)."""


class StreamInterruptedError(MalformedResponseError):
    """A streamed reply that broke off, or ended without the vendor's word that the answer was complete (no
    finish reason, no final event): never taken as an answer. Retryable: the next try may stream to the end."""

    @property
    def retryable(self) -> bool:
        return True


class UnusableAnswerError(ProviderError):
    """A well-formed reply that is not an answer. Carries the completion: its tokens were billed."""

    def __init__(self, message: str, *, provider: str = "", model: str = "", completion: Any = None) -> None:
        super().__init__(message, provider=provider, model=model)
        self.completion = completion


class ContentBlockedError(UnusableAnswerError):
    """A safety block (Gemini) or a refusal (OpenAI, Anthropic)."""


class TruncatedError(UnusableAnswerError):
    """The answer stopped at the stage's max output tokens."""


class OutputSchemaError(UnusableAnswerError):
    """A structured answer that is not JSON or does not fit its schema, or a tool call whose arguments do not fit
    the tool's parameters (or name no tool offered). Escalated without a judge call; its tokens were billed."""


class CircuitOpenError(ProviderError):
    """The call was not sent: its (provider, model) failed repeatedly and its breaker is open for about
    `retry_in_s` more seconds (`breaker:` in the policy). A stage on it is skipped."""

    def __init__(self, message: str, *, provider: str = "", model: str = "", retry_in_s: float = 0.0) -> None:
        super().__init__(message, provider=provider, model=model)
        self.retry_in_s = retry_in_s


class RateLimitWaitError(ProviderError):
    """The call was not sent: the provider's rate limit (`limits.rate` in the policy) gave it no turn before the
    query's deadline."""


class JudgeError(CascadeError):
    """A judge reply that is not the JSON object (or score token) asked for."""


class BudgetExhaustedError(CascadeError):
    """The per-query budget allowed no answer. `result` holds every attempt made."""

    def __init__(self, message: str, result: CascadeResult) -> None:
        super().__init__(message)
        self.result = result


class SpendLimitError(BudgetExhaustedError):
    """A fleet-wide spend limit (`limits.spend` in the policy: per policy or per tenant, per minute, hour or day)
    allowed no answer. `refusal` says which limit; `result` holds every attempt made."""

    def __init__(self, message: str, result: CascadeResult, refusal: Any = None) -> None:
        super().__init__(message, result)
        self.refusal = refusal


class CascadeExhausted(CascadeError):
    """Every tier failed. `result` holds the full trace; `attempts` is a shortcut to it."""

    def __init__(self, message: str, result: CascadeResult) -> None:
        super().__init__(message)
        self.result = result

    @property
    def attempts(self) -> list[Any]:
        return list(self.result.attempts)


class BatchError(CascadeError):
    """Queries of a batch failed (`run_many` / `arun_many` without `return_exceptions`); nothing is lost.

    `outcomes` has one entry per query in input order: its `CascadeResult`, or the exception it ended with.
    `errors` maps the index of each failed query to its exception. Raised from the first of them.
    """

    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes
        self.errors: dict[int, BaseException] = {
            index: outcome for index, outcome in enumerate(outcomes) if isinstance(outcome, BaseException)
        }
        first = next(iter(self.errors.items()), None)
        detail = f"; the first, query {first[0]}: {type(first[1]).__name__}: {first[1]}" if first else ""
        super().__init__(redact(f"{len(self.errors)} of {len(outcomes)} queries failed{detail}"))
