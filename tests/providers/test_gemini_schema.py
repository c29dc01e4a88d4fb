"""JSON Schema -> Gemini's OpenAPI-subset `Schema` (what the legacy backend sends), on pydantic's own schemas."""

from __future__ import annotations

import enum
from typing import Any

import pytest
from pydantic import BaseModel, Field

from cascade.providers._gemini_schema import openapi_schema
from cascade.providers._gemini_wire import CannotExpress


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    city: str = Field(description="The city's name")
    postcode: str | None = None


class Person(BaseModel):
    name: str
    age: int
    colour: Colour
    priority: Priority
    home: Address
    previous: list[Address] = Field(default_factory=list, max_length=3)
    nickname: str | None = Field(default=None, description="What friends say")


def test_a_pydantic_model_is_inlined_made_nullable_and_stripped_to_the_subset() -> None:
    converted = openapi_schema(Person.model_json_schema())

    address = {
        "type": "OBJECT",
        "properties": {
            "city": {"type": "STRING", "description": "The city's name"},
            "postcode": {"type": "STRING", "nullable": True},
        },
        "required": ["city"],
    }
    assert converted == {
        "type": "OBJECT",
        "properties": {
            "name": {"type": "STRING"},
            "age": {"type": "INTEGER"},
            "colour": {"type": "STRING", "format": "enum", "enum": ["red", "blue"]},
            # The subset has string enums only: numbers stay a number, their values in the description.
            "priority": {"type": "INTEGER", "description": "One of: 1, 2."},
            "home": address,
            "previous": {"type": "ARRAY", "items": address, "maxItems": 3},
            "nickname": {"type": "STRING", "description": "What friends say", "nullable": True},
        },
        "required": ["name", "age", "colour", "priority", "home"],
    }


def test_keywords_outside_the_subset_are_dropped_and_unknown_formats_too() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Event",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "when": {"type": "string", "format": "date-time", "default": "now"},
            "contact": {"type": "string", "format": "email", "pattern": ".+@.+", "minLength": 3},
            "count": {"type": "integer", "format": "int64", "minimum": 0, "maximum": 9},
            "ratio": {"type": ["number", "null"], "exclusiveMaximum": 1},
            "kind": {"const": "meeting"},
        },
        "required": ["when", "missing"],
    }
    assert openapi_schema(schema) == {
        "type": "OBJECT",
        "properties": {
            "when": {"type": "STRING", "format": "date-time"},
            "contact": {"type": "STRING"},
            "count": {"type": "INTEGER", "format": "int64"},
            "ratio": {"type": "NUMBER", "nullable": True},
            "kind": {"type": "STRING", "format": "enum", "enum": ["meeting"]},
        },
        # A required name with no property would be rejected by the API.
        "required": ["when"],
    }


def test_a_reference_keeps_the_description_written_beside_it() -> None:
    schema = {
        "type": "object",
        "properties": {"where": {"$ref": "#/definitions/Place", "description": "Where it happens"}},
        "definitions": {"Place": {"type": "object", "properties": {"name": {"type": "string"}}}},
    }
    assert openapi_schema(schema)["properties"]["where"] == {
        "type": "OBJECT",
        "description": "Where it happens",
        "properties": {"name": {"type": "STRING"}},
    }


class Node(BaseModel):
    value: int
    children: list[Node] = []


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        (
            {"type": "object", "properties": {"v": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}},
            "anyOf at $.properties.v is a union of several types",
        ),
        ({"type": "object", "properties": {"v": {"type": ["string", "integer"]}}}, "at $.properties.v has type"),
        (Node.model_json_schema(), "recursive (Node at $.properties.children.items)"),
        (
            {"type": "object", "properties": {"extra": {"type": "object", "additionalProperties": True}}},
            "object at $.properties.extra has no properties",
        ),
        ({"type": "object", "properties": {"tags": {"type": "array"}}}, "array at $.properties.tags has no items"),
        ({"type": "object", "properties": {"x": {"$ref": "#/$defs/Nowhere"}}}, "reference '#/$defs/Nowhere'"),
        ({"type": "object", "properties": {"x": {}}}, "the schema at $.properties.x has no type"),
    ],
)
def test_what_the_subset_cannot_say_is_refused_naming_where(schema: dict[str, Any], problem: str) -> None:
    with pytest.raises(CannotExpress) as caught:
        openapi_schema(schema)
    assert problem in str(caught.value)
