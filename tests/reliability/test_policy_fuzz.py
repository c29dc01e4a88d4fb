"""Whatever a policy document holds, loading it either succeeds or raises `PolicyError` naming the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cascade.errors import PolicyError
from cascade.policy import Policy

BASE = yaml.safe_load((Path(__file__).resolve().parents[2] / "policies" / "default.yaml").read_text())
SOURCE = "fuzz.yaml"

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        ["openai", "google", "anthropic", "json", "logprobs", "mini", "sonnet", "gpt-4o-mini", "(", "escalate"]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=10,
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated_policies(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "extra"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(values)
    return doc


def _check(load: Any) -> None:
    try:
        load()
    except PolicyError as exc:
        message = str(exc)
        assert message.startswith(f"{SOURCE}: "), message
        assert all(line.startswith(f"{SOURCE}: ") and len(line) > len(SOURCE) + 2 for line in message.splitlines())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_policies())
def test_mutated_policies_fail_only_with_policy_error(doc: Any) -> None:
    _check(lambda: Policy.from_dict(doc, source=SOURCE))


@settings(max_examples=150, deadline=None)
@given(values)
def test_arbitrary_documents_fail_only_with_policy_error(doc: Any) -> None:
    _check(lambda: Policy.from_dict(doc, source=SOURCE))


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_yaml_text_fails_only_with_policy_error(text: str) -> None:
    _check(lambda: Policy.from_yaml(text, source=SOURCE))


def test_a_field_error_names_the_field_path() -> None:
    doc = copy.deepcopy(BASE)
    doc["stages"][2]["timeout_s"] = "soon"
    try:
        Policy.from_dict(doc, source=SOURCE)
    except PolicyError as exc:
        assert str(exc).startswith("fuzz.yaml: stages[2].timeout_s: ")
    else:
        raise AssertionError("expected PolicyError")
