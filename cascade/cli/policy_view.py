"""`cascade policy check` and `list`: validate policies and show what each stage costs for an average query;
list the shipped ones."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from cascade.budget import JUDGE_PROMPT_OVERHEAD_TOKENS
from cascade.capabilities import FEATURES, Feature, can
from cascade.cli.render import Column, Sheet, money, show
from cascade.errors import PolicyError
from cascade.policy import JudgeConfig, Policy, Stage, load_policy, shipped_policies
from cascade.providers import returns_logprobs

# An "average query" for the price column: a few paragraphs in, a few paragraphs out.
AVERAGE_INPUT_TOKENS = 500
AVERAGE_OUTPUT_TOKENS = 300
AVERAGE_JUDGE_OUTPUT_TOKENS = 30


def stage_prices(policy: Policy) -> list[tuple[str, float, float]]:
    """(stage, answer cost, judge cost) for an average query at each stage."""
    table = policy.price_table()
    rows = []
    for index, stage in enumerate(policy.stages):
        answer = table.cost(stage.model, AVERAGE_INPUT_TOKENS, AVERAGE_OUTPUT_TOKENS)
        judged = index < len(policy.stages) - 1 or policy.judge_last_stage
        judge = policy.judge_for(stage)
        judge_input = AVERAGE_INPUT_TOKENS + AVERAGE_OUTPUT_TOKENS + JUDGE_PROMPT_OVERHEAD_TOKENS
        judge_cost = table.cost(judge.model, judge_input, AVERAGE_JUDGE_OUTPUT_TOKENS) if judged else 0.0
        rows.append((stage.name, answer, judge_cost))
    return rows


def _judge_method(policy: Policy, judge: JudgeConfig) -> str:
    """The method the judge is really asked with: `logprobs` falls back to `json` where the API has none."""
    config = policy.providers.get(judge.provider)
    backend = config.backend if config is not None else None
    if judge.method == "logprobs" and not returns_logprobs(policy.provider_kind(judge.provider), backend):
        return "json: no log-probabilities there"
    return judge.method


def _feature(policy: Policy, stage: Stage, feature: Feature) -> str:
    """Whether the stage can serve queries that need `feature`; "no" says why, "yes" where the policy says so."""
    able, source = can(stage, feature, policy.provider_kind(stage.provider))
    if able:
        return "yes (policy)" if source == "the policy's features" else "yes"
    return f"no ({source})" if source != "the policy's features" else "no (policy)"


def list_policies(out: Console) -> None:
    """One line per shipped policy: the name `--policy` takes, then what the policy is."""
    shipped = shipped_policies()
    width = max(map(len, shipped), default=0)
    for name, description in shipped.items():
        out.print(f"{name:<{width}}  {description}", markup=False, highlight=False, soft_wrap=True)


def check_policies(policies: list[str], out: Console, err: Console) -> bool:
    """Validate each policy (a shipped policy's name or a file) and show its stages; False if one is invalid."""
    ok = True
    for given in policies:
        try:
            policy = load_policy(given)
        except PolicyError as exc:
            err.print(f"[bold red]invalid[/] {escape(str(exc))}", highlight=False)
            ok = False
            continue
        prices = stage_prices(policy)
        usd = money([cost for _, *costs in prices for cost in costs] + [policy.budget.max_cost_usd or 0.0])
        budget = usd(policy.budget.max_cost_usd) if policy.budget.max_cost_usd else "none"
        columns = [Column(n) for n in ("stage", "provider", "model")] + [Column("threshold", numeric=True)]
        columns += [Column("judge"), Column("answer", numeric=True), Column("+ judge", numeric=True)]
        columns += [Column("structured output"), Column("tools")]
        sheet = Sheet(
            f"{given}: {policy.name} v{policy.version} - valid",
            columns,
            caption=f"price of an average query ({AVERAGE_INPUT_TOKENS} tokens in, {AVERAGE_OUTPUT_TOKENS} out) at "
            f"each stage; {len(policy.routing.rules)} routing rule(s); budget {budget} per query; "
            f"on_error={policy.on_error}",
        )
        for index, (stage, (name, answer, judge_cost)) in enumerate(zip(policy.stages, prices, strict=True)):
            judge = policy.judge_for(stage)
            judged = index < len(policy.stages) - 1 or policy.judge_last_stage  # a free judge is a judge too
            sheet.add(
                name,
                stage.provider,
                stage.model,
                f"{stage.threshold:.2f}" if stage.threshold is not None else "-",
                f"{judge.provider}/{judge.model} ({_judge_method(policy, judge)})" if judged else "-",
                usd(answer),
                usd(judge_cost) if judged else "-",
                *(_feature(policy, stage, feature) for feature in FEATURES),
            )
        show(out, sheet)
        if policy.output is not None:
            out.print(f"every answer must fit {policy.output.schema_file}", markup=False, highlight=False)
    return ok
