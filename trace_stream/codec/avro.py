"""Avro in and out. Schemas are parsed once; every decoding failure becomes InvalidEvent.

Records are plain Avro binary without a registry envelope: the schemas in
`schemas/` are the contract between the platform and this service.
"""

from __future__ import annotations

import io
import json
import os
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import fastavro
from pydantic import BaseModel, ValidationError

from trace_stream.core.errors import ConfigError, InvalidEvent
from trace_stream.core.records import DeadLetter, TraceDelivery

SCHEMA_DIR_ENV = "TRACE_SCHEMA_DIR"


def schema_dir() -> Path:
    """`$TRACE_SCHEMA_DIR`, else the schemas installed with the package, else (an
    editable install) the checkout's `schemas/`, their single source."""
    configured = os.environ.get(SCHEMA_DIR_ENV)
    if configured:
        return Path(configured)
    # A wheel carries them as package data (see pyproject.toml). An editable install
    # maps the package onto the checkout, where they sit beside `trace_stream/`.
    here = Path(__file__).resolve().parent.parent
    packaged = here / "schemas"
    return packaged if packaged.is_dir() else here.parent / "schemas"


@cache
def _schemas() -> dict[str, Any]:
    named: dict[str, Any] = {}
    parsed = {}
    # Order matters: dead_letter refers to types that trace_delivery defines.
    for name in ("trade_closed", "trace_delivery", "dead_letter", "signal_tracing"):
        raw = json.loads((schema_dir() / f"{name}.avsc").read_text())
        parsed[name] = fastavro.parse_schema(raw, named_schemas=named)
    return parsed


def check_schemas() -> None:
    """Parse every schema now (they are parsed once, then kept); a ConfigError naming
    TRACE_SCHEMA_DIR in one line when one cannot be read, before anything connects."""
    where = schema_dir()
    try:
        _schemas()
    except FileNotFoundError as exc:
        missing = Path(exc.filename or "").name or "a schema"
        raise ConfigError(f"{SCHEMA_DIR_ENV}: no {missing} in {where}") from None
    except (OSError, ValueError, fastavro.schema.SchemaParseException) as exc:
        raise ConfigError(
            f"{SCHEMA_DIR_ENV}: the schemas in {where} cannot be read ({type(exc).__name__})"
        ) from None


def schema(name: str) -> Any:
    return _schemas()[name]


def encode(name: str, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema(name), record)
    return buf.getvalue()


def decode(name: str, data: bytes) -> dict[str, Any]:
    """Decode one record; raise InvalidEvent('undecodable') on any malformed input.

    The detail names only the exception type: fastavro messages can quote the
    bytes they choked on, and those bytes may be personal data.
    """
    buf = io.BytesIO(data)
    try:
        record = fastavro.schemaless_reader(buf, schema(name), None)
    except Exception as exc:  # fastavro raises many types for garbage input
        raise InvalidEvent(
            "undecodable", f"not a valid {name} Avro record ({type(exc).__name__})"
        ) from None
    if buf.tell() != len(data):
        raise InvalidEvent(
            "undecodable", f"{len(data) - buf.tell()} trailing bytes after a {name} record"
        )
    if not isinstance(record, dict):
        raise InvalidEvent("undecodable", f"not a {name} record")
    return record


def decode_trade_closed(data: bytes) -> dict[str, Any]:
    """A plain-Avro trade.closed event, written in exactly this service's schema."""
    return decode("trade_closed", data)


M = TypeVar("M", bound=BaseModel)


def _decode_model(name: str, model: type[M], data: bytes) -> M:
    try:
        return model.model_validate(decode(name, data))
    except ValidationError as exc:
        detail = (
            f"invalid {name} ({exc.error_count()} errors)"  # no input values: they may be personal
        )
        raise InvalidEvent("undecodable", detail) from None


def encode_delivery(delivery: TraceDelivery) -> bytes:
    return encode("trace_delivery", delivery.model_dump())


def decode_delivery(data: bytes) -> TraceDelivery:
    return _decode_model("trace_delivery", TraceDelivery, data)


def encode_dead_letter(letter: DeadLetter) -> bytes:
    return encode("dead_letter", letter.model_dump())


def decode_dead_letter(data: bytes) -> DeadLetter:
    return _decode_model("dead_letter", DeadLetter, data)
