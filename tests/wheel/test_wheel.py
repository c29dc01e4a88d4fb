"""A pip user's first hour: the wheel, installed with `[all]` into a fresh venv, used from an empty folder.

Slow (it builds the wheel and installs every extra, about a minute with pip's cache), so it is marked `slow`;
`.ci/run` runs it. Nothing here reads the clone: every command runs in an empty temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


class Installed:
    def __init__(self, env: Path, folder: Path) -> None:
        self.bin = env / "bin"
        self.folder = folder

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        # No key of any vendor, no base URL, no clone on the path: what a new user has.
        clean = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL")) and k != "PYTHONPATH"}
        ran = subprocess.run(args, cwd=self.folder, env=clean, input=stdin, capture_output=True, text=True, timeout=300)
        if check and ran.returncode != 0:
            raise AssertionError(f"{args} exited {ran.returncode}\n{ran.stdout}\n{ran.stderr}")
        return ran

    def cascade(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.bin / "cascade"), *args, check=check)

    def python(self, code: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.bin / "python"), "-c", code, check=check)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next(dist.glob("cascade_router-*.whl"))
    env = tmp_path_factory.mktemp("venv")
    venv.create(env, with_pip=True)
    subprocess.run([str(env / "bin" / "pip"), "install", "--quiet", f"{wheel}[all]"], check=True, capture_output=True)
    yield Installed(env, tmp_path_factory.mktemp("empty"))


def test_the_wheel_carries_the_license(installed: Installed) -> None:
    ran = installed.python(
        "import importlib.metadata as m; d = m.distribution('cascade-router'); "
        "print([f.name for f in d.files if 'LICENSE' in f.name]); print(d.metadata['License-Expression'])"
    )
    assert "'LICENSE'" in ran.stdout and "MIT" in ran.stdout


def test_version(installed: Installed) -> None:
    ran = installed.cascade("--version")
    assert re.search(r"\b\d+\.\d+\.\d+\b", ran.stdout)


def test_shipped_policies_are_found_by_name(installed: Installed) -> None:
    listed = installed.cascade("policy", "list").stdout
    assert "current-models" in listed and "default" in listed
    installed.cascade("policy", "check", "current-models")
    schema = json.loads(installed.cascade("policy", "schema").stdout)
    assert "stages" in schema["properties"]
    ran = installed.python("from cascade import Cascade; print(Cascade.from_policy('current-models').policies)")
    assert "current-models" in ran.stdout


def test_a_policy_path_still_works_as_a_path(installed: Installed) -> None:
    policy = installed.folder / "mine.yaml"
    policy.write_text("name: mine\nversion: '1'\nstages:\n  - {name: only, provider: openai, model: gpt-4o-mini}\n")
    installed.cascade("policy", "check", str(policy))
    missing = installed.cascade("policy", "check", "no-such-policy", check=False)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr


def test_the_demo_runs_offline(installed: Installed) -> None:
    ran = installed.cascade("demo")
    assert "replayed" in ran.stdout and "Traceback" not in ran.stderr


def test_a_missing_key_stops_before_the_first_query_naming_every_variable(installed: Installed) -> None:
    ran = installed.cascade("ask", "What is 2 + 2?", check=False)
    assert ran.returncode == 2
    said = ran.stdout + ran.stderr
    assert "api_keys=" in said and "Traceback" not in said
    assert "GEMINI_API_KEY" in said or "OPENAI_API_KEY" in said or "ANTHROPIC_API_KEY" in said


def test_an_app_that_configures_nothing_sees_nothing(installed: Installed) -> None:
    ran = installed.python(
        "from cascade import Cascade\n"
        "from cascade.testing import ScriptedProvider, judge_json\n"
        "def script(r):\n"
        "    return judge_json(9) if '<<<ANSWER' in r.messages[0].content else 'Paris.'\n"
        "vendors = {n: ScriptedProvider(n, script) for n in ('openai', 'google', 'anthropic')}\n"
        "result = Cascade('current-models', providers=vendors).run('Capital of France?')\n"
        "assert result.answer == 'Paris.'\n"
    )
    assert (ran.stdout, ran.stderr) == ("", "")


def test_the_readme_offline_example_runs_from_the_wheel(installed: Installed) -> None:
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"<!-- offline-example -->\n```python\n(.*?)```", readme, re.DOTALL)
    assert code is not None
    ran = installed.python(code.group(1))
    assert len(ran.stdout.splitlines()) == 2 and ran.stderr == ""
