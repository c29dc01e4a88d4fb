"""The fleet's sections of a policy: `breaker:`, `limits:` and `state:` (strict pydantic models, like the rest).

They live here rather than in `cascade.policy` because they describe state shared by every query of a fleet of
workers, not one query; `Policy` holds them as fields, so the committed JSON Schema documents them too.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class BreakerSettings(_Strict):
    """A circuit breaker per (provider, model), shared by every query that uses the same state.

    After `failures` retryable failures in a row (429, 5xx, a timeout, a dropped connection) within `window_s`,
    calls to that model are not sent for a cool-down: a stage on it is skipped, a judge or classifier on it
    counts as failed. When the cool-down ends one probe call is let through; its success closes the breaker,
    its failure opens it again.
    """

    enabled: bool = True
    failures: int = Field(5, ge=1, le=1000, description="Retryable failures in a row that open the breaker.")
    window_s: float = Field(60.0, gt=0, le=86_400, description="The failures must fall within this many seconds.")
    cooldown_s: float = Field(
        30.0, gt=0, le=3600, description="How long an open breaker skips the model when the vendor sent no Retry-After."
    )
    max_cooldown_s: float = Field(
        300.0, gt=0, le=86_400, description="A longer Retry-After from the vendor is cut to this."
    )

    @model_validator(mode="after")
    def _cooldowns_ordered(self) -> BreakerSettings:
        if self.cooldown_s > self.max_cooldown_s:
            raise ValueError(f"cooldown_s ({self.cooldown_s}) is longer than max_cooldown_s ({self.max_cooldown_s})")
        return self


class SpendLimit(_Strict):
    """USD per calendar period (UTC minute, hour, day); a period left out has no limit."""

    per_minute: float | None = Field(None, gt=0)
    per_hour: float | None = Field(None, gt=0)
    per_day: float | None = Field(None, gt=0)

    def periods(self) -> list[tuple[str, int, float]]:
        """(name, seconds, limit) of every period that has a limit."""
        given = (("minute", 60, self.per_minute), ("hour", 3600, self.per_hour), ("day", 86_400, self.per_day))
        return [(name, seconds, limit) for name, seconds, limit in given if limit is not None]


class SpendLimits(_Strict):
    """What the whole fleet may spend: every call is reserved at the most it can cost before it is sent."""

    policy: SpendLimit = Field(
        default_factory=SpendLimit, description="Every query of this policy (by name), whichever worker runs it."
    )
    tenant: SpendLimit = Field(
        default_factory=SpendLimit,
        description="Each tenant (`run(..., tenant=...)`): all it spends, under any policy, against this policy's "
        "limit. Queries without a tenant are not counted here.",
    )


class RateLimit(_Strict):
    """What one provider takes per minute, for the whole fleet; a call waits for its turn within its deadline."""

    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(
        None, ge=1, description="Prompt (estimated) plus the output allowance, corrected to the real count after."
    )


class RateLimits(_Strict):
    """Rate limits per provider: the three vendors, and any provider the policy declares under `providers:` by the
    name it gives it (the policy checks that each name here is one)."""

    model_config = ConfigDict(extra="allow", frozen=True, str_strip_whitespace=True)
    # A declared provider's limits arrive as extra keys: validated as RateLimit all the same.
    __pydantic_extra__: dict[str, RateLimit] = Field(init=False)

    openai: RateLimit | None = None
    anthropic: RateLimit | None = None
    google: RateLimit | None = None


class Limits(_Strict):
    """Fleet-wide limits: spend per policy and per tenant, requests and tokens per provider."""

    spend: SpendLimits = Field(default_factory=SpendLimits)
    rate: RateLimits = Field(default_factory=RateLimits)


_SCHEMES = ("redis", "rediss", "unix")


class StateSettings(_Strict):
    """Where breakers, spend and rates are kept: in this process (default), or in Redis for a fleet of workers.

    If Redis cannot be reached, each worker carries on with its own in-process state (and says so in a
    `cascade.state` warning event) until Redis answers again; no query fails for it.
    """

    redis: str | None = Field(
        None,
        description="redis://host:port/db (rediss:// for TLS, unix:///path.sock). No password here: a URL that "
        "needs one goes in an environment variable named by redis_url_env.",
    )
    redis_url_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Environment variable holding the Redis URL."
    )
    key_prefix: str = Field(
        "cascade", pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="Prefix of every key, to share one Redis."
    )

    @model_validator(mode="before")
    @classmethod
    def _a_redis_url(cls, data: Any) -> Any:
        # Checked on the whole section, so that a refused URL (which may hold a password) is not echoed back in
        # the error message the way a refused field value is.
        value = data.get("redis") if isinstance(data, dict) else None
        if not isinstance(value, str):
            return data
        parts = urlsplit(value.strip())
        if parts.scheme not in _SCHEMES:
            raise ValueError(f"redis: not a Redis URL (the scheme must be one of {', '.join(_SCHEMES)})")
        if parts.password is not None:
            raise ValueError(
                "redis: a password does not belong in a policy; put the URL in a variable named by redis_url_env"
            )
        return data

    @model_validator(mode="after")
    def _one_source(self) -> StateSettings:
        if self.redis is not None and self.redis_url_env is not None:
            raise ValueError("give redis or redis_url_env, not both")
        return self
