"""Reading trade.closed in the Schema Registry wire format, when SCHEMA_REGISTRY_URL is set.

Each message is a magic byte 0, a 4-byte big-endian schema id, then Avro written with
that (writer) schema. The writer schema is fetched once per id from the registry
(`GET /schemas/ids/{id}`) and resolved against this service's reader schema
(`schemas/trade_closed.avsc`), so the platform can add fields, or drop ones that
have defaults, without breaking this consumer; added fields are dropped on read.

Without a registry, messages are plain Avro in exactly the reader schema.

A registry that is down is not the event's fault: fetches are retried with backoff
(`core.backoff`: 0.2 s doubling to 10 s, for `retry_for` seconds) and, if it stays
down, the error stops the stage (the orchestrator restarts it) instead of
dead-lettering good events. An id the registry does not know, or a writer schema
that cannot be resolved, dead-letters that event.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import fastavro
import httpx
from pydantic import SecretStr

from trace_stream import codec
from trace_stream.core.backoff import backoff
from trace_stream.core.errors import DependencyError, InvalidEvent
from trace_stream.settings import Settings

Decoder = Callable[[bytes], dict[str, Any]]
MAGIC = 0


class RegistryUnavailable(DependencyError):
    """The schema registry did not answer; retried, then fatal for the stage."""


def _unavailable(exc: BaseException) -> bool:
    return isinstance(exc, RegistryUnavailable)


class RegistryDecoder:
    def __init__(self, url: str, auth: SecretStr | None = None, retry_for: float = 60) -> None:
        credentials = None
        if auth is not None:
            user, _, password = auth.get_secret_value().partition(":")
            credentials = httpx.BasicAuth(user, password)
        # No connection is kept between fetches: there is one fetch per schema id, ever.
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            auth=credentials,
            timeout=10,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._reader = codec.schema("trade_closed")
        self._writers: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._retry_for = retry_for

    def __call__(self, data: bytes) -> dict[str, Any]:
        if len(data) < 5 or data[0] != MAGIC:
            raise InvalidEvent("undecodable", "no schema registry header (magic byte 0 + id)")
        writer = self._writer(int.from_bytes(data[1:5], "big"))
        buf = io.BytesIO(data[5:])
        try:
            record = fastavro.schemaless_reader(buf, writer, self._reader)
        except Exception as exc:  # garbage, or a writer schema that does not resolve
            raise InvalidEvent(
                "undecodable", f"not readable as trade_closed ({type(exc).__name__})"
            ) from None
        if buf.tell() != len(data) - 5 or not isinstance(record, dict):
            raise InvalidEvent("undecodable", "trailing bytes after a trade_closed record")
        return record

    def _writer(self, schema_id: int) -> Any:
        with self._lock:
            if schema_id not in self._writers:
                deadline = time.monotonic() + self._retry_for
                fetch = backoff(first=0.2, cap=10, retry_on=_unavailable, deadline=deadline)
                self._writers[schema_id] = fetch(self._fetch_once, schema_id)
            return self._writers[schema_id]

    def _fetch_once(self, schema_id: int) -> Any:
        try:
            response = self._http.get(f"/schemas/ids/{schema_id}")
        except httpx.TransportError as exc:
            raise RegistryUnavailable(f"schema registry: {type(exc).__name__}") from None
        if response.status_code == 404:
            raise InvalidEvent("undecodable", f"schema id {schema_id} unknown to the registry")
        if response.status_code != 200:
            raise RegistryUnavailable(f"schema registry: HTTP {response.status_code}")
        try:
            return fastavro.parse_schema(json.loads(response.json()["schema"]))
        except (ValueError, KeyError, TypeError, fastavro.schema.SchemaParseException):
            raise InvalidEvent(
                "undecodable", f"schema id {schema_id} is not an Avro schema"
            ) from None

    def close(self) -> None:
        self._http.close()


def input_decoder(settings: Settings) -> Decoder:
    """The decoder for trade.closed that the settings ask for."""
    if settings.schema_registry_url:
        return RegistryDecoder(settings.schema_registry_url, settings.schema_registry_basic_auth)
    return codec.decode_trade_closed


def framed(schema_id: int, writer_schema: Any, record: dict[str, Any]) -> bytes:
    """Encode in the registry wire format (for tests, demos and tools)."""
    buf = io.BytesIO()
    buf.write(bytes([MAGIC]) + schema_id.to_bytes(4, "big"))
    fastavro.schemaless_writer(buf, fastavro.parse_schema(writer_schema), record)
    return buf.getvalue()
