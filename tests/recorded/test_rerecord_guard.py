"""Re-recording stops before it touches a cassette when a vendor cannot be reached."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_rewrite_with_an_unreachable_vendor_stops_before_any_cassette_changes() -> None:
    cassette = ROOT / "cassettes" / "demo" / "default_policy.yaml"
    before = cassette.read_bytes()
    env = {**os.environ, "CASCADE_VENDOR_HOSTS": "vendor.invalid"}
    env.pop("CASCADE_SYNTHESIZE", None)
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/cli", "--record-mode=rewrite"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert "vendor.invalid cannot be reached" in ran.stdout + ran.stderr
    assert cassette.read_bytes() == before
