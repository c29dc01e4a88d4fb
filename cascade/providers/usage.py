"""The token counts each vendor reports beside input and output, read so that every one of them is priced.

Each function takes the vendor's usage object as its SDK parsed it, or the same object as wire JSON (a dict): both
are read alike. What the vendors report (see SDK-NOTES):
- OpenAI: `prompt_tokens_details.cached_tokens` (cache reads, part of `prompt_tokens`; the adapter reads them),
  `prompt_tokens_details.cache_write_tokens` (part of `prompt_tokens`, on models that bill cache writes) and
  `completion_tokens_details.reasoning_tokens` (part of `completion_tokens`, billed as output).
- Anthropic: `cache_creation_input_tokens` (every cache write, apart from `input_tokens`), split by
  `cache_creation.ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens` (billed at 1.25x and 2x the input rate);
  `output_tokens_details.thinking_tokens` (part of `output_tokens`).
- Gemini: `thoughtsTokenCount` beside `candidatesTokenCount` and `cachedContentTokenCount` (cache reads, part of
  `promptTokenCount`). The shared reader (`_gemini_wire`) reads both, the thoughts also from the total where the
  legacy SDK drops the field, so there is nothing more to read here. Writing a Gemini cache is a call of its own
  (and its storage is billed by the hour), so no reply reports a cache write.

A detail count that is missing, null or not a count reads as 0: these figures only refine a price, and a vendor
sending nonsense in one is no reason to fail an answer that came with valid input and output counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class UsageDetail:
    """Counts inside a reply's input and output totals that are billed at rates of their own (0: none reported)."""

    cache_write_tokens: int = 0  # prompt tokens written to the cache, whatever its lifetime
    cache_write_1h_tokens: int = 0  # of those, the ones kept for an hour (the rest: 5 minutes)
    reasoning_tokens: int = 0  # output tokens spent thinking (already part of the output count)


def openai_detail(usage: Any) -> UsageDetail:
    """From a Chat Completions `usage` (`openai.types.CompletionUsage` or its JSON)."""
    prompt = _field(usage, "prompt_tokens_details")
    completion = _field(usage, "completion_tokens_details")
    return UsageDetail(
        cache_write_tokens=_count(prompt, "cache_write_tokens"),
        reasoning_tokens=_count(completion, "reasoning_tokens"),
    )


def anthropic_detail(usage: Any) -> UsageDetail:
    """From a Messages `usage` (`anthropic.types.Usage` or its JSON)."""
    creation = _field(usage, "cache_creation")
    five_minutes = _count(creation, "ephemeral_5m_input_tokens")
    one_hour = _count(creation, "ephemeral_1h_input_tokens")
    # The total is what the adapter adds to the input; the split says how it is billed. Without a split (replies
    # before 1-hour caching existed), every write was a 5-minute one.
    writes = max(_count(usage, "cache_creation_input_tokens"), five_minutes + one_hour)
    return UsageDetail(
        cache_write_tokens=writes,
        cache_write_1h_tokens=one_hour,
        reasoning_tokens=_count(_field(usage, "output_tokens_details"), "thinking_tokens"),
    )


def _field(container: Any, name: str) -> Any:
    if container is None:
        return None
    if isinstance(container, Mapping):
        return container.get(name)
    return getattr(container, name, None)


def _count(container: Any, name: str) -> int:
    return _as_count(_field(container, name))


def _as_count(value: Any) -> int:
    return value if type(value) is int and value > 0 else 0
