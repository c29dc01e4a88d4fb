"""What the commands print: whole ids and prices at 80 columns and piped, install hints that work when pasted,
Ctrl-C that says what was saved, and `--version`."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from cascade import __version__
from cascade.cli.render import Column, Sheet, money, show
from tests.cli.fakes import Vendor, invoke, read_rows, write_rows

ENTRY = [sys.executable, "-c", "from cascade.cli import main; main()"]
TERMINAL_80 = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "0", "COLUMNS": "80"}
LONG_ERROR = (
    "The server had an error while processing your request. Sorry about that! You can retry your request, or "
    "contact us through our help center if the error persists."
)
ANSI = re.compile(r"\x1b\[")


def all_down(vendor: Vendor, tmp_path: Path) -> Path:
    """A policy whose two stages get only long 500 errors (one retry each)."""
    vendor.down, vendor.error = {""}, LONG_ERROR  # every answer fails
    policy = tmp_path / "down.yaml"
    policy.write_text(
        vendor.policy.read_text().replace("gpt-4o,", "gpt-4o-2024-11-20,").replace("retries: 0", "retries: 1")
    )
    return policy


def test_the_all_failed_table_at_80_columns_is_a_short_list_with_whole_ids(vendor: Vendor, tmp_path: Path) -> None:
    policy = all_down(vendor, tmp_path)
    result = invoke("ask", "What is the capital of Australia?", "--policy", str(policy), env=TERMINAL_80)
    assert result.exit_code == 1, result.output
    plain = ANSI.sub("", re.sub(r"\x1b\[[0-9;]*m", "", result.output))
    assert "gpt-4o-2024-11-20" in plain and plain.count("gpt-4o-mini") == 2 and "…" not in plain
    assert plain.count("ServerError") == 4 and len(plain.splitlines()) < 30
    assert max(len(line) for line in plain.splitlines()) <= 80


def test_piped_output_is_plain_and_whole(vendor: Vendor, tmp_path: Path) -> None:
    policy = all_down(vendor, tmp_path)
    result = invoke("ask", "What is the capital of Australia?", "--policy", str(policy), env={"COLUMNS": "80"})
    assert result.exit_code == 1
    assert not ANSI.search(result.output) and "…" not in result.output
    assert "| big   | answer | gpt-4o-2024-11-20 |" in result.output
    assert all(line == line.rstrip() for line in result.output.splitlines())


def test_one_money_format_per_table_and_no_float_noise() -> None:
    usd = money([0.0008536500000000001, 0.0123, 0.0])
    assert [usd(v) for v in (0.0008536500000000001, 0.0123, 0.0)] == ["$0.00085", "$0.01230", "$0.00000"]
    assert money([2.5, 14.0])(2.5) == "$2.50" and money([])(0.1) == "$0.10"


def test_a_wide_sheet_on_a_narrow_terminal_keeps_ids_and_prices_whole() -> None:
    sheet = Sheet("Calls", [Column("model"), Column("cost", numeric=True), Column("note", text=True)])
    sheet.add("claude-3-5-sonnet-20241022", "$0.0000030", "a note " * 30)
    for width in (40, 80, 200):
        console = Console(width=width, force_terminal=True, record=True)
        show(console, sheet)
        text = console.export_text()
        assert "claude-3-5-sonnet-20241022" in text and "$0.0000030" in text and "…" not in text
        assert max(len(line) for line in text.splitlines()) <= width


def test_route_lines_keep_the_price_and_its_unit_together() -> None:
    result = invoke("demo", env=TERMINAL_80)
    assert result.exit_code == 0, result.output
    plain = re.sub(r"\x1b\[[0-9;]*m", "", result.output)
    assert not re.search(r"^\W*µ\$", plain, re.MULTILINE)  # never a line that starts with the unit alone
    assert re.search(r"\b2,205 µ\$", plain) and "q20" in plain


def test_the_missing_sdk_hint_is_a_command_that_works_when_pasted(vendor: Vendor) -> None:
    code = "import sys; sys.modules['openai'] = None; from cascade.cli import main; main()"
    args = ["ask", "hello", "--policy", str(vendor.policy)]
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "pip install 'cascade-router[openai]'" in result.stderr and "Traceback" not in result.stderr
    assert vendor.server.requests == []


def test_the_demo_hint_names_the_extra_that_installs_vcrpy() -> None:
    code = "import sys; sys.modules['vcr'] = None; from cascade.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", code, "demo"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "pip install 'cascade-router[demo]'" in result.stderr


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"cascade-router {__version__}"


def test_ctrl_c_says_what_was_saved_and_a_rerun_resumes(vendor: Vendor, tmp_path: Path) -> None:
    vendor.delay_s = 0.2
    queries = [{"id": f"q{i}", "query": f"question {i}"} for i in range(12)]
    source, out = write_rows(tmp_path / "q.jsonl", queries), tmp_path / "r.jsonl"
    args = ["run", "--policy", str(vendor.policy), "-i", str(source), "-o", str(out), "-c", "2"]
    child = subprocess.Popen([*ENTRY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while (not out.exists() or out.read_bytes().count(b"\n") < 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=30)
    assert child.returncode == 130, stderr
    saved = read_rows(out)
    assert 3 <= len(saved) < 12 and all(row["ok"] for row in saved)
    assert f"interrupted: {len(saved)} rows saved in {out}" in stderr and "rerun the same command to resume" in stderr
    assert "Traceback" not in stderr + stdout
    vendor.delay_s = 0.0
    rerun = invoke(*args)
    assert rerun.exit_code == 0 and f"resuming: {len(saved)} of 12 rows already done" in rerun.output
    assert sorted(row["id"] for row in read_rows(out)) == sorted(q["id"] for q in queries)
    assert json.loads(out.read_bytes().split(b"\n")[0])["id"] == saved[0]["id"]
