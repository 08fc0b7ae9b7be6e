"""What the per-record work costs, model by model: pydantic (today) against msgspec.

One process, no broker: each step of a trade's way through the service, timed alone
on a typical trade (`devenv.trades.trade_event`), in microseconds per record (the
best of `--repeat` timings of `--number` calls each, so that other load on the machine
inflates the figures as little as it can):

    stage 1   decode trade.closed (fastavro), plan (validate, redact, build the
              delivery), encode the delivery (model_dump, fastavro)
    stage 2   decode the delivery (fastavro, then model_validate), the webhook body,
              a file export line

and the same model steps with msgspec Structs of the same fields (`msgspec.convert`
from the decoded dict, `msgspec.to_builtins` for the encoder, `msgspec.json.encode`
for the body). The Avro work (fastavro) is the same either way.

    .venv/bin/python -m bench.records
"""

from __future__ import annotations

import argparse
import json
import timeit
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec

from devenv.trades import trade_event
from trace_stream import codec
from trace_stream.codec import avro
from trace_stream.core.records import Origin, TraceDelivery
from trace_stream.pipeline.ingest import Schedule, plan


class MTrace(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
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


class MOrigin(msgspec.Struct, frozen=True):
    topic: str
    partition: int
    offset: int


class MAttemptError(msgspec.Struct, frozen=True):
    at: datetime
    adapter: str
    reason: str
    detail: str


class MDelivery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    trace: MTrace
    adapters: tuple[str, ...]
    due_at: datetime
    origin: MOrigin
    attempt: int = 0
    first_attempt_at: datetime | None = None
    errors: tuple[MAttemptError, ...] = ()


def cases() -> dict[str, Callable[[], Any]]:
    now = datetime.now(UTC)
    raw = codec.encode("trade_closed", trade_event("bench-0000001", now))
    origin = Origin(topic="trade.closed", partition=0, offset=1)

    def schedule() -> TraceDelivery:
        p = plan(
            raw,
            origin,
            enabled_adapters=frozenset({"webhook"}),
            delay=timedelta(0),
            now=now,
            decode=codec.decode_trade_closed,
        )
        assert isinstance(p, Schedule)
        return p.delivery

    delivery = schedule()
    value = avro.encode_delivery(delivery)
    decoded = avro.decode("trace_delivery", value)
    struct = msgspec.convert(decoded, MDelivery)
    body = msgspec.json.Encoder()
    return {
        "stage 1, all of it (decode, plan, encode)": lambda: avro.encode_delivery(schedule()),
        "  fastavro: decode trade.closed": lambda: codec.decode_trade_closed(raw),
        "  plan (decode, validate, redact, TraceDelivery)": schedule,
        "  encode the delivery (model_dump + fastavro)": lambda: avro.encode_delivery(delivery),
        "    pydantic: model_dump": delivery.model_dump,
        "    msgspec: to_builtins": lambda: msgspec.to_builtins(struct, builtin_types=(datetime,)),
        "stage 2: decode the delivery (fastavro + model)": lambda: avro.decode_delivery(value),
        "  fastavro: decode only": lambda: avro.decode("trace_delivery", value),
        "  pydantic: TraceDelivery.model_validate": lambda: TraceDelivery.model_validate(decoded),
        "  msgspec: convert to a Struct": lambda: msgspec.convert(decoded, MDelivery),
        "webhook body: model_dump(json) + json.dumps (before)": lambda: json.dumps(
            delivery.trace.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":")
        ).encode(),
        "webhook body: pydantic model_dump_json (now)": lambda: (
            delivery.trace.model_dump_json().encode()
        ),
        "webhook body: msgspec json.encode": lambda: body.encode(struct.trace),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--number", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    for name, call in cases().items():
        best = min(timeit.repeat(call, number=args.number, repeat=args.repeat))
        print(f"{name:56} {best / args.number * 1e6:7.1f} us")


if __name__ == "__main__":
    main()
