"""The `monitor:` block of a policy (`Policy.monitor`), strict like the rest of the policy (`extra="forbid"`).

It lives beside the code it configures; `cascade.policy` imports it, so it imports nothing of the engine.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class MonitorConfig(BaseModel):
    """Live monitoring (docs/monitoring.md): OpenTelemetry spans and metrics, and shadow sampling.

    A sampled query is also run, after its answer is returned, through the stages it did not need (the calls it
    made are reused, not repeated), every answer judged; the row is appended to `traces` in `cascade collect`'s
    format, for `cascade drift`, `eval` and `tune`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    otel: bool = Field(
        True,
        description="Spans and metrics through OpenTelemetry when opentelemetry-api is installed (the `otel` "
        "extra); nothing is emitted until the application configures a tracer or meter provider.",
    )
    shadow_rate: float = Field(0.0, ge=0, le=1, description="Share of live queries shadowed (0.02: one in fifty).")
    traces: str | None = Field(
        None,
        min_length=1,
        validate_default=True,
        description="Where shadow rows are appended (JSON lines, docs/traces.md), relative to the working "
        "directory; `{pid}` is replaced by the process id (one file per worker process).",
    )
    shadow_max_cost_usd: float | None = Field(
        None, gt=0, description="The most one shadowed query may spend on calls the live query did not make."
    )
    shadow_usd_per_hour: float | None = Field(
        None, gt=0, description="No query is shadowed while the shadow calls of the last hour cost this much."
    )
    queue_size: int = Field(100, ge=1, le=100_000, description="Shadow queries waiting; past it they are dropped.")
    workers: int = Field(2, ge=1, le=64, description="Background threads running shadow queries.")

    @field_validator("traces")
    @classmethod
    def _shadow_has_a_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A field validator (not a model one), so that the error points at `monitor.traces`.
        if value is None and info.data.get("shadow_rate", 0) > 0:
            raise ValueError("shadow_rate is set: say where the shadow rows go")
        return value
