"""Write a tuned policy: the user's own file with new thresholds, every comment and the layout kept.

ruamel.yaml's round-trip loader finds where each stage's `threshold` value sits, and only that text is
replaced, so the rest of the file stays byte for byte as the user wrote it. (A threshold that comes from
a YAML merge key has no place of its own: then the document is dumped by ruamel.yaml's round-trip dumper,
which keeps comments but may re-indent.) A header comment says where the thresholds came from; re-tuning
replaces it. The result is validated as a policy before it is written.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ruamel.yaml import YAML

from cascade.policy import NEVER, Policy

HEADER_MARK = "# cascade tune:"
_MODELINE = re.compile(r"^#\s*yaml-language-server:\s*\$schema=(\S+)\s*$")
_VALUE = re.compile(r"""((?:[&!]\S*\s+)*)("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s,\]}#]+)""")


def format_threshold(value: float) -> str:
    """The shortest decimal that reads back as exactly this float, never in exponent form (YAML 1.1 safe);
    `never` for +inf, a threshold above every confidence (the policy reads it back as +inf)."""
    if value == math.inf:
        return NEVER
    return str(np.format_float_positional(value, unique=True, trim="0"))


def threshold_text(value: float) -> str:
    """A threshold as a person reads it: `never`, or the number."""
    return NEVER if value == math.inf else f"{value:g}"


def tuned_policy_text(source: str, thresholds: Mapping[str, float], header: Sequence[str] = ()) -> str:
    """The policy text with each named stage's threshold replaced and `header` lines on top."""
    yaml = YAML(typ="rt")
    doc = yaml.load(source)
    lines = source.splitlines(keepends=True)
    edits: list[tuple[int, int, str]] = []
    dump_whole = False
    for stage in doc["stages"]:
        name = str(stage["name"])
        if name not in thresholds:
            continue
        try:
            line, col = stage.lc.value("threshold")
        except KeyError:
            stage["threshold"] = thresholds[name]
            dump_whole = True
            continue
        edits.append((line, col, format_threshold(thresholds[name])))
    if dump_whole:
        yaml.width = 4096
        yaml.representer.add_representer(float, _represent_threshold)
        out = io.StringIO()
        yaml.dump(doc, out)
        return with_header(out.getvalue(), header)
    for line, col, text in sorted(edits, reverse=True):
        current = lines[line]
        match = _VALUE.match(current, col)
        if match is None:  # pragma: no cover - ruamel pointed at a value we cannot read
            raise ValueError(f"cannot find the threshold at line {line + 1}: {current!r}")
        lines[line] = current[: match.start(2)] + text + current[match.end(2) :]
    return with_header("".join(lines), header)


def _represent_threshold(representer: Any, value: float) -> Any:
    tag = "tag:yaml.org,2002:str" if value == math.inf else "tag:yaml.org,2002:float"
    return representer.represent_scalar(tag, format_threshold(value))


def with_header(text: str, header: Sequence[str]) -> str:
    """`text` with any earlier tune header removed and `header` added (after a yaml-language-server line)."""
    lines = [line for line in text.splitlines(keepends=True) if not line.startswith(HEADER_MARK)]
    keep = 1 if lines and _MODELINE.match(lines[0].rstrip("\n")) else 0
    block = [f"{HEADER_MARK} {line}".rstrip() + "\n" for line in header]
    return "".join(lines[:keep] + block + lines[keep:])


def _move_schema_line(text: str, source: Path, output: Path) -> str:
    """Keep a relative `$schema=` modeline pointing at the same schema file from the output's directory."""
    first, _, rest = text.partition("\n")
    match = _MODELINE.match(first)
    if not match or "://" in match.group(1):
        return text
    schema = (source.parent / match.group(1)).resolve()
    if not schema.exists():
        return text
    moved = Path(os.path.relpath(schema, output.resolve().parent)).as_posix()
    return first.replace(match.group(1), moved) + "\n" + rest


def _move_output_schema(text: str, source: Path, output: Path) -> str:
    """Keep a relative `output.schema_file` naming the same file from the output's directory."""
    doc = YAML(typ="rt").load(text)
    block = doc.get("output") if hasattr(doc, "get") else None
    given = block.get("schema_file") if block is not None and hasattr(block, "get") else None
    if block is None or not isinstance(given, str) or Path(given).expanduser().is_absolute():
        return text
    moved = Path(os.path.relpath((source.parent / given).resolve(), output.resolve().parent)).as_posix()
    if moved == given:
        return text
    line, col = block.lc.value("schema_file")
    lines = text.splitlines(keepends=True)
    match = _VALUE.match(lines[line], col)
    if match is None:  # pragma: no cover - ruamel pointed at a value we cannot read
        raise ValueError(f"cannot find output.schema_file at line {line + 1}")
    lines[line] = lines[line][: match.start(2)] + json.dumps(moved) + lines[line][match.end(2) :]
    return "".join(lines)


def write_tuned_policy(source: Path, output: Path, thresholds: Mapping[str, float], header: Sequence[str]) -> Policy:
    """Write `source` with new thresholds to `output`; raises `PolicyError` if the result is not a valid policy.

    Relative paths in it (the `$schema` modeline, `output.schema_file`) are rewritten to name the same files from
    the output's directory."""
    text = tuned_policy_text(source.read_text(encoding="utf-8"), thresholds, header)
    text = _move_output_schema(_move_schema_line(text, source, output), source, output)
    policy = Policy.from_yaml(text, source=str(output), base=output.resolve().parent)
    for name, value in thresholds.items():
        if policy.stage(name).threshold != value:  # pragma: no cover - a formatting bug would show here
            raise ValueError(f"stage {name}: wrote {policy.stage(name).threshold}, meant {value}")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    return policy
