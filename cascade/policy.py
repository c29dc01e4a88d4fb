"""Policies: one YAML file per product saying which models answer, who judges, and when to escalate.

Policies are strict pydantic models (`extra="forbid"`): a typo is an error, never a silent default. Every
problem is reported as `PolicyError` with the file, the field path and what is wrong. The committed JSON
Schema (`policies/policy.schema.json`, printed by `cascade policy schema`) is generated from these models.

The YAML is read strictly too: a key given twice, nesting past 100 levels, a file that is not UTF-8 text or is
over 1 MiB are errors, and a plain `version: 1.10` is read as the text written, not as the number 1.1.
A policy shipped with the package is found by its name (`load_policy("current-models")`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from cascade import _policy_file, _rule_regex
from cascade._paths import find_policy, shipped_policy_files
from cascade.errors import PolicyError
from cascade.fleet.settings import BreakerSettings, Limits, RateLimits, StateSettings
from cascade.monitor.config import MonitorConfig
from cascade.prices import ModelPrice, PriceTable, load_prices

VENDORS = ("openai", "anthropic", "google")
# What an entry under `providers:` speaks: a vendor's own API, or OpenAI's Chat Completions served by someone
# else (vLLM, Ollama, a gateway), called through the openai SDK at the entry's `base_url`.
ProviderKind = Literal["openai", "anthropic", "google", "openai-compatible"]
_PROVIDER_NAME = r"^[a-z][a-z0-9_-]{0,31}$"


def _provider_name(value: str) -> str:
    if not re.fullmatch(_PROVIDER_NAME, value):
        raise PydanticCustomError(
            "provider_name", "a provider name is a lower-case letter, then up to 31 lower-case letters, digits, - or _"
        )
    return value


# A vendor's name, or the name of an entry under `providers:` (checked against them in `Policy._consistent`).
ProviderName = Annotated[
    str,
    AfterValidator(_provider_name),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _PROVIDER_NAME,
            "description": "openai, anthropic, google, or the name of an entry under `providers:`.",
        }
    ),
]
StageName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class JudgeConfig(_Strict):
    """The LLM that grades a stage's answer. Its score / 10 is the confidence compared with the threshold."""

    provider: ProviderName = "openai"
    model: str = Field("gpt-4o-mini", min_length=1)
    method: Literal["json", "logprobs"] = Field(
        "json",
        description='json: ask for {"score": 0-10, "reason": ...}. logprobs: one score token, '
        "probability-weighted from the top log-probabilities (OpenAI, Gemini); falls back to json elsewhere.",
    )
    prompt: str | None = Field(
        None,
        description="Grading instructions for this product. cascade adds the delimited query and answer and "
        "the reply format itself, so a custom prompt cannot weaken them.",
    )
    max_output_tokens: int = Field(100, ge=1, le=4096)
    temperature: float | None = Field(0.0, ge=0, le=2, description="0 for repeatable grades; null for the default.")
    timeout_s: float = Field(30.0, gt=0, le=600)
    retries: int = Field(1, ge=0, le=10)
    max_context_chars: int = Field(
        8000,
        ge=0,
        le=1_000_000,
        description="How much of the conversation before the last user turn (the system prompt and earlier turns) "
        "the judge sees, in characters; cut from the oldest turn. 0: the last turn only.",
    )


NEVER = "never"


def _never_is_inf(value: Any) -> Any:
    """`never` is read as +inf, a threshold above every confidence; a number has to be written as one."""
    if value == NEVER:
        return math.inf
    if isinstance(value, float) and math.isinf(value):
        raise PydanticCustomError("threshold_inf", "write `never` for a stage whose answer is never accepted")
    return value


def _threshold_in_range(value: float) -> float:
    if value < 0:
        raise PydanticCustomError("greater_than_equal", "Input should be greater than or equal to 0")
    if value > 1 and value != math.inf:
        raise PydanticCustomError("less_than_equal", "Input should be less than or equal to 1")
    return value


# A threshold in [0, 1], or `never` (held as math.inf, so `confidence >= threshold` never holds).
Threshold = Annotated[
    float,
    BeforeValidator(_never_is_inf),
    AfterValidator(_threshold_in_range),
    PlainSerializer(lambda value: NEVER if value == math.inf else value, return_type=float | str),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"const": NEVER}]}),
]


