"""Policies load strictly and every mistake names the file, the field and the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cascade import PolicyError, load_policy
from cascade.policy import Policy

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def _default() -> dict:
    return yaml.safe_load((POLICIES / "default.yaml").read_text())


@pytest.mark.parametrize("path", sorted(POLICIES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_policy_validates(path: Path) -> None:
    policy = load_policy(path)
    assert policy.stages and policy.name
    assert path.read_text().startswith("# yaml-language-server: $schema=policy.schema.json")


def test_default_policy_is_the_design_cascade() -> None:
    policy = load_policy(POLICIES / "default.yaml")
    assert [(s.provider, s.model) for s in policy.stages] == [
        ("openai", "gpt-4o-mini"),
        ("google", "gemini-1.5-flash"),
        ("anthropic", "claude-3-5-sonnet-20241022"),
    ]
    assert (policy.judge.provider, policy.judge.model, policy.judge.method) == ("openai", "gpt-4o-mini", "json")
    assert policy.stages[-1].threshold is None


def test_committed_schema_matches_the_models() -> None:
    committed = json.loads((POLICIES / "policy.schema.json").read_text())
    assert committed == Policy.model_json_schema(), (
        "regenerate with: cascade policy schema > policies/policy.schema.json"
    )


def _error(data: object, source: str = "policies/x.yaml") -> str:
    with pytest.raises(PolicyError) as info:
        Policy.from_dict(data, source=source)
    return str(info.value)


def test_threshold_out_of_range_names_file_field_and_value() -> None:
    data = _default()
    data["stages"][1]["threshold"] = 1.5
    assert _error(data) == "policies/x.yaml: stages[1].threshold: Input should be less than or equal to 1 (got 1.5)"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["stages"][0].update(provider="mistral"), "stages[0].provider: Input should be 'openai'"),
        (lambda d: d["stages"][2].update(model="gpt-9000"), "stages[2].model: no price for model 'gpt-9000'"),
        (lambda d: d["stages"][1].update(name="mini"), "stages[1].name: duplicate stage name 'mini'"),
        (lambda d: d.update(stages=[]), "stages: List should have at least 1 item"),
        (lambda d: d["routing"]["rules"][0].update(stage="opus"), "routing.rules[0].stage: no stage named 'opus'"),
        (lambda d: d["stages"][0].pop("threshold"), "stages[0].threshold: required on every stage but the last"),
        (lambda d: d["stages"][0].update(thresold=0.5), "stages[0].thresold: unknown field"),
        (lambda d: d["judge"].update(method="vibes"), "judge.method: Input should be 'json' or 'logprobs'"),
        (lambda d: d.update(on_error="ignore"), "on_error: Input should be 'escalate' or 'raise'"),
        (lambda d: d["routing"]["rules"][1].update(regex="(unclosed"), "routing.rules[1].regex: invalid regex"),
        (lambda d: d.update(providers={"openai": {"backend": "genai"}}), "providers.openai.backend: only the google"),
        (lambda d: d.pop("name"), "name: Field required"),
        (lambda d: d["budget"].update(max_cost_usd=-1), "budget.max_cost_usd: Input should be greater than 0"),
    ],
)
def test_invalid_policies_say_where_and_what(mutate, expected: str) -> None:
    data = _default()
    mutate(data)
    message = _error(data)
    assert message.startswith("policies/x.yaml: ")
    assert expected in message


def test_yaml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nversion: 1\nstages:\n  - name: [unclosed\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert str(path) in str(info.value)
    assert "YAML syntax error: line 5" in str(info.value)


def test_yaml_is_read_with_the_safe_loader(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\nversion: 1\n")
    with pytest.raises(PolicyError, match="YAML"):
        load_policy(path)


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read file"):
        load_policy(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(PolicyError, match="must be a mapping"):
        load_policy(tmp_path / "list.yaml")


def test_price_override_makes_an_unknown_model_valid() -> None:
    data = _default()
    data["stages"][2]["model"] = "my-finetune"
    data["prices"] = {"my-finetune": {"input": 1.0, "output": 2.0}}
    policy = Policy.from_dict(data)
    assert policy.price_table().cost("my-finetune", 1_000_000, 1_000_000) == pytest.approx(3.0)


def test_policy_error_is_a_usage_error() -> None:
    from cascade.errors import UsageError

    assert issubclass(PolicyError, UsageError)
