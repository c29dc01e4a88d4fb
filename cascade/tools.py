"""Tools a query offers the models: read from what callers write (OpenAI's shape, or the bare function), and the
check that a model's tool calls name an offered tool with arguments that fit its parameters.

    tools=[{"type": "function", "function": {"name": "lookup_order", "description": "...",
                                             "parameters": {"type": "object", "properties": {...}}}}]
    tool_choice="auto" | "required" | "none" | "lookup_order" | {"type": "function", "function": {"name": ...}}
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from cascade.errors import InvalidQueryError
from cascade.providers.base import Completion, Tool, ToolCall, ToolChoice

# What all three vendors accept as a function name (OpenAI and Gemini: 64 characters; Anthropic 128).
_TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_MODES = ("auto", "required", "none")


def normalize_tools(tools: Any) -> tuple[Tool, ...]:
    """`tools=` as `Tool`s; `InvalidQueryError` naming the tool and what is wrong."""
    if tools is None:
        return ()
    if isinstance(tools, str | bytes) or not isinstance(tools, Sequence):
        raise InvalidQueryError("tools must be a list of function definitions")
    found: list[Tool] = []
    for i, item in enumerate(tools):
        if not isinstance(item, Mapping):
            raise InvalidQueryError(f"tools[{i}] must be a mapping")
        function = item.get("function", item) if item.get("type", "function") == "function" else None
        if not isinstance(function, Mapping):
            raise InvalidQueryError(f"tools[{i}]: only function tools are supported (type 'function')")
        name = function.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            raise InvalidQueryError(f"tools[{i}]: name {name!r} must be letters, digits, _ . - (at most 64)")
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, Mapping) or parameters.get("type") != "object":
            raise InvalidQueryError(f"tools[{i}] ({name}): parameters must be a JSON Schema of type object")
        description = function.get("description")
        if description is not None and not isinstance(description, str):
            raise InvalidQueryError(f"tools[{i}] ({name}): description must be text")
        if any(t.name == name for t in found):
            raise InvalidQueryError(f"tools[{i}]: a second tool named {name!r}")
        found.append(Tool(name, description, dict(parameters)))
    return tuple(found)


def normalize_tool_choice(choice: Any, tools: Sequence[Tool]) -> ToolChoice | None:
    """`tool_choice=` as a `ToolChoice` (None: the vendors' default, auto when tools are given)."""
    if choice is None:
        return None
    if not tools:
        raise InvalidQueryError("tool_choice given without tools")
    name: Any = None
    if isinstance(choice, str):
        if choice in _MODES:
            return ToolChoice(choice)  # type: ignore[arg-type]
        name = choice
    elif isinstance(choice, Mapping):
        function = choice.get("function", choice)
        name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str) or all(t.name != name for t in tools):
        offered = ", ".join(t.name for t in tools)
        raise InvalidQueryError(f"tool_choice {choice!r}: use auto, required, none or an offered tool ({offered})")
    return ToolChoice("tool", name)


def check_tool_calls(completion: Completion, tools: Sequence[Tool], choice: ToolChoice | None) -> None:
    """Raise `OutputSchemaError` (carrying the billed completion) for a call that names no offered tool, whose
    arguments are not a JSON object or do not fit the tool's parameters, or that breaks `tool_choice`."""
    from cascade.structured import schema_error, schema_problem

    by_name = {tool.name: tool for tool in tools}
    calls: Sequence[ToolCall] = completion.tool_calls
    if calls and choice is not None and choice.mode == "none":
        raise schema_error(completion, "the model called a tool although tool_choice is none")
    if not calls and choice is not None and choice.mode in ("required", "tool"):
        raise schema_error(completion, f"the model called no tool although tool_choice is {choice.mode}")
    for call in calls:
        tool = by_name.get(call.name)
        if tool is None:
            raise schema_error(completion, f"the model called {call.name!r}, which is not an offered tool")
        if choice is not None and choice.mode == "tool" and call.name != choice.name:
            raise schema_error(completion, f"the model called {call.name!r}, not {choice.name!r} as tool_choice says")
        if isinstance(call.arguments, str):
            raise schema_error(completion, f"arguments of {call.name} are not a JSON object: {call.arguments[:120]!r}")
        if (problem := schema_problem(tool.parameters, dict(call.arguments))) is not None:
            raise schema_error(completion, f"arguments of {call.name} do not fit its parameters: {problem}")


def tools_json(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    """Tools in OpenAI's shape, as `normalize_tools` reads them back."""
    out = []
    for tool in tools:
        function: dict[str, Any] = {"name": tool.name, "parameters": dict(tool.parameters)}
        if tool.description is not None:
            function["description"] = tool.description
        out.append({"type": "function", "function": function})
    return out


def tool_choice_json(choice: ToolChoice) -> str:
    """A tool choice as `normalize_tool_choice` reads it back: auto, required, none, or the tool's name."""
    return choice.name if choice.mode == "tool" and choice.name else choice.mode


def tool_calls_json(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    """Tool calls as plain JSON data (results, traces, the judge)."""
    return [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]
