from __future__ import annotations

from pathlib import Path

import pytest

from cascade import load_policy
from cascade.routing import parse_label, route_by_rules

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
