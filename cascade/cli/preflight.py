"""Before the first query: every vendor a policy calls has its SDK installed and a key to send.

Without this check a missing key fails every query of a batch one by one (recorded in each output row) and the
command ends with "N failed"; with it, the command stops at once with the error that names the fix.
"""

from __future__ import annotations

from collections.abc import Iterable

from cascade.policy import Policy
from cascade.providers import DEFAULT_KEY_ENV, get_provider_class
from cascade.providers.base import ProviderSettings


def providers_called(policy: Policy) -> list[str]:
    """Every vendor the policy may call, once each, in the order a query meets them: the routing classifier,
    the stages, their judges."""
    names = [policy.routing.classifier.provider] if policy.routing.classifier else []
    names += [stage.provider for stage in policy.stages]
    judged = policy.stages if policy.judge_last_stage else policy.stages[:-1]
    names += [policy.judge_for(stage).provider for stage in judged]
    return list(dict.fromkeys(names))


def check_ready(policy: Policy, also: Iterable[str] = ()) -> None:
    """Raise `MissingDependencyError` or `MissingAPIKeyError` for the first vendor that cannot be called; `also`
    adds vendors called outside the policy's stages (an LLM grader's)."""
    for name in dict.fromkeys([*providers_called(policy), *also]):
        config = policy.providers.get(name)  # type: ignore[call-overload]
        get_provider_class(name, config.backend if config else None)
        # The same variables the router reads: the policy's `api_key_env`, else the vendor's usual ones.
        key_env = (config.api_key_env,) if config and config.api_key_env else DEFAULT_KEY_ENV[name]
        ProviderSettings(api_key_env=key_env).resolve_key(name)
