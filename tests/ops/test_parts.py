"""The pure parts of the operations commands, without a broker."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from trace_stream.core.records import AttemptError, DeadLetter, Origin, Trace, TraceDelivery
from trace_stream.ops import mask, positions, redrive
from trace_stream.ops.progress import Progress

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def test_from_accepts_a_time_an_offset_or_offsets_per_partition() -> None:
    assert positions.parse_start("2026-11-24T10:00:00Z") == NOW
    assert positions.parse_start("2026-11-24T10:00:00") == NOW, "no zone means UTC"
    assert positions.parse_start("120") == 120
    assert positions.parse_start("0:120,1:98") == {0: 120, 1: 98}
    with pytest.raises(argparse.ArgumentTypeError, match="ISO-8601"):
        positions.parse_start("yesterday")


def test_secrets_and_url_paths_are_masked() -> None:
    assert mask.shown("kafka_sasl_password", SecretStr("s3cret")) == mask.MASK
    assert mask.shown("sasl.password", "s3cret") == mask.MASK
    assert mask.shown("kafka_extra_config", {"ssl.key.password": "x", "linger.ms": "5"}) == (
        '{"ssl.key.password": "**********", "linger.ms": "5"}'
    )
    hook = "https://user:pw@hooks.example:8443/services/T0/B0/XYZ?token=abc"
    assert mask.shown("alert_webhook_url", hook) == "https://hooks.example:8443/..."
    assert mask.shown("trace_topic_prefix", "trace") == "trace"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_at_most_once_per_interval_and_only_on_a_terminal() -> None:
    now = [0.0]
    screen = _Terminal()
    bar = Progress(100, "replay", screen, interval=0.1, clock=lambda: now[0])
    for _ in range(50):
        bar.advance()
    now[0] = 0.2
    bar.advance()
    assert screen.getvalue().count("replay [") == 2
    assert bar.render().endswith(" 51%  51/100")
    piped = io.StringIO()
    quiet = Progress(100, "replay", piped)
    quiet.advance(100)
    quiet.close()
    assert piped.getvalue() == ""


def _delivery() -> TraceDelivery:
    trace = Trace(
        trade_id="T-1",
        signal_id="S",
        instrument="EURUSD",
        side="BUY",
        volume=1,
        entry_price=1.0,
        exit_price=1.1,
        opened_at=NOW - timedelta(hours=1),
        closed_at=NOW,
        profit_loss=1.0,
    )
    error = AttemptError(at=NOW, adapter="webhook", reason="auth", detail="HTTP 401")
    return TraceDelivery(
        trace=trace,
        adapters=("webhook", "myfxbook"),
        attempt=1,
        due_at=NOW,
        first_attempt_at=NOW,
        errors=(error,),
        origin=Origin(topic="trade.closed", partition=0, offset=7),
    )


def test_a_redriven_delivery_restarts_its_attempts_and_keeps_its_history() -> None:
    origin = Origin(topic="trade.closed", partition=0, offset=7)
    letter = DeadLetter(
        reason="permanent_failure",
        detail="auth: HTTP 401 after 1 attempt(s)",
        adapter="webhook",
        dead_at=NOW,
        origin=origin,
        delivery=_delivery(),
    )
    later = NOW + timedelta(days=1)
    again = redrive.again(letter, later)
    assert again is not None
    assert (again.adapters, again.attempt, again.due_at) == (("webhook",), 0, later)
    assert again.errors == _delivery().errors
    invalid = letter.model_copy(update={"delivery": None, "adapter": None})
    assert redrive.again(invalid, later) is None
