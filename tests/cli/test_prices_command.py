"""`cascade prices MODEL...` through the real entry point: rates per million tokens, tiers, a policy's average query."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cascade.cli import app
from cascade.prices import data_version

ROOT = Path(__file__).resolve().parents[2]
WIDE = {"COLUMNS": "250"}


def invoke(*args: str):
    return CliRunner().invoke(app, ["prices", *args], env=WIDE)


def _row(output: str, *cells: str) -> list[str]:
    """The table rows (split into cells) that start with these cells."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in output.splitlines() if "|" in line]
    return [row for row in rows if row[: len(cells)] == list(cells)]


def test_rates_of_each_tier_and_an_average_query_of_the_default_policy() -> None:
    result = invoke("claude-sonnet-4-5", "gpt-4o-mini", "--on", "2026-12-01", "-p", str(ROOT / "policies/default.yaml"))
    assert result.exit_code == 0, result.output
    assert "prices of 2026-12-01" in result.output
    source = f"{data_version()}: claude-sonnet-4-5"
    # input, cached input, cache write 5m, cache write 1h, output, context window
    base = ["$3.000", "$0.300", "$3.750", "$6.000", "$15.000", "200,000"]
    assert _row(result.output, "claude-sonnet-4-5", source, "<= 200,000") == [
        ["claude-sonnet-4-5", source, "<= 200,000", *base]
    ]
    long = ["$6.000", "$0.600", "$7.500", "$12.000", "$22.500", "200,000"]
    assert _row(result.output, "claude-sonnet-4-5", source, "> 200,000")[0][3:] == long
    # OpenAI bills no cache write: none is shown.
    mini = _row(result.output, "gpt-4o-mini", f"{data_version()}: gpt-4o-mini", "any")[0]
    assert mini[3:] == ["$0.150", "$0.075", "-", "-", "$0.600", "128,000"]
    # default.yaml's judge is gpt-4o-mini: 1150 tokens in x 0.15 + 30 out x 0.60 = $0.000190500.
    assert "An average query of default v1.0: 500 tokens in, 300 out" in result.output
    # claude-sonnet-4-5: 500 x 3 + 300 x 15 = $0.006 for the answer.
    assert _row(result.output, "claude-sonnet-4-5", "$0.00600", "$0.00019", "$0.00619")


def test_a_price_that_changes_on_a_date_shows_the_day_asked() -> None:
    before = invoke("gemini-3.8-flash", "--on", "2026-12-31")
    after = invoke("gemini-3.8-flash", "--on", "2027-01-01")
    assert before.exit_code == after.exit_code == 0, before.output + after.output
    # input, cached input, ..., output: $0.75 / $0.075 / $3.75 through 2026, doubled from 2027-01-01.
    assert _row(before.output, "gemini-3.8-flash")[0][3:5] == ["$0.750", "$0.075"]
    assert _row(after.output, "gemini-3.8-flash")[0][3:5] == ["$1.50", "$0.15"]


def test_the_policy_s_prices_win_and_price_its_own_models(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "name: mine\nversion: '2'\nstages:\n  - {name: only, provider: openai, model: my-finetune}\n"
        "judge: {provider: openai, model: my-finetune}\n"
        "prices:\n  my-finetune: {input: 1.0, output: 2.0}\n  claude-haiku-4-5: {input: 0.5, output: 2.5}\n"
    )
    result = invoke("claude-haiku-4-5", "my-finetune", "--on", "2026-12-01", "--policy", str(policy))
    assert result.exit_code == 0, result.output
    (haiku,) = _row(result.output, "claude-haiku-4-5", "policy override: claude-haiku-4-5", "any")
    assert haiku[3:] == ["$0.50", "-", "-", "-", "$2.50", "200,000"]  # the listed context window stays
    # An average query: 500 x 1.0 + 300 x 2.0 = $0.0011; the judge (my-finetune) 1150 x 1.0 + 30 x 2.0 = $0.00121.
    assert _row(result.output, "my-finetune", "$0.0011", "$0.0012", "$0.0023")


def test_a_model_nobody_prices_is_refused_with_the_fix() -> None:
    result = CliRunner().invoke(app, ["prices", "gpt-4o-mini", "no-such-model"], env=WIDE)
    assert result.exit_code == 2
    assert "no price for model 'no-such-model': add it under `prices:` in the policy" in result.output
