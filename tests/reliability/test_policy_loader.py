"""Whatever a policy file holds, loading it gives a `Policy` or a `PolicyError` naming the file and what is wrong:
no `UnicodeDecodeError`, `RecursionError` or `ValueError`, no silently kept duplicate, no version misread.
Shipped policies load by name from anywhere, and a path stays a path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import cascade._paths
from cascade import Cascade
from cascade._policy_file import MAX_POLICY_BYTES
from cascade.errors import PolicyError
from cascade.policy import Policy, load_policy, shipped_policies
from cascade.testing import ScriptedProvider

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = (ROOT / "policies" / "default.yaml").read_text()


def _error(tmp_path: Path, content: str | bytes, name: str = "policy.yaml") -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert all(line.startswith(f"{path}: ") for line in message.splitlines()), message
    return message


def test_a_binary_file_is_not_utf8_text(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
    assert "not UTF-8 text (byte 0x89 at offset 0)" in _error(tmp_path, png)


@pytest.mark.parametrize(
    "nested",
    ["[" * 10_000 + "]" * 10_000, "{a: " * 10_000 + "1" + "}" * 10_000, "- " * 10_000 + "x"],
    ids=["flow lists", "flow mappings", "block lists"],
)
def test_deep_nesting_is_refused_with_its_line(tmp_path: Path, nested: str) -> None:
    message = _error(tmp_path, DEFAULT + "\nextra:\n  " + nested + "\n")
    assert "nested more than 100 levels deep" in message
    assert f"line {DEFAULT.count(chr(10)) + 3}, column " in message  # the line of `nested`


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (DEFAULT + "\nname: again\n", DEFAULT.count("\n") + 2),
        (DEFAULT.replace("    threshold: 0.7\n", "    threshold: 0.7\n    threshold: 0.2\n", 1), None),
    ],
    ids=["top level", "in a stage"],
)
def test_a_key_given_twice_is_refused(tmp_path: Path, text: str, line: int | None) -> None:
    message = _error(tmp_path, text)
    assert "is given twice (first on line" in message
    if line is not None:
        assert f"line {line}, column 1: the key 'name' is given twice (first on line 6)" in message


def test_merge_keys_still_override_without_being_duplicates() -> None:
    text = DEFAULT.replace("judge:\n  provider: openai\n", "judge:\n  <<: *cheap_judge\n  provider: openai\n", 1)
    text = text.replace("description:", "x-judge: &cheap_judge {provider: anthropic, method: json}\ndescription:")
    with pytest.raises(PolicyError, match="x-judge: unknown field"):  # the anchor's own key is not a policy field
        Policy.from_yaml(text)
    merged = yaml.safe_load(text)["judge"]
    assert merged["provider"] == "openai"  # the key written after the merge wins, as YAML says


@pytest.mark.parametrize(
    ("written", "read"),
    [("1.10", "1.10"), ("1.0", "1.0"), ("2", "2"), ("010", "010"), ("2026-11-29", "2026-11-29"), ('"1.10"', "1.10")],
)
def test_a_version_is_read_as_written(written: str, read: str) -> None:
    text = DEFAULT.replace('version: "1.0"', f"version: {written}")
    assert Policy.from_yaml(text).version == read


def test_a_float_version_in_a_dict_is_refused() -> None:
    data = yaml.safe_load(DEFAULT)
    data["version"] = 1.10
    with pytest.raises(PolicyError, match=r"version: a version is text, not the number 1\.1: quote it"):
        Policy.from_dict(data, source="p.yaml")


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        ("max_output_tokens: 1024", "max_output_tokens: 1" + "0" * 5000, "cannot read this value: Exceeds the limit"),
        ("description: GPT", "summary: 2024-13-45\ndescription: GPT", "cannot read this value: month must be in"),
        ('version: "1.0"', "version: true", "version: Input should be a valid string (got True)"),
        ("name: default", "name: \x00", "special characters are not allowed"),
    ],
    ids=["a 5,001-digit int", "a date with month 13", "a boolean version", "a NUL"],
)
def test_values_yaml_cannot_build_are_policy_errors(tmp_path: Path, replace: str, by: str, expected: str) -> None:
    assert expected in _error(tmp_path, DEFAULT.replace(replace, by, 1))


def test_a_huge_file_is_refused_before_parsing(tmp_path: Path) -> None:
    message = _error(tmp_path, DEFAULT + "#" * MAX_POLICY_BYTES)
    assert "larger than 1024 KiB" in message


def test_a_threshold_on_the_last_stage_is_refused() -> None:
    text = DEFAULT.replace(
        "    model: claude-3-5-sonnet-20241022\n", "    model: claude-3-5-sonnet-20241022\n    threshold: 0.9\n"
    )
    with pytest.raises(PolicyError) as info:
        Policy.from_yaml(text, source="p.yaml")
    assert str(info.value) == (
        "p.yaml: stages[2].threshold: the last stage's answer is kept whatever its confidence, so a threshold "
        "there would do nothing: remove it"
    )


def test_an_unknown_field_points_at_a_command_a_wheel_user_has() -> None:
    with pytest.raises(PolicyError, match=r"unknown field \(check the spelling; `cascade policy schema` prints"):
        Policy.from_yaml(DEFAULT + "\nthresold: 0.5\n")


@pytest.mark.parametrize("path", sorted((ROOT / "policies").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_policies_still_load(path: Path) -> None:
    """The cassette tests replay these policies (and policies built in the tests, which the suite loads)."""
    policy = load_policy(path)
    assert policy.stages[-1].threshold is None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_load_or_fail_with_a_policy_error(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "p.yaml"
    path.write_bytes(data)
    try:
        load_policy(path)
    except PolicyError as exc:
        assert str(exc).startswith(f"{path}: ")


yaml_pieces = st.sampled_from(
    ["a: 1\n", "a: 2\n", "[", "]", "{", "}", "- ", "  ", "&x ", "*x", "<<: *x\n", "1e9999", ": "]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(yaml_pieces, max_size=40).map("".join))
def test_yaml_made_of_tricky_pieces_fails_only_with_a_policy_error(text: str) -> None:
    with pytest.raises(PolicyError):
        Policy.from_yaml(text, source="p.yaml")


# -- shipped policies by name (13.1) -----------------------------------------------------------------------


def test_a_shipped_policy_loads_by_name_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_policy("current-models") == load_policy(ROOT / "policies" / "current-models.yaml")
    providers = {name: ScriptedProvider(name) for name in ("openai", "anthropic", "google")}
    assert Cascade.from_policy("current-models", providers=providers).policies.keys() == {"current-models"}


def test_a_path_stays_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("current-models").write_text(DEFAULT)  # a local file that happens to carry a shipped policy's name
    assert load_policy("current-models").name == "default"
    with pytest.raises(PolicyError, match="no such file; the shipped policy of that name loads as 'current-models'"):
        load_policy("policies/current-models.yaml")
    with pytest.raises(PolicyError, match=r"no shipped policy of that name \(shipped: coding-assistant, current"):
        load_policy("no-such-policy")


def test_shipped_policies_are_listed_with_one_line_each() -> None:
    listed = shipped_policies()
    assert list(listed) == sorted(p.stem for p in (ROOT / "policies").glob("*.yaml"))
    assert all(description and "\n" not in description for description in listed.values())
    assert listed["current-models"] == load_policy("current-models").description


def test_in_a_wheel_the_policies_come_from_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wheel has `cascade/_shipped/policies/` (pyproject's force-include) and no repository around it."""
    package = tmp_path / "site-packages" / "cascade"
    (package / "_shipped" / "policies").mkdir(parents=True)
    (package / "_shipped" / "policies" / "only-in-wheel.yaml").write_text(DEFAULT)
    monkeypatch.setattr(cascade._paths, "_PACKAGE", package)
    monkeypatch.chdir(tmp_path)
    assert list(shipped_policies()) == ["only-in-wheel"]
    assert load_policy("only-in-wheel").name == "default"
