from __future__ import annotations

import pytest

from cascade.errors import InvalidQueryError
from cascade.providers.base import Message
from cascade.query import normalize_query


def test_string_and_messages() -> None:
    assert normalize_query("hi") == ((Message("user", "hi"),), None)
    messages, system = normalize_query(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
        ],
        system="Be kind.",
    )
    assert [m.role for m in messages] == ["user", "assistant", "user"]
    assert system == "Be kind.\n\nBe brief."


@pytest.mark.parametrize(
    "query",
    [
        "",
        "   \n\t",
        None,
        42,
        b"bytes",
        ["just a string"],
        [{"role": "user"}],
        [{"role": "tool", "content": "x"}],
        [{"role": "user", "content": 5}],
        [{"role": "assistant", "content": "last"}],
        [],
        "bad \ud800 surrogate",
    ],
)
def test_bad_queries_raise_value_error_before_any_call(query: object) -> None:
    with pytest.raises(InvalidQueryError) as info:
        normalize_query(query)
    assert isinstance(info.value, ValueError)


def test_messages_json_reads_back_as_the_same_messages() -> None:
    from cascade.query import messages_json

    query = [
        {"role": "user", "content": "Where are A1 and B2?"},
        {
            "role": "assistant",
            "content": "Looking.",
            "tool_calls": [
                {"id": "c1", "function": {"name": "lookup", "arguments": '{"id": "A1"}'}},
                {"id": "c2", "function": {"name": "lookup", "arguments": {"id": "B2"}}, "signature": "c2ln"},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "shipped"},
        {"role": "tool", "tool_call_id": "c2", "content": {"status": "packing"}},
        {"role": "user", "content": "Thanks, and when?"},
    ]
    messages, _ = normalize_query(query)
    assert normalize_query(messages_json(messages)) == (messages, None)
    assert messages[1].tool_calls[1].signature == "c2ln" and messages[3].name == "lookup"
