"""TRACE_RATE_LIMITS: each adapter's limits as configured, validated at start
(`state/limits.py` applies them)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RateLimitConfig(BaseModel):
    """One adapter's entry in TRACE_RATE_LIMITS; a key left out is no such limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    per_second: float | None = Field(default=None, gt=0, le=100_000)
    burst: int | None = Field(default=None, ge=1, le=1_000_000)
    per_day: int | None = Field(default=None, ge=1, le=1_000_000_000)

    @model_validator(mode="after")
    def _burst_needs_a_rate(self) -> RateLimitConfig:
        if self.burst is not None and self.per_second is None:
            raise ValueError("burst needs per_second")
        return self
