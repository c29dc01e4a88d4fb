"""Before the first query: every vendor a command will call has its SDK installed and a key to send.

Without this check a missing key fails every query of a batch one by one (recorded in each output row) and the
command ends with "N failed"; with it, the command stops at once with the error that names the fix. The check is
the router's own (`Cascade.check_ready`), so it reads the keys exactly where the queries will.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from cascade.cli.common import EXIT_USAGE, fail
from cascade.errors import UsageError

if TYPE_CHECKING:
    from cascade.engine import Cascade


def check_vendors(router: Cascade, policy: str | None = None, also: Iterable[str] = ()) -> None:
    """Exit 2 with the error that names the fix when a vendor that `policy` (the router's default unless named)
    or `also` (an LLM grader's vendors) calls has no SDK or no key."""
    try:
        router.check_ready(policy, also=also)
    except UsageError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
