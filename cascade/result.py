"""What a query returns: the answer, who gave it, what it cost, and one `Attempt` per vendor call."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, computed_field

from cascade.prices import Rates

AttemptRole = Literal["answer", "judge", "classify"]

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _valid_unicode(value: object) -> object:
    """Text with any lone surrogate replaced by U+FFFD: a vendor may send one as a JSON escape ("\\ud800"), which
    is no character and cannot be written as UTF-8, so a result holding it could not be saved or sent on."""
    return _LONE_SURROGATE.sub("\ufffd", value) if isinstance(value, str) else value


# Every text field that can hold what a vendor sent.
Text = Annotated[str, BeforeValidator(_valid_unicode)]


def _money_json(value: float) -> float:
    """Dollars in JSON to 12 significant digits: sums of prices carry float noise (0.0008536500000000001) that is
    no money anyone was billed; the value kept in Python is exact to the last bit."""
    return float(f"{value:.12g}")


Money = Annotated[float, PlainSerializer(_money_json, when_used="json")]


class AttemptError(BaseModel):
    """Why a vendor call (or a judge reply) failed."""

    model_config = ConfigDict(frozen=True)

    type: str = Field(description="The cascade error class, e.g. RateLimitedError, JudgeError.")
    message: Text
    status_code: int | None = None
    retry_after: float | None = None


class Attempt(BaseModel):
    """One vendor call: an answer, a judge verdict or a routing classification."""

    model_config = ConfigDict(frozen=True)

    stage: str
    role: AttemptRole
    provider: str
    model: str = Field(description="The model asked for (the policy's id).")
    served_by: Text | None = Field(None, description="The model the vendor says answered.")
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = Field(0, description="Prompt tokens written to the cache (part of input_tokens).")
    cache_write_1h_tokens: int = Field(0, description="The cache writes kept for an hour (the rest: 5 minutes).")
    reasoning_tokens: int = Field(0, description="Thinking tokens (part of output_tokens, billed as output).")
    cost_usd: Money = 0.0
    price: Rates | None = Field(
        None, description="The rates cost_usd was worked out at and the price data they come from (None: not priced)."
    )
    latency_s: float = 0.0
    finish_reason: Text | None = None
    confidence: float | None = None
    threshold: float | None = None
    judge_reason: Text | None = None
    label: Text | None = Field(None, description="The classifier's label, for role=classify.")
    request_id: Text | None = None
    retry: int = Field(0, description="0 for the first try of this call, 1 for the first retry, ...")
    error: AttemptError | None = None


class ToolCallResult(BaseModel):
    """A tool the answering model called: run it, and send its result back in a `tool` turn with this id."""

    model_config = ConfigDict(frozen=True)

    id: Text
    name: Text
    arguments: dict[str, Any] = Field(description="Parsed from the model's JSON, checked against the parameters.")
    signature: str | None = Field(
        None, description="Gemini's thought signature: send it back with the call (`extra_content.google`)."
    )


class SkippedStage(BaseModel):
    """A stage not asked, and why: its model cannot do what the query needs, or the query exceeds its window."""

    model_config = ConfigDict(frozen=True)

    stage: str
    reason: str


class PolicyRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: str


class CascadeResult(BaseModel):
    """The outcome of one query. Serializes to JSON with `model_dump_json()`."""

    query_id: str
    answer: Text | None = Field(
        description='The accepted answer\'s text (the JSON of a structured answer; "" for an answer made only of '
        "tool calls); None only when no tier produced one."
    )
    output: Any = Field(
        None,
        description="The structured answer, validated: an instance of the `output_type` model (the parsed JSON for "
        "a schema dict; a dict once read back from JSON). None when no structure was asked for or the answer is "
        "tool calls.",
    )
    tool_calls: list[ToolCallResult] = Field(
        default_factory=list, description="The tools the answer calls, in order (empty: a text answer)."
    )
    stage: str | None = Field(description="The stage whose answer was returned.")
    provider: str | None
    model: str | None
    confidence: float | None = Field(description="The judge's confidence in the answer (None: not judged).")
    accepted: bool = Field(
        description="True when the answer met its stage's threshold or came from the last stage; False when it "
        "is the best earlier answer, returned because later tiers failed or the budget ran out."
    )
    cost_usd: Money = Field(description="Every call of this query, judges and classifier included.")
    flagship_cost_usd: Money = Field(
        description="ESTIMATE: what the last stage alone would have cost for the same input tokens and the "
        "same output length as the returned answer."
    )
    latency_s: float
    escalations: int = Field(description="How many times the query moved to a later stage.")
    budget_exhausted: bool = False
    entry_stage: str
    route: str = Field(description="Why the entry stage: `default`, `rule:NAME` or `classifier:LABEL`.")
    policy: PolicyRef
    skipped: list[SkippedStage] = Field(default_factory=list, description="Stages passed over without a call.")
    attempts: list[Attempt] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def savings_usd(self) -> float:
        """flagship_cost_usd - cost_usd (an estimate, like flagship_cost_usd)."""
        return _money_json(self.flagship_cost_usd - self.cost_usd)

    def stages_tried(self) -> list[str]:
        """Stages that were asked for an answer, in order."""
        seen: list[str] = []
        for attempt in self.attempts:
            if attempt.role == "answer" and attempt.stage not in seen:
                seen.append(attempt.stage)
        return seen