class Features(_Strict):
    """What a stage's model can do beyond text (unset: cascade's table says)."""

    structured_output: bool | None = None
    tools: bool | None = None


class Stage(_Strict):
    """One tier of the cascade."""

    name: StageName
    provider: ProviderName
    model: str = Field(min_length=1)
    threshold: Threshold | None = Field(
        None,
        description="Accept this stage's answer when the judge's confidence is >= this; `never`: the stage "
        "still answers and is judged (its answer is the fallback if later stages fail) but is never accepted.",
    )
    max_output_tokens: int = Field(1024, ge=1, le=200_000)
    temperature: float | None = Field(
        None,
        ge=0,
        le=2,
        description="Sampling temperature; leave out for the model's default (reasoning models "
        "accept no other). Not sent to Anthropic, whose current API version rejects it.",
    )
    system_prompt: str | None = None
    timeout_s: float = Field(60.0, gt=0, le=3600, description="Per call, including retries.")
    retries: int = Field(2, ge=0, le=10, description="Retries of a retryable vendor error (429, 5xx, timeout).")
    judge: JudgeConfig | None = Field(None, description="Overrides the policy's judge for this stage.")
    accept_valid_output: bool = Field(
        False,
        description="When a structured answer or a tool call is asked for: an answer that validates is accepted "
        "without a judge call (recorded as confidence 1.0, so `threshold: never` still holds).",
    )
    features: Features | None = Field(
        None,
        description="What the model can do, where cascade's table (cascade/capabilities.py) is wrong or silent. "
        "A stage that cannot serve a query is skipped, with the reason in the result.",
    )


class RoutingRule(_Strict):
    """Send matching queries straight to `stage`. All conditions given must hold; the first rule matching wins."""

    name: str = Field(min_length=1)
    stage: str
    regex: str | None = Field(
        None,
        max_length=10_000,
        description="RE2 regex searched in the query (case-insensitive; linear-time: no backreferences or "
        "lookaround; \\w, \\d and \\b are ASCII, \\pL is any letter).",
    )
    keywords: list[str] = Field(default_factory=list, description="Words looked for, case-insensitive.")
    min_keywords: int = Field(1, ge=1, description="How many distinct keywords must appear.")
    min_chars: int | None = Field(None, ge=0)
    max_chars: int | None = Field(None, ge=0)

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None and (problem := _rule_regex.problem(value)):
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _has_a_condition(self) -> RoutingRule:
        if self.regex is None and not self.keywords and self.min_chars is None and self.max_chars is None:
            raise ValueError("a rule needs at least one of regex, keywords, min_chars, max_chars")
        if self.keywords and self.min_keywords > len(self.keywords):
            raise ValueError(f"min_keywords is {self.min_keywords} but only {len(self.keywords)} keywords given")
        return self


class ClassifierConfig(_Strict):
    """A cheap LLM that labels each query low / medium / high; each label names an entry stage."""

    provider: ProviderName = "openai"
    model: str = Field("gpt-4o-mini", min_length=1)
    labels: dict[Literal["low", "medium", "high"], str]
    prompt: str | None = Field(None, description="Extra guidance on what counts as low, medium and high.")
    max_output_tokens: int = Field(10, ge=1, le=256)
    timeout_s: float = Field(15.0, gt=0, le=600)


class Routing(_Strict):
    """The complexity matrix: rules first, then the classifier if enabled, else the first stage."""

    rules: list[RoutingRule] = Field(default_factory=list)
    classifier: ClassifierConfig | None = None


class Budget(_Strict):
    """Limits per query."""

    max_cost_usd: float | None = Field(None, gt=0, description="No call is made that could exceed this.")
    deadline_s: float = Field(120.0, gt=0, le=3600, description="Wall-clock limit for the whole query.")


