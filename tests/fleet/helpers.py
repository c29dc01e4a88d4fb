"""What the fleet tests share, the worker processes included: a two-stage policy and scripted vendors."""

from __future__ import annotations

from collections import Counter
from typing import Any

from cascade import Cascade
from cascade.errors import ServerError
from cascade.policy import Policy
from cascade.providers.base import CompletionRequest
from cascade.testing import ScriptedProvider, completion, judge_json

NANO, JUDGE, HAIKU = "gpt-4.1-nano", "gpt-4o-mini", "claude-haiku-4-5"


def fleet_policy(*, nano: dict[str, Any] | None = None, haiku: dict[str, Any] | None = None, **sections: Any) -> Policy:
    """nano (judged, threshold 0.7), then haiku; no retries, so every failure is one call. `nano` and `haiku`
    change a stage's fields, `sections` add to the policy (breaker, limits, state)."""
    stage = {"retries": 0, "max_output_tokens": 64, "timeout_s": 20.0}
    return Policy.from_dict(
        {
            "name": "fleet",
            "version": "1",
            "stages": [
                {"name": "nano", "provider": "openai", "model": NANO, "threshold": 0.7, **stage, **(nano or {})},
                {"name": "haiku", "provider": "anthropic", "model": HAIKU, **stage, **(haiku or {})},
            ],
            "judge": {"provider": "openai", "model": JUDGE, "retries": 0, "timeout_s": 20.0},
            **sections,
        }
    )


class Vendors:
    """Scripted openai and anthropic: a model in `down` fails with a 503 (its value the Retry-After), the judge
    scores 9, or 3 for a query with "hard" in it, haiku always answers. Counts calls per model."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.down: dict[str, float | None] = {}
        self.calls: Counter[str] = Counter()
        self.providers = {name: ScriptedProvider(name, self.reply, delay_s=delay_s) for name in ("openai", "anthropic")}

    def reply(self, request: CompletionRequest) -> Any:
        self.calls[request.model] += 1
        if request.model in self.down:
            raise server_error(request.model, self.down[request.model])
        if request.model == JUDGE:
            return completion(judge_json(3 if "hard" in request.messages[0].content else 9), model=JUDGE)
        provider = "anthropic" if request.model == HAIKU else "openai"
        return completion(f"{request.model} says 4", model=request.model, provider=provider, output_tokens=20)

    def cascade(self, policy: Policy) -> Cascade:
        return Cascade(policy, providers=self.providers, retry_backoff_s=0.0)


def server_error(model: str, retry_after: float | None = None) -> ServerError:
    return ServerError("overloaded", provider="openai", model=model, status_code=503, retry_after=retry_after)
