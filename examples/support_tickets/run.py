"""The support-ticket classifier, end to end and offline: collect, eval, tune, then classify with the tuned policy.

    python examples/support_tickets/run.py [--workdir DIR]

The vendors are simulated (fake_vendors.py) behind a local `cascade.testing.FakeVendorServer`; everything else is
real: the `cascade` commands, the vendors' own SDKs and wire formats, structured output on every stage. The figures
it prints describe the simulation, not any real model.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fake_vendors import Vendors  # noqa: E402
from ticket import Ticket  # noqa: E402

from cascade import Cascade  # noqa: E402
from cascade.testing import FakeVendorServer  # noqa: E402

# Any value will do for the keys: the fake server checks none. Each vendor's base URL points at the server.
FAKE_KEYS = {"OPENAI_API_KEY": "fake-key", "ANTHROPIC_API_KEY": "fake-key", "GEMINI_API_KEY": "fake-key"}


def cascade_command(*args: str, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> str:
    """Run one `cascade` command as a user would, print it and what it printed; its output."""
    command = [sys.executable, "-m", "cascade", *args]
    print(f"\n$ cascade {shlex.join(args)}")
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    print(done.stdout.rstrip())
    if done.returncode not in ok:
        print(done.stderr.rstrip(), file=sys.stderr)
        raise SystemExit(f"cascade {args[0]} exited with {done.returncode}")
    return done.stdout


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="where traces and the tuned policy go (default: a temp dir)")
    workdir = parser.parse_args(argv).workdir or Path(tempfile.mkdtemp(prefix="support-tickets-"))
    workdir.mkdir(parents=True, exist_ok=True)
    tickets, policy = HERE / "tickets.jsonl", HERE / "policy.yaml"
    traces, tuned = workdir / "traces.jsonl", workdir / "tuned.yaml"

    with FakeVendorServer(Vendors(tickets)) as server:
        urls = {
            "OPENAI_BASE_URL": server.url + "/v1",
            "ANTHROPIC_BASE_URL": server.url,
            "GOOGLE_GEMINI_BASE_URL": server.url,
        }
        env = {**os.environ, **FAKE_KEYS, **urls, "COLUMNS": "120"}
        # 1. Every stage answers (as a Ticket) and is judged for every ticket; --grader json compares each answer
        #    field by field with the ticket's reference. Exit 1 says a stage failed for some tickets: here the
        #    cheapest model's answers that do not fit the schema, kept in the traces as unanswered (a rerun of the
        #    same command would ask those stages again).
        collect = ["collect", "--policy", str(policy), "--input", str(tickets), "--output", str(traces)]
        cascade_command(*collect, "--grader", "json", env=env, ok=(0, 1))
        # 2. The policy as written, replayed on the traces (no vendor call).
        cascade_command("eval", "--policy", str(policy), "--traces", str(traces), env=env)
        # 3. The cheapest thresholds keeping 95% of the last stage's quality (in sample: 44 tickets are too few for a
        #    guarantee at that level; see the README on --confidence).
        tune = ["tune", "--policy", str(policy), "--traces", str(traces), "--target", "0.95", "--confidence", "0"]
        cascade_command(*tune, "--output", str(tuned), env=env)
        # 4. The tuned policy from Python: `result.output` is a validated Ticket.
        os.environ.update({**FAKE_KEYS, **urls})
        router = Cascade(tuned)
        print("\nclassified with the tuned policy:")
        for ticket in [
            "Since this morning's update no one can log in, we get a 500 error on every page.",
            "Could you add more colour themes?",
            "I was charged for the annual plan but I picked monthly, please fix.",
        ]:
            result = router.run(ticket, output_type=Ticket)
            assert isinstance(result.output, Ticket)
            tried = " -> ".join(result.stages_tried())
            print(f"  {result.output.category.value:<16} {result.output.priority.value:<7} via {tried:<22} {ticket}")
    return workdir


if __name__ == "__main__":
    print(f"\nfiles in {main()}")
