"""Structured answers: what a query asks the answer to fit (`OutputType`), and whether an answer does.

`output_type=` takes a pydantic model class or a JSON Schema dict (a policy's `output:` names a schema file). Every
stage is asked for that structure through its vendor's own feature (the adapters read `CompletionRequest.output`),
and its answer is validated here before any judge sees it: an answer that does not fit is an `OutputSchemaError`
(billed, recorded, escalated), one that fits is `result.output` (the model instance, or the parsed JSON).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from cascade.errors import InvalidArgumentError, OutputSchemaError
from cascade.providers.base import Completion, OutputSchema

# Vendors want a schema name of letters, digits, `_` and `-` (OpenAI: at most 64).
_NAME = re.compile(r"[^A-Za-z0-9_-]+")
# Keys that only annotate: OpenAI's strict mode refuses `default`, and none of them constrain an answer.
_ANNOTATIONS = ("default", "examples", "$comment")


@dataclass(frozen=True)
class OutputType:
    """A structure asked of every stage: its JSON Schema, and the pydantic model that validates it (if given)."""

    name: str
    schema: Mapping[str, Any]
    model: type[pydantic.BaseModel] | None = None

    @classmethod
    def of(cls, value: Any) -> OutputType:
        """From a pydantic model class, a JSON Schema dict or an `OutputType`; `InvalidArgumentError` otherwise."""
        if isinstance(value, OutputType):
            return value
        if isinstance(value, type) and issubclass(value, pydantic.BaseModel):
            return cls(_vendor_name(value.__name__), value.model_json_schema(), value)
        if isinstance(value, Mapping):
            schema = dict(value)
            if schema.get("type") != "object":
                raise InvalidArgumentError(
                    'output_type: a JSON Schema whose "type" is "object" (vendors ask for an object at the top)'
                )
            _check_schema(schema)
            return cls(_vendor_name(str(schema.get("title") or "answer")), schema)
        raise InvalidArgumentError(
            f"output_type must be a pydantic model class or a JSON Schema dict, not {type(value).__name__}"
        )

    def request(self) -> OutputSchema:
        """What the adapters send: the schema, and its strict form where it has one."""
        return OutputSchema(self.name, self.schema, strict_form(self.schema))

    def validate(self, completion: Completion) -> Any:
        """The answer as the structure asked for: a model instance, or the parsed JSON for a schema dict.

        `OutputSchemaError` (carrying the completion, whose tokens were billed) when it is not JSON or does not fit.
        """
        text = (completion.text or "").strip()
        if self.model is not None:
            try:
                return self.model.model_validate_json(text)
            except pydantic.ValidationError as exc:
                problems = "; ".join(f"{_path(e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)[:3])
                raise schema_error(completion, f"answer does not fit {self.name}: {problems}") from None
        try:
            data = json.loads(text)
        except ValueError:
            raise schema_error(completion, f"answer is not JSON: {_clip(text)}") from None
        if (problem := schema_problem(self.schema, data)) is not None:
            raise schema_error(completion, f"answer does not fit {self.name}: {problem}")
        return data

    def as_json(self, value: Any) -> Any:
        """A validated answer as plain JSON data (for traces and the judge)."""
        return value.model_dump(mode="json") if isinstance(value, pydantic.BaseModel) else value


def schema_error(completion: Completion, message: str) -> OutputSchemaError:
    """The error for an answer that does not fit what was asked; it carries the completion (billed)."""
    return OutputSchemaError(message, provider=completion.provider, model=completion.model, completion=completion)


def schema_problem(schema: Mapping[str, Any], data: Any) -> str | None:
    """What is wrong with `data` under a JSON Schema (the first problem, with its path), or None when it fits."""
    import jsonschema  # only when a schema dict (or a tool's parameters) is checked

    validator_class = jsonschema.validators.validator_for(schema)
    error = jsonschema.exceptions.best_match(validator_class(schema).iter_errors(data))
    if error is None:
        return None
    where = _path(error.absolute_path) or "(top)"
    return f"{where}: {_clip(error.message)}"


def strict_form(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """The schema as OpenAI's strict structured outputs take it, or None when it cannot be put in that form.

    Strict mode wants every object closed (`additionalProperties: false`) and every property listed in `required`.
    An optional property (with a default) then has to be sent by the model, which the validator still accepts. A
    schema that leaves an object open on purpose (`additionalProperties` given as true or a schema) has no strict
    form.
    """
    strict = copy.deepcopy(dict(schema))
    definitions = strict.get("$defs") or {}

    def close(node: Any) -> bool:
        if not isinstance(node, dict):
            return True
        for key in _ANNOTATIONS:
            node.pop(key, None)
        ref = node.get("$ref")
        if isinstance(ref, str) and len(node) > 1:
            # pydantic writes `{"$ref": ..., "description": ...}` for a described enum field; strict mode takes a
            # $ref alone, so the definition is put in its place with the sibling keys kept.
            target = definitions.get(ref.removeprefix("#/$defs/")) if ref.startswith("#/$defs/") else None
            if not isinstance(target, dict):
                return False
            del node["$ref"]
            node.update({k: v for k, v in copy.deepcopy(target).items() if k not in node})
        if node.get("type") == "object" or "properties" in node:
            if node.get("additionalProperties", False) is not False:
                return False
            node["additionalProperties"] = False
            node["required"] = list(node.get("properties", {}))
        children: list[Any] = []
        for key in ("properties", "$defs", "definitions"):  # maps of name -> schema
            children += list((node.get(key) or {}).values())
        for key in ("anyOf", "allOf", "oneOf", "prefixItems"):  # lists of schemas
            children += list(node.get(key) or [])
        for key in ("items", "not"):  # one schema
            if isinstance(node.get(key), dict):
                children.append(node[key])
        return all(close(child) for child in children)

    return strict if close(strict) else None


def _check_schema(schema: Mapping[str, Any]) -> None:
    import jsonschema

    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise InvalidArgumentError(f"output_type is not a valid JSON Schema: {_clip(exc.message)}") from None


def _vendor_name(name: str) -> str:
    return _NAME.sub("_", name).strip("_")[:64] or "answer"


def _path(loc: Any) -> str:
    return ".".join(str(part) for part in loc)


def _clip(text: str, limit: int = 160) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
