"""Routing-rule regexes on RE2, whose matching time is linear in the query, whatever the pattern.

A rule's regex runs on every query, before any deadline can fire: on Python's `re`, `^(\\w+\\s?)+$` took over
30 s on a 41-character query, with the event loop blocked. RE2 never backtracks. It refuses what it cannot run in
linear time (backreferences, lookaround) when the policy loads, and the size of the compiled program, capped at
`MAX_PROGRAM` instructions, bounds the time per character (see docs/reliability.md for the figures).
"""

from __future__ import annotations

from typing import Any

import re2

MAX_PROGRAM = 1_000


def compiled(pattern: str) -> Any:
    """The pattern compiled case-insensitive (RE2 keeps its own cache of compiled patterns)."""
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # RE2 would print a refused pattern to stderr
    return re2.compile(pattern, options)


def problem(pattern: str) -> str | None:
    """Why a rule cannot use `pattern`, or None when it can."""
    try:
        program = compiled(pattern).programsize
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        return f"invalid regex (RE2 syntax): {reason}"
    if program > MAX_PROGRAM:
        return (
            f"regex too large: {program} RE2 instructions, at most {MAX_PROGRAM} "
            "(large counted repeats such as .{500} are the usual cause)"
        )
    return None


def search(pattern: str, text: str) -> bool:
    """Whether `pattern` occurs in `text`. Lone surrogates (possible in traces) reach RE2 as their raw bytes."""
    return compiled(pattern).search(text.encode("utf-8", "surrogatepass")) is not None
