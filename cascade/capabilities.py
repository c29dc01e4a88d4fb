"""Which models can do what a query may ask beyond text: a structured answer, tool calls.

A stage whose model cannot serve a query is skipped before any call, with the reason in the result's `skipped`,
as a stage whose context window is too small is. What is known of each vendor's models is below; a model not
listed is taken as able (new models generally are), and a stage's `features:` in the policy overrides both ways.
Sources: the vendors' model and feature pages as of late 2026 (OpenAI structured outputs: gpt-4o-2024-08-06 and
later; Anthropic tool use: Claude 3 and later, structured output there as a forced tool; Gemini response schemas:
1.5 and later, function calling: 1.0 Pro and later, not the Gemma models).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from cascade.policy import Stage

Feature = Literal["structured_output", "tools"]
FEATURES: tuple[Feature, ...] = ("structured_output", "tools")
FEATURE_WORDS: dict[Feature, str] = {"structured_output": "structured output", "tools": "tool calls"}


@dataclass(frozen=True, slots=True)
class _Gap:
    provider: str
    model: re.Pattern[str]
    lacks: frozenset[Feature]
    why: str


def _gap(provider: str, pattern: str, lacks: set[Feature], why: str) -> _Gap:
    return _Gap(provider, re.compile(pattern), frozenset(lacks), why)


_GAPS = (
    # OpenAI: strict json_schema output came with gpt-4o-2024-08-06; the models before it have JSON mode only.
    _gap("openai", r"^gpt-3\.5", {"structured_output"}, "gpt-3.5 has JSON mode, not schemas"),
    _gap(
        "openai", r"^gpt-4(-\d{4}|-32k|-turbo|-vision|$)", {"structured_output"}, "gpt-4 before gpt-4o has no schemas"
    ),
    _gap("openai", r"^gpt-4o-2024-05-13$", {"structured_output"}, "the first gpt-4o snapshot has no schemas"),
    _gap("openai", r"^o1-(mini|preview)", {"structured_output", "tools"}, "o1-mini and o1-preview take text only"),
    # Anthropic: tool use (and with it a forced-tool structured answer) from Claude 3 on.
    _gap("anthropic", r"^claude-(2|instant)", {"structured_output", "tools"}, "Claude 2 has no tool use"),
    # Gemini: function calling from 1.0 Pro, response schemas from 1.5; Gemma over the API has neither.
    _gap(
        "google",
        r"^(models/)?gemini-(1\.0-)?pro(-\d+)?$|^(models/)?gemini-1\.0",
        {"structured_output"},
        "Gemini 1.0 has no response schema",
    ),
    _gap("google", r"^(models/)?gemma", {"structured_output", "tools"}, "Gemma over the API takes text only"),
)


def known_gap(provider: str, model: str, feature: Feature) -> str | None:
    """Why the table says this model cannot do `feature`, or None."""
    for gap in _GAPS:
        if gap.provider == provider and feature in gap.lacks and gap.model.search(model):
            return gap.why
    return None


def can(stage: Stage, feature: Feature, kind: str | None = None) -> tuple[bool, str]:
    """Whether the stage's model can do `feature`, and where that comes from (the policy, or the table). `kind`: the
    API the stage's provider speaks (`Policy.provider_kind`), when its name is not a vendor's."""
    declared = getattr(stage.features, feature) if stage.features is not None else None
    if declared is not None:
        return declared, "the policy's features"
    why = known_gap(kind or stage.provider, stage.model, feature)
    return (False, why) if why else (True, "not known to lack it")


def missing(stage: Stage, wanted: tuple[Feature, ...], kind: str | None = None) -> str | None:
    """The reason the stage cannot serve a query needing `wanted`, or None when it can (`kind`: as for `can`)."""
    lacking = [f for f in wanted if not can(stage, f, kind)[0]]
    if not lacking:
        return None
    return f"{stage.model} cannot do {' and '.join(FEATURE_WORDS[f] for f in lacking)}"
