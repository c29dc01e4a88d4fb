"""A routing rule's regex cannot hang the router: rules run on RE2, in time linear in the query, and a pattern
RE2 cannot run that way is refused when the policy loads, with the field and the reason."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade.errors import PolicyError
from cascade.policy import Policy
from cascade.routing import route_by_rules

CATASTROPHIC = [r"^(\w+\s?)+$", r"^(a|aa)+$", r"(x+x+)+y", r"^(([a-z])+.)+[A-Z]([a-z])+$"]


def _policy(*rules: dict[str, Any]) -> Policy:
    return Policy.from_dict({
        "name": "rules", "version": "1",
        "stages": [
            {"name": "mini", "provider": "openai", "model": "gpt-4o-mini", "threshold": 0.8},
            {"name": "sonnet", "provider": "anthropic", "model": "claude-haiku-4-5"},
        ],
        "routing": {"rules": list(rules)},
    }, source="rules.yaml")  # fmt: skip


_CHILD = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from cascade import Cascade
    from cascade.policy import Policy
    from cascade.routing import route_by_rules
    from cascade.testing import ScriptedProvider, judge_json

    patterns, query = json.loads(sys.argv[1])
    out = []
    for pattern in patterns:
        policy = Policy.from_dict({
            "name": "rules", "version": "1",
            "stages": [
                {"name": "mini", "provider": "openai", "model": "gpt-4o-mini", "threshold": 0.8},
                {"name": "sonnet", "provider": "anthropic", "model": "claude-haiku-4-5"},
            ],
            "routing": {"rules": [{"name": "bad", "stage": "sonnet", "regex": pattern}]},
        })
        started = time.perf_counter()
        routed = route_by_rules(policy, query)
        openai = ScriptedProvider("openai", {"gpt-4o-mini": ["an answer", judge_json(9)]})
        anthropic = ScriptedProvider("anthropic", {"claude-haiku-4-5": ["an answer"]})
        router = Cascade(policy, providers={"openai": openai, "anthropic": anthropic})
        result = asyncio.run(router.arun(query))
        out.append([routed, result.route, time.perf_counter() - started])
    print(json.dumps(out))
    """
)


def test_catastrophic_patterns_route_a_41_character_query_at_once() -> None:
    """In a child process, so that before the fix (Python's `re`: over 30 s, then hours) the test fails by its
    time-out instead of hanging the suite; through `route_by_rules` and through `Cascade.arun`."""
    query = "a" * 40 + "!"
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps([CATASTROPHIC, query])],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for pattern, (routed, route, seconds) in zip(CATASTROPHIC, json.loads(done.stdout), strict=True):
        assert routed is None, pattern  # none of them matches "aaa...a!"
        assert route == "default"
        assert seconds < 5.0, (pattern, seconds)
    assert done.stderr == ""


def test_a_matching_query_still_routes() -> None:
    policy = _policy({"name": "words", "stage": "sonnet", "regex": r"^(\w+\s?)+$"})
    assert route_by_rules(policy, "just some plain words") == ("sonnet", "rule:words")
    assert route_by_rules(policy, "not this one!") is None


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"(?<=foo)bar", "invalid regex (RE2 syntax): invalid perl operator: (?<"),
        (r"(a)\1", "invalid regex (RE2 syntax): invalid escape sequence: \\1"),
        (r"end\Z", "invalid regex (RE2 syntax): invalid escape sequence: \\Z"),
        (r"(unclosed", "invalid regex (RE2 syntax): missing ): (unclosed"),
        (r"a.{500}b.{400}c", "regex too large: "),
        (r"((a{100}){100}){100}", "invalid regex (RE2 syntax): invalid repetition size: {100}"),
        ("\ud800", "Input should be a valid string"),
    ],
)
def test_a_pattern_re2_cannot_run_in_linear_time_is_refused_at_load(
    pattern: str, expected: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(PolicyError) as info:
        _policy({"name": "r", "stage": "sonnet", "regex": pattern})
    assert str(info.value).startswith(f"rules.yaml: routing.rules[0].regex: {expected}"), str(info.value)
    assert capfd.readouterr() == ("", "")  # RE2 logs refused patterns to stderr unless told not to


def test_a_query_with_a_lone_surrogate_is_routed() -> None:
    """Traces can hold one (`"\\ud800"` in JSON); `cascade eval` routes trace queries with these rules."""
    policy = _policy({"name": "math", "stage": "sonnet", "regex": r"\bprove\b"})
    assert route_by_rules(policy, "prove \ud800 this") == ("sonnet", "rule:math")
    assert route_by_rules(policy, "\ud800") is None


@settings(max_examples=300, deadline=None)
@given(
    st.text(st.sampled_from("ab()[]{}*+?|\\.^$,0123456789wsdpL<=!:"), min_size=1, max_size=16),
    st.text(max_size=200),
)
def test_any_pattern_loads_or_is_refused_and_a_loaded_one_routes_any_text(pattern: str, text: str) -> None:
    try:
        policy = _policy({"name": "r", "stage": "sonnet", "regex": pattern})
    except PolicyError as exc:
        assert str(exc).startswith("rules.yaml: routing.rules[0].regex: ")
        return
    assert route_by_rules(policy, text) in (None, ("sonnet", "rule:r"))