class ProviderConfig(_Strict):
    """How to reach a provider: a vendor (under its own name) or an endpoint of your own (under a name you choose,
    which stages, judges and the classifier then name). Keys never live in a policy: only the name of the variable
    holding one."""

    kind: ProviderKind | None = Field(
        None,
        description="The API the endpoint speaks: openai, anthropic, google, or openai-compatible (vLLM, Ollama, a "
        "gateway: OpenAI's Chat Completions at base_url). An entry named after a vendor is that vendor; any other "
        "name must say its kind.",
    )
    api_key_env: str | None = Field(
        None,
        description="Environment variable holding the API key. Default: the vendor's own (OPENAI_API_KEY, ...); for "
        "kind openai-compatible none, and then no Authorization header is sent.",
    )
    base_url: str | None = Field(
        None, description="A proxy or gateway; default: the vendor's API. Required for kind openai-compatible."
    )
    backend: Literal["genai", "generativeai"] | None = Field(
        None, description="google only: genai (google-genai, default) or generativeai (legacy, opt-in)."
    )
    async_http: Literal["httpx", "aiohttp"] = Field(
        "httpx",
        description="The HTTP library under the async SDK client. httpx: the SDKs' default. aiohttp: the SDKs' own "
        "aiohttp backend, about half the client CPU per call at high concurrency; needs the `aiohttp` extra. "
        "Sync calls are unchanged. Not available with google's generativeai backend (it uses `requests`).",
    )

    @model_validator(mode="after")
    def _async_http_has_a_backend(self) -> ProviderConfig:
        if self.async_http == "aiohttp" and self.backend == "generativeai":
            raise _FieldError(
                ("async_http",),
                "aiohttp needs backend genai: the generativeai backend sends every call with `requests`",
            )
        return self

    @model_validator(mode="after")
    def _compatible_has_a_url(self) -> ProviderConfig:
        if self.kind == "openai-compatible" and not self.base_url:
            # There is no default to fall back on: the openai SDK's would send the calls to api.openai.com.
            raise _FieldError(
                ("base_url",), "required for kind openai-compatible: the endpoint's URL (http://host:port/v1)"
            )
        return self


