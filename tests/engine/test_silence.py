"""A library is silent until the application asks: an app that configures nothing sees nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

APP = textwrap.dedent(
    """
    import json, logging, sys
    from cascade import Cascade
    from cascade.testing import ScriptedProvider, judge_json

    mode = sys.argv[1]
    if mode == "stdlib":
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
    elif mode == "structlog":
        import structlog
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))

    def script(request):
        return judge_json(9) if "<<<ANSWER" in request.messages[0].content else "Positive."

    vendors = {name: ScriptedProvider(name, script) for name in ("openai", "google", "anthropic")}
    Cascade("policies/default.yaml", providers=vendors).run("Is 'great phone' positive?")
    """
)


def run_app(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", APP, mode], capture_output=True, text=True, timeout=60, check=True)


def test_an_app_that_configures_nothing_sees_nothing_on_stdout_or_stderr() -> None:
    ran = run_app("nothing")
    assert (ran.stdout, ran.stderr) == ("", "")


def test_one_line_of_stdlib_logging_turns_the_events_on() -> None:
    ran = run_app("stdlib")
    assert ran.stdout == ""
    lines = ran.stderr.splitlines()
    assert [line.split()[1] for line in lines] == ["cascade.answer", "cascade.judge", "cascade.done"]
    assert all(line.startswith("cascade ") and "query_id=" in line for line in lines)
    assert "outcome='accepted'" in lines[-1]


def test_an_app_that_configures_structlog_gets_the_events_through_it() -> None:
    ran = run_app("structlog")
    assert ran.stdout == ""
    assert [n for n in ("cascade.answer", "cascade.judge", "cascade.done") if n in ran.stderr] == [
        "cascade.answer",
        "cascade.judge",
        "cascade.done",
    ]
