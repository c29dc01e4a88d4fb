"""A policy file read strictly: at most `MAX_POLICY_BYTES` of UTF-8 text, then YAML through PyYAML's safe
loader made strict where it is silently lenient:

- A key given twice in one mapping is an error (PyYAML keeps the last value without a word).
- Nesting past `MAX_DEPTH` levels is an error with its line (PyYAML recurses until `RecursionError`).
- A value PyYAML cannot build (an integer of more than 4,300 digits, a date like 2024-13-01) is an error with its
  line, not a bare `ValueError`.
- A plain top-level `version: 1.10` is read as the text written: as a number it would be 1.1.

Every problem is a `PolicyError` naming the file, with the line and column when there is one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode

from cascade.errors import PolicyError

MAX_POLICY_BYTES = 1024 * 1024
MAX_DEPTH = 100

_MERGE = "tag:yaml.org,2002:merge"
_STR = "tag:yaml.org,2002:str"
# What a plain scalar can resolve to that a version number may look like; `true` and `null` stay errors.
_VERSION_AS_WRITTEN = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp"}


class StrictLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` with duplicate keys, excessive nesting and unbuildable values refused."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self._depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]  # unannotated in types-PyYAML
            raise ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: Any) -> MappingNode:
        # Checked on the nodes as written: by construction time, merge keys (`<<`) have been flattened in.
        node = super().compose_mapping_node(anchor)
        seen: dict[tuple[str, str], ScalarNode] = {}
        for key, _ in node.value:
            if isinstance(key, ScalarNode) and key.tag != _MERGE:
                first = seen.setdefault((key.tag, key.value), key)
                if first is not key:
                    problem = f"the key {key.value!r} is given twice (first on line {first.start_mark.line + 1})"
                    raise ComposerError("while reading a mapping", node.start_mark, problem, key.start_mark)
        return node

    def construct_document(self, node: Node) -> Any:
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if (
                    isinstance(key, ScalarNode)
                    and key.value == "version"
                    and isinstance(value, ScalarNode)
                    and value.style is None
                    and value.tag in _VERSION_AS_WRITTEN
                ):
                    value.tag = _STR
        return super().construct_document(node)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            raise ConstructorError(None, None, f"cannot read this value: {exc}", node.start_mark) from None


def read_text(path: Path) -> str:
    """The text of a policy file: refused when unreadable, over `MAX_POLICY_BYTES` or not UTF-8."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(str(path), [("", f"cannot read file: {exc.strerror or exc}")]) from None
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(str(path), [("", f"larger than {MAX_POLICY_BYTES // 1024} KiB: not a policy file")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"byte 0x{data[exc.start]:02x} at offset {exc.start}"
        raise PolicyError(str(path), [("", f"not UTF-8 text ({where}): a policy is a YAML file")]) from None


def load(text: str, *, source: str) -> Any:
    """The YAML document in `text`, read with `StrictLoader`; `PolicyError` naming `source` if it is not one."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # a SafeLoader: no Python objects are built
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise PolicyError(source, [("", f"YAML syntax error: {where}{exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise PolicyError(source, [("", f"YAML error: {exc}")]) from None
