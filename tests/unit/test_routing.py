from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade import load_policy
from cascade.policy import RoutingRule
from cascade.routing import parse_label, route_by_rules, rule_matches

POLICY = load_policy(Path(__file__).resolve().parents[2] / "policies" / "default.yaml")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Is this review positive? 'Great phone'", None),
        (
            "Refactor the payment module across files in our repository to use async IO.",
            ("sonnet", "rule:multi-file-coding"),
        ),
        ("Prove that the square root of 2 is irrational.", ("sonnet", "rule:mathematics")),
        ("Compute the integral of x^2 from 0 to 3.", ("sonnet", "rule:mathematics")),
        ("Which module should I import for JSON?", None),  # one keyword is not enough
        ("Proven recipes for banana bread?", None),  # whole words only
    ],
)
def test_default_complexity_matrix(query: str, expected: tuple[str, str] | None) -> None:
    assert route_by_rules(POLICY, query) == expected


@pytest.mark.parametrize(
    ("reply", "label"),
    [
        ("low", "low"),
        ("High.", "high"),
        ("Label: medium", "medium"),
        ("low or high", None),
        ("unsure", None),
        (None, None),
    ],
)
def test_parse_label(reply: str | None, label: str | None) -> None:
    assert parse_label(reply) == label


# A keyword rule counts distinct keywords found as whole words, case-insensitive; occurrences may overlap.
_WORDS = st.sampled_from(["module", "modules", "files", "multiple files", "Stack trace", "c++", "é", "a.b", "x"])


@settings(max_examples=300, deadline=None)
@given(
    keywords=st.lists(_WORDS, min_size=1, max_size=4),
    pieces=st.lists(st.one_of(_WORDS, st.sampled_from([" ", "-", "_", "s", "MODULE", ".", "\n"])), max_size=12),
    min_keywords=st.integers(1, 4),
)
def test_keyword_rule_counts_each_keyword_on_its_own(keywords: list[str], pieces: list[str], min_keywords: int) -> None:
    text = "".join(pieces)
    rule = RoutingRule(name="r", stage="sonnet", keywords=keywords, min_keywords=min(min_keywords, len(keywords)))
    per_keyword = sum(
        1 for kw in set(keywords) if re.search(r"(?<!\w)" + re.escape(kw) + r"(?!\w)", text, re.IGNORECASE)
    )
    assert rule_matches(rule, text) == (per_keyword >= rule.min_keywords)