class OutputConfig(_Strict):
    """The structure every answer of this policy must fit; a call's `output_type=` replaces it."""

    schema_file: str = Field(
        min_length=1, description="A JSON Schema file (JSON or YAML), relative to the policy file; type object."
    )
    _schema: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _load(self, info: ValidationInfo) -> OutputConfig:
        from cascade.errors import InvalidArgumentError
        from cascade.structured import OutputType

        base = (info.context or {}).get("base") if info is not None else None
        path = Path(self.schema_file).expanduser()
        if not path.is_absolute():
            # Normalised before it is opened: `..` must not need the folders it passes through to exist yet.
            path = Path(os.path.normpath(Path(base or ".") / path))
        try:
            data = _policy_file.load(_policy_file.read_text(path), source=str(path))
        except PolicyError as exc:  # names the file and what is wrong with it
            raise _FieldError(("schema_file",), str(exc)) from None
        except OSError as exc:
            raise _FieldError(("schema_file",), f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            OutputType.of(data)
        except InvalidArgumentError as exc:
            raise _FieldError(("schema_file",), f"{path}: {exc}") from None
        self._schema = data
        return self

    @property
    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema read from `schema_file`."""
        return self._schema


class StreamConfig(_Strict):
    """How `Cascade.stream` shows answers (a call's `mode=` replaces it)."""

    mode: Literal["buffered", "speculative", "final"] = Field(
        "buffered",
        description="buffered: a judged stage's answer is held until its judge accepts it (unjudged and rule-routed "
        "stages stream straight through); speculative: shown at once, withdrawn with a reset when rejected; final: "
        "only the last stage streams.",
    )


class PriceOverride(_Strict):
    """USD per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(None, ge=0)
    context_window: int | None = Field(None, gt=0)


class Policy(_Strict):
    """A product's cascade: stages in order of cost, the judge, routing, budget and error handling."""

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    description: str | None = None
    stages: list[Stage] = Field(min_length=1)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    judge_last_stage: bool = Field(False, description="Also judge the last stage (it is accepted either way).")
    routing: Routing = Field(default_factory=Routing)
    budget: Budget = Field(default_factory=Budget)
    on_error: Literal["escalate", "raise"] = "escalate"
    output: OutputConfig | None = Field(None, description="A structured answer for every query (a schema file).")
    stream: StreamConfig = Field(default_factory=StreamConfig)
    providers: dict[ProviderName, ProviderConfig] = Field(default_factory=dict)
    prices: dict[str, PriceOverride] = Field(default_factory=dict)
    log_text: bool = Field(False, description="Put query and answer text in log events (off: privacy).")
    # A fleet of workers (cascade/fleet/): shared breakers, spend limits and rate limits.
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    limits: Limits = Field(default_factory=Limits)
    state: StateSettings = Field(default_factory=StateSettings)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        if isinstance(value, float):  # 1.10 and 1.1 are the same float: which was meant is lost
            raise ValueError(f'a version is text, not the number {value!r}: quote it (version: "{value!r}")')
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        names = [s.name for s in self.stages]
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                raise _FieldError(("stages", i, "name"), f"duplicate stage name {name!r}")
            seen.add(name)
        for i, stage in enumerate(self.stages[:-1]):
            if stage.threshold is None:
                raise _FieldError(("stages", i, "threshold"), "required on every stage but the last")
        if self.stages[-1].threshold is not None:
            raise _FieldError(
                ("stages", len(self.stages) - 1, "threshold"),
                "the last stage's answer is kept whatever its confidence, so a threshold there would do nothing: "
                "remove it",
            )
        for i, rule in enumerate(self.routing.rules):
            if rule.stage not in seen:
                raise _FieldError(("routing", "rules", i, "stage"), f"no stage named {rule.stage!r} ({_known(names)})")
        if self.routing.classifier:
            for label, stage_name in self.routing.classifier.labels.items():
                if stage_name not in seen:
                    raise _FieldError(
                        ("routing", "classifier", "labels", label), f"no stage named {stage_name!r} ({_known(names)})"
                    )
        self._providers_consistent()
        table = self.price_table()
        for where, use in self._provider_uses():
            # The shipped prices are the vendors'. A model served elsewhere (self-hosted, a gateway) costs what
            # its owner says, even under a name the vendors' price list knows.
            if self.provider_kind(use.provider) == "openai-compatible" and not isinstance(
                table.find(use.model), ModelPrice
            ):
                raise _FieldError(
                    (*where, "model"),
                    f"model {use.model!r} runs on {use.provider!r} (openai-compatible), so the vendors' prices do "
                    "not apply: give its price under `prices:` in the policy (0 for a self-hosted model)",
                )
        for path, model in self._models():
            if table.find(model) is None:
                raise _FieldError(path, f"no price for model {model!r}: add it under `prices:` in the policy")
        return self

    def _providers_consistent(self) -> None:
        """Each entry under `providers:` says what it speaks, and each provider named is a vendor or an entry."""
        for name, config in self.providers.items():
            where: tuple[str | int, ...] = ("providers", name)
            if name in VENDORS and config.kind not in (None, name):
                raise _FieldError(
                    (*where, "kind"),
                    f"the {name} entry is {name}'s own API; give an endpoint of kind {config.kind} a name of its own",
                )
            if name not in VENDORS and config.kind is None:
                raise _FieldError(
                    (*where, "kind"),
                    f"required for {name!r}, which is not a vendor: openai, anthropic, google or openai-compatible",
                )
            if name not in VENDORS and hasattr(RateLimits, name):
                # The fleet finds a provider's rate limit as the attribute of `limits.rate` of its name.
                raise _FieldError(where, f"{name!r} is a name the policy's models use for themselves: choose another")
            if config.backend is not None and self.provider_kind(name) != "google":
                raise _FieldError((*where, "backend"), "only the google provider (or one of kind google) has backends")
        declared = [name for name in self.providers if name not in VENDORS]
        known = "declared: " + ", ".join(declared) if declared else "none declared"
        for where, use in self._provider_uses():
            if use.provider not in VENDORS and use.provider not in self.providers:
                raise _FieldError(
                    (*where, "provider"),
                    "Input should be 'openai', 'anthropic', 'google' or a provider declared under `providers:` "
                    f"({known}) (got {use.provider!r})",
                )
        for name in self.limits.rate.model_extra or {}:
            if name not in self.providers:
                raise _FieldError(
                    ("limits", "rate", name),
                    "unknown field: rate limits are for openai, anthropic, google or a provider declared under "
                    f"`providers:` ({known})",
                )

    def _provider_uses(self) -> list[tuple[tuple[str | int, ...], JudgeConfig | Stage | ClassifierConfig]]:
        """Every part of the policy that calls a provider (its `provider` and `model` fields), and where it is."""
        found: list[tuple[tuple[str | int, ...], JudgeConfig | Stage | ClassifierConfig]] = [(("judge",), self.judge)]
        for i, stage in enumerate(self.stages):
            found.append((("stages", i), stage))
            if stage.judge:
                found.append((("stages", i, "judge"), stage.judge))
        if self.routing.classifier:
            found.append((("routing", "classifier"), self.routing.classifier))
        return found

    def _models(self) -> list[tuple[tuple[str | int, ...], str]]:
        return [((*where, "model"), use.model) for where, use in self._provider_uses()]

    # -- helpers the engine uses ------------------------------------------------------------------

    def price_table(self) -> PriceTable:
        """The shipped prices with this policy's overrides applied."""
        overrides = {m: ModelPrice(**p.model_dump()) for m, p in self.prices.items()}
        return load_prices().with_overrides(overrides)

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def stage_index(self, name: str) -> int:
        return [s.name for s in self.stages].index(name)

    def judge_for(self, stage: Stage) -> JudgeConfig:
        return stage.judge or self.judge

    def provider_kind(self, name: str) -> ProviderKind:
        """The API a provider speaks: the `kind` of its entry under `providers:`, else the vendor of that name."""
        config = self.providers.get(name)
        if config is not None and config.kind is not None:
            return config.kind
        return cast(ProviderKind, name)

    # -- loading ----------------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path) -> Policy:
        """Load and validate a YAML policy file (a path; `load_policy` also takes a shipped policy's name)."""
        path = Path(path)
        return cls.from_yaml(_policy_file.read_text(path), source=str(path), base=path.parent)

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<string>", base: str | Path | None = None) -> Policy:
        """Validate a policy given as YAML text (read strictly, see `cascade._policy_file`); `base` is the folder
        relative file names in it (`output.schema_file`) start from (default: the working directory)."""
        return cls.from_dict(_policy_file.load(text, source=source), source=source, base=base)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<dict>", base: str | Path | None = None) -> Policy:
        """Validate a policy given as a mapping (`base`: as for `from_yaml`)."""
        if not isinstance(data, Mapping):
            kind = "empty" if data is None else f"a {type(data).__name__}"
            raise PolicyError(source, [("", f"a policy must be a mapping of fields, got {kind}")])
        try:
            return cls.model_validate(dict(data), context={"base": str(base) if base is not None else None})
        except ValidationError as exc:
            raise PolicyError(source, _problems(exc)) from None


def load_policy(policy: str | Path) -> Policy:
    """Load and validate a policy file, or a shipped policy by name (`"current-models"`, see `shipped_policies`).

    A path that exists is always read as a path. Raises `PolicyError` naming the file, field and problem.
    """
    return Policy.from_file(find_policy(policy))


def shipped_policies() -> dict[str, str]:
    """The policies shipped with the package, by the name `load_policy` takes, with a one-line description."""
    found: dict[str, str] = {}
    for name, path in shipped_policy_files().items():
        policy = Policy.from_file(path)
        found[name] = " ".join((policy.description or f"{policy.name} {policy.version}").split())
    return found


class _FieldError(ValueError):
    """A cross-field problem that should be reported at a precise path, not at the policy's root."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def _known(names: list[str]) -> str:
    return "stages are " + ", ".join(names)


def _format_loc(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", str(part)):
            out += f"[{str(part)!r}]"  # a key a person could not read as a field name (spaces, control chars)
        else:
            out += f".{part}" if out else str(part)
    return out


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _FieldError):
            problems.append((_format_loc(loc + ctx_error.loc), ctx_error.message))
            continue
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] not in ("missing", "extra_forbidden") and not isinstance(err.get("input"), dict | list):
            message += f" (got {_clip(repr(err.get('input')))})"
        if err["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; `cascade policy schema` prints every field)"
        problems.append((_format_loc(loc), message))
    return problems


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
