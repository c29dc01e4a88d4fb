"""What a request asks beyond text: `tools`, `tool_choice`, `parallel_tool_calls` and `response_format`.

They are checked here, in OpenAI's shapes, so that a 400 names the field; the engine is then given them as
`tools=`, `tool_choice=` and `output_type=` (a JSON Schema answer is validated against its schema, whatever
`strict` says; an OpenAI stage is sent the strict form where the schema has one).

Refused, with 400: `response_format: {"type": "json_object"}` (JSON with no schema: cascade checks every
structured answer against a schema, and there is none to check), `parallel_tool_calls: false` (no vendor-neutral
way to hold a model to one call), and tools of any type but `function`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from cascade.errors import InvalidArgumentError, InvalidQueryError
from cascade.serve.api_error import bad_request
from cascade.structured import OutputType
from cascade.tools import normalize_tool_choice, normalize_tools

FIELDS = ("tools", "tool_choice", "parallel_tool_calls", "response_format")
# OpenAI's rule for a response format's name.
_SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOOL_FIELDS = {"type", "function"}
# `strict` is accepted: the engine checks every call's arguments against the parameters anyway.
_FUNCTION_FIELDS = {"name", "description", "parameters", "strict"}


@dataclass(frozen=True)
class Features:
    """The request's tools (as sent: the engine reads OpenAI's shape), its tool choice and its output type."""

    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    output_type: OutputType | None = None


def parse_features(data: dict[str, Any]) -> Features:
    """The request's tools, tool choice and output type; `APIError` (400) naming the field that cannot be served."""
    tools = _tools(data.get("tools"))
    tool_choice = _tool_choice(data.get("tool_choice"), tools)
    parallel = data.get("parallel_tool_calls")
    if parallel is False:
        raise bad_request(
            "parallel_tool_calls: false is not supported: a model may answer with several tool calls",
            "parallel_tool_calls",
            "unsupported_parameter",
        )
    if parallel not in (None, True):
        raise bad_request("parallel_tool_calls must be true or false", "parallel_tool_calls")
    return Features(tools, tool_choice, _response_format(data.get("response_format")))


def _tools(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise bad_request("`tools` must be a non-empty list of function tools (leave it out for none)", "tools")
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
            raise bad_request(f'{where} must be {{"type": "function", "function": {{"name", ...}}}}', where)
        for name in tool:
            if name not in _TOOL_FIELDS:
                raise bad_request(f"{where}.{name} is not supported", f"{where}.{name}")
        for name in tool["function"]:
            if name not in _FUNCTION_FIELDS:
                fields = ", ".join(sorted(_FUNCTION_FIELDS))
                raise bad_request(f"{where}.function.{name} is not supported ({fields})", f"{where}.function.{name}")
    try:
        normalize_tools(value)
    except InvalidQueryError as exc:
        raise bad_request(str(exc), "tools") from None
    return value


def _tool_choice(value: Any, tools: list[dict[str, Any]] | None) -> str | dict[str, Any] | None:
    if value is None:
        return None
    named = isinstance(value, dict) and value.get("type") == "function" and set(value) == {"type", "function"}
    if not (value in ("auto", "required", "none") or named):
        raise bad_request(
            'tool_choice must be "auto", "required", "none" or {"type": "function", "function": {"name": ...}}',
            "tool_choice",
        )
    if named and (not isinstance(value["function"], dict) or set(value["function"]) != {"name"}):
        raise bad_request('tool_choice.function must be {"name": "<an offered tool>"}', "tool_choice")
    try:
        normalize_tool_choice(value, normalize_tools(tools))
    except InvalidQueryError as exc:
        raise bad_request(str(exc), "tool_choice") from None
    chosen: str | dict[str, Any] = value
    return chosen


def _response_format(value: Any) -> OutputType | None:
    """`json_schema` as the output type (its schema, under its name); `text` or none as no structure."""
    where = "response_format"
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text" and set(value) == {"type"}:
        return None
    if kind == "json_object":
        raise bad_request(
            'response_format json_object is not supported: give a schema with {"type": "json_schema", '
            '"json_schema": {"name": ..., "schema": ...}}; cascade checks every structured answer against it',
            where,
            "unsupported_parameter",
        )
    if kind != "json_schema" or set(value) != {"type", "json_schema"} or not isinstance(value["json_schema"], dict):
        raise bad_request(
            'response_format must be {"type": "text"} or {"type": "json_schema", "json_schema": {...}}', where
        )
    spec = value["json_schema"]
    for name in spec:
        if name not in ("name", "schema", "strict"):
            raise bad_request(
                f"{where}.json_schema.{name} is not supported (name, schema, strict)", f"{where}.json_schema.{name}"
            )
    name = spec.get("name")
    if not isinstance(name, str) or not _SCHEMA_NAME.fullmatch(name):
        raise bad_request(f"{where}.json_schema.name must be 1-64 letters, digits, _ or -", f"{where}.json_schema.name")
    if spec.get("strict") not in (None, True, False):
        raise bad_request(f"{where}.json_schema.strict must be true or false", f"{where}.json_schema.strict")
    try:
        output = OutputType.of(spec.get("schema")) if isinstance(spec.get("schema"), dict) else None
    except InvalidArgumentError as exc:
        raise bad_request(str(exc), f"{where}.json_schema.schema") from None
    if output is None:
        raise bad_request(f"{where}.json_schema.schema must be a JSON Schema object", f"{where}.json_schema.schema")
    return dataclasses.replace(output, name=name)
