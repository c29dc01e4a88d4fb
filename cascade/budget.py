"""The per-query budget: no call is made that could take the query past its cost limit.

Every call is reserved before it is sent at a price that cannot be exceeded: its input counted as UTF-8 bytes
(a byte-level tokeniser never makes more tokens than bytes) plus per-message overhead, and its whole
`max_output_tokens`. Before a stage starts, the cascade also reserves the stage's judge call, whose prompt then
holds an answer not yet written: that part is estimated at `ANSWER_BYTES_PER_TOKEN` bytes per output token, and the
judge call is checked again against its real prompt before it is sent.
"""

from __future__ import annotations

import json
from typing import Any

from cascade.context import QueryContext
from cascade.prices import PriceTable
from cascade.providers.base import CompletionRequest

# Tokens a chat API adds around each message (role markers); generous, so that the bound stays a bound.
MESSAGE_OVERHEAD_TOKENS = 8
# Only for reserving a judge call before the answer it will grade exists (see the module docstring).
ANSWER_BYTES_PER_TOKEN = 4
# What a vendor adds to the prompt when tools or a schema are sent: the definitions in its own format, and a system
# prompt of its own about using them (Anthropic documents 313-346 tokens for it). Generous, like the rest.
TOOLS_OVERHEAD_TOKENS = 1000
# What the judge's instructions and markers add to a query and an answer, typically (for the average-query figures
# of `cascade policy check`; budgets use the real prompt).
JUDGE_PROMPT_OVERHEAD_TOKENS = 350


def input_token_bound(request: CompletionRequest, extra_bytes: int = 0) -> int:
    """At most how many input tokens the request can be billed for."""
    texts = [m.content for m in request.messages]
    if request.system:
        texts.append(request.system)
    calls = [call for m in request.messages for call in m.tool_calls]
    structure: list[dict[str, Any]] = [{"name": c.name, "arguments": c.arguments} for c in calls]
    structure += [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in request.tools]
    if request.output is not None:  # an adapter sends one of the two forms: count both
        structure += [dict(form) for form in (request.output.schema, request.output.strict) if form is not None]
    size = sum(len(text.encode("utf-8", "surrogatepass")) for text in texts) + extra_bytes
    if structure:
        size += len(json.dumps(structure, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        size += TOOLS_OVERHEAD_TOKENS + MESSAGE_OVERHEAD_TOKENS * len(structure)
    return size + MESSAGE_OVERHEAD_TOKENS * len(texts)


def call_cost_bound(prices: PriceTable, request: CompletionRequest, extra_bytes: int = 0) -> float:
    """The most the call can cost: every input byte a token, and the whole output allowance."""
    return prices.cost(request.model, input_token_bound(request, extra_bytes), request.max_output_tokens)


def fits(ctx: QueryContext, cost_usd: float) -> bool:
    """True when the query can still pay `cost_usd` (or has no cost limit)."""
    limit = ctx.spec.cost_limit
    return limit is None or ctx.trace.spent_usd + cost_usd <= limit
