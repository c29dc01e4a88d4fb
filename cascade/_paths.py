"""Where the files shipped beside the package live: inside a wheel (`cascade/_shipped/`) or, in a source
checkout or editable install, at the repository root."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shipped(relative: str) -> Path:
    """The path of a shipped file such as `policies/default.yaml` or `cassettes/demo/default_policy.yaml`."""
    for base in (_PACKAGE / "_shipped", _PACKAGE.parent):
        candidate = base / relative
        if candidate.exists():
            return candidate
    return _PACKAGE.parent / relative
