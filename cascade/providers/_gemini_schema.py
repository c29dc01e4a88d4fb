"""JSON Schema to the OpenAPI subset in Gemini's `Schema`, for the legacy google-generativeai backend.

The legacy SDK's protos (v1beta, google-ai-generativelanguage 0.6) have no field for a JSON Schema: a response schema
and a function's parameters are a `Schema`, which holds type, format, description, nullable, enum, items, min and
max items, properties and required, and nothing else. So here references are inlined, `anyOf [X, null]` (pydantic's
optional fields) becomes X made nullable, and the keywords the subset lacks are dropped: titles, defaults, bounds,
patterns, `additionalProperties`. Dropping a constraint loosens the request only: the engine checks the answer
against the full schema. What the subset cannot say at all raises `CannotExpress`, naming where: a union of
several types, a recursive schema, an object without properties (a free-form map), an array without items.

The result is wire JSON (camelCase, type names in capitals), as `json_format.ParseDict` reads into `protos.Schema`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cascade.providers._gemini_wire import CannotExpress

_TYPES = {
    "string": "STRING",
    "integer": "INTEGER",
    "number": "NUMBER",
    "boolean": "BOOLEAN",
    "array": "ARRAY",
    "object": "OBJECT",
}
# The formats the API accepts per type; any other (email, uri, uuid...) is rejected with a 400, so it is dropped.
_FORMATS = {"STRING": {"date-time"}, "INTEGER": {"int32", "int64"}, "NUMBER": {"float", "double"}}


def openapi_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` (a JSON Schema, `$defs` and `$ref` included) as a Gemini `Schema` in wire JSON."""
    definitions = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    return _Converter(definitions).convert(schema, "$", ())


class _Converter:
    def __init__(self, definitions: Mapping[str, Any]) -> None:
        self.definitions = definitions

    def convert(self, node: Any, where: str, refs: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(node, Mapping):
            raise CannotExpress(f"the schema at {where} is {node!r}, not an object with a type")
        if "$ref" in node:
            name, resolved = self._resolve(node["$ref"], where)
            if name in refs:
                raise CannotExpress(f"the schema is recursive ({name} at {where}): Gemini's Schema cannot say that")
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            return self.convert({**resolved, **siblings}, where, (*refs, name))
        for keyword in ("anyOf", "oneOf", "allOf"):
            if keyword in node:
                return self._combined(node, keyword, where, refs)

        kind, nullable = self._type(node, where)
        result: dict[str, Any] = {"type": kind}
        if isinstance(description := node.get("description"), str) and description:
            result["description"] = description
        if nullable or node.get("nullable") is True:
            result["nullable"] = True
        if isinstance(fmt := node.get("format"), str) and fmt in _FORMATS.get(kind, ()):
            result["format"] = fmt
        self._enum(node, kind, result)
        if kind == "ARRAY":
            if "items" not in node:
                raise CannotExpress(f"the array at {where} has no items schema")
            result["items"] = self.convert(node["items"], f"{where}.items", refs)
            for keyword in ("minItems", "maxItems"):
                if isinstance(node.get(keyword), int):
                    result[keyword] = node[keyword]
        elif kind == "OBJECT":
            properties = node.get("properties") or {}
            if not properties:
                raise CannotExpress(f"the object at {where} has no properties (a free-form map)")
            result["properties"] = {
                name: self.convert(sub, f"{where}.properties.{name}", refs) for name, sub in properties.items()
            }
            required = [name for name in node.get("required") or () if name in properties]
            if required:
                result["required"] = required
        return result

    def _resolve(self, ref: Any, where: str) -> tuple[str, Any]:
        prefix = next((p for p in ("#/$defs/", "#/definitions/") if isinstance(ref, str) and ref.startswith(p)), None)
        name = ref[len(prefix) :] if prefix is not None else None
        if name is None or name not in self.definitions:
            raise CannotExpress(f"the reference {ref!r} at {where} is not one of the schema's own definitions")
        return name, self.definitions[name]

    def _combined(self, node: Mapping[str, Any], keyword: str, where: str, refs: tuple[str, ...]) -> dict[str, Any]:
        alternatives = node[keyword]
        if not isinstance(alternatives, list) or not alternatives:
            raise CannotExpress(f"{keyword} at {where} is not a list of schemas")
        rest = {k: v for k, v in node.items() if k != keyword}
        if keyword == "allOf":
            if len(alternatives) != 1:
                raise CannotExpress(f"allOf at {where} joins several schemas")
            return self.convert({**alternatives[0], **rest}, where, refs)
        typed = [a for a in alternatives if not (isinstance(a, Mapping) and a.get("type") == "null")]
        if len(typed) != 1:
            raise CannotExpress(f"{keyword} at {where} is a union of several types: Gemini's Schema has no unions")
        # The outer keywords (pydantic puts description and default there) apply to the one alternative.
        converted = self.convert({**typed[0], **rest}, where, refs)
        if len(typed) < len(alternatives):
            converted["nullable"] = True
        return converted

    @staticmethod
    def _type(node: Mapping[str, Any], where: str) -> tuple[str, bool]:
        declared = node.get("type")
        names = declared if isinstance(declared, list) else [declared] if declared is not None else []
        nullable = "null" in names
        names = [n for n in names if n != "null"]
        if not names:  # no type: the keywords used say which
            if "properties" in node:
                names = ["object"]
            elif "items" in node:
                names = ["array"]
            elif isinstance(node.get("const"), str) or (
                node.get("enum") and all(isinstance(v, str) for v in node["enum"])
            ):
                names = ["string"]
        if len(names) != 1 or names[0] not in _TYPES:
            what = "no type" if not names else f"type {declared!r}"
            raise CannotExpress(f"the schema at {where} has {what}: Gemini's Schema takes exactly one type")
        return _TYPES[names[0]], nullable

    @staticmethod
    def _enum(node: Mapping[str, Any], kind: str, result: dict[str, Any]) -> None:
        values = node.get("enum")
        if values is None and "const" in node:
            values = [node["const"]]
        if not values:
            return
        if kind == "STRING" and all(isinstance(v, str) for v in values):
            result["format"] = "enum"  # the subset keeps enums for strings only, with this format
            result["enum"] = list(values)
            return
        # Numbers (an IntEnum) or booleans: kept in the description, so that the model still reads them.
        allowed = "One of: " + ", ".join(str(v) for v in values) + "."
        result["description"] = f"{result['description']} {allowed}" if "description" in result else allowed
