"""Where the files shipped beside the package live: inside a wheel (`cascade/_shipped/`) or, in a source
checkout or editable install, at the repository root. Shipped policies are found here by name."""

from __future__ import annotations

import re
from pathlib import Path

from cascade.errors import PolicyError

_PACKAGE = Path(__file__).resolve().parent
_POLICY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def shipped(relative: str) -> Path:
    """The path of a shipped file such as `policies/default.yaml` or `cassettes/demo/default_policy.yaml`."""
    for base in (_PACKAGE / "_shipped", _PACKAGE.parent):
        candidate = base / relative
        if candidate.exists():
            return candidate
    return _PACKAGE.parent / relative


def shipped_policy_files() -> dict[str, Path]:
    """Every shipped policy file by its name (the file name without `.yaml`), sorted by name."""
    folder = shipped("policies")
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def find_policy(policy: str | Path) -> Path:
    """The file to load for `policy`: the path itself when it exists, else the shipped policy of that name.

    Only a bare name (`current-models`: no folder, no `.yaml`) is looked up among the shipped policies, so a
    path that is missing is reported as missing rather than replaced by a shipped file.
    """
    path = Path(policy)
    if path.exists():
        return path
    text = str(policy)
    shipped_files = shipped_policy_files()
    if _POLICY_NAME.fullmatch(text) and not text.endswith((".yaml", ".yml")) and text in shipped_files:
        return shipped_files[text]
    names = ", ".join(shipped_files) or "none found"
    if path.stem in shipped_files:
        hint = f"cannot read file: no such file; the shipped policy of that name loads as {path.stem!r}"
    elif _POLICY_NAME.fullmatch(text) and path.suffix == "":
        hint = f"cannot read file: no such file, and no shipped policy of that name (shipped: {names})"
    else:
        hint = f"cannot read file: no such file (shipped policies load by name: {names})"
    raise PolicyError(text, [("", hint)])
