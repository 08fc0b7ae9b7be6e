"""The records on the data path, as frozen pydantic models.

`TradeClosed` is the input and the only model that carries personal fields.
Everything after the redaction step holds a `Trace`, which has no field for
personal data at all (`extra="forbid"`), so a personal field cannot ride along
by accident.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from trace_stream.core.reasons import Reason


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TradeClosed(BaseModel):
    """A `trade.closed` event as decoded from Avro. Unknown fields are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    trade_id: str
    signal_id: str
    user_id: str
    user_email: str
    user_name: str
    client_id: str
    account_id: str
    instrument: str
    side: str
    volume: float
    entry_price: float
    exit_price: float
    opened_at: datetime
    closed_at: datetime
    profit_loss: float
    fees: float
    currency: str
    status: str
    tracing_opt_in: bool
    tracing_adapters: tuple[str, ...]


class Trace(_Frozen):
    """A redacted closed trade: the only facts a tracker ever sees."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    trade_id: str
    signal_id: str
    instrument: str
    side: Literal["BUY", "SELL"]
    volume: float
    entry_price: float
    exit_price: float
    opened_at: datetime
    closed_at: datetime
    profit_loss: float


class Origin(_Frozen):
    """Where a record was read: its Kafka coordinates."""

    topic: str
    partition: int
    offset: int


class AttemptError(_Frozen):
    at: datetime
    adapter: str
    reason: str
    detail: str


class TraceDelivery(_Frozen):
    """A trace on its way to one or more adapters (delay and retry topics)."""

    trace: Trace
    adapters: tuple[str, ...]
    attempt: int = 0
    due_at: datetime
    first_attempt_at: datetime | None = None
    errors: tuple[AttemptError, ...] = ()
    origin: Origin


class DeadLetter(_Frozen):
    """An abandoned delivery or an unprocessable input event (dead-letter topic).
    Built only by `core.dead_letters.dead_letter`."""

    reason: Reason
    detail: str
    adapter: str | None = None
    dead_at: datetime
    origin: Origin
    delivery: TraceDelivery | None = None
    redacted: str | None = Field(default=None, description="allow-listed fields as JSON")
