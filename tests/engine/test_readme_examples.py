"""The README's offline example runs as written, and prints what it says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(marker: str) -> str:
    found = re.search(rf"<!-- {marker} -->\n```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert found, f"README has no python block after <!-- {marker} -->"
    return found.group(1)


def test_the_offline_example_answers_each_query_at_the_first_stage(tmp_path: Path) -> None:
    ran = subprocess.run(
        [sys.executable, "-c", readme_block("offline-example")],
        cwd=tmp_path,  # an empty folder: the shipped policy is found by name
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = ran.stdout.splitlines()
    assert len(lines) == 2 and ran.stderr == ""
    assert all(line.startswith("nano gpt-5.4-nano 0.9 An answer from gpt-5.4-nano.") for line in lines), lines
