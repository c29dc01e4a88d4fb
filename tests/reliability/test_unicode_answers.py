"""Whatever text a vendor returns is kept and serialises: a lone surrogate (sent as a JSON escape) included."""

from __future__ import annotations

import json

from cascade import Cascade
from cascade.policy import Policy
from cascade.providers.base import CompletionRequest
from cascade.testing import ScriptedProvider, judge_json

POLICY = Policy.from_dict(
    {
        "name": "u",
        "version": "1",
        "stages": [
            {"name": "mini", "provider": "openai", "model": "gpt-4o-mini", "threshold": 0.5},
            {"name": "sonnet", "provider": "anthropic", "model": "claude-sonnet-4-5"},
        ],
    }
)


def test_a_lone_surrogate_in_an_answer_and_a_verdict_still_gives_a_result_that_serialises() -> None:
    def script(request: CompletionRequest) -> str:
        # json.loads('"\\ud800"') is how an SDK hands such text over
        if "<<<ANSWER" in request.messages[0].content:
            return judge_json(9, json.loads('"fine \\udfff"'))
        return json.loads('"caf\\u00e9 \\ud800 ok"')

    vendors = {name: ScriptedProvider(name, script) for name in ("openai", "anthropic")}
    result = Cascade(POLICY, providers=vendors).run("hello")
    assert result.accepted and result.stage == "mini"
    assert result.answer == "café \ufffd ok"  # kept, the one unreadable character marked
    assert result.attempts[-1].judge_reason == "fine \ufffd"
    dumped = json.loads(result.model_dump_json())
    assert dumped["answer"] == "café \ufffd ok"
