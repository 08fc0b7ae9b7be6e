"""One harness per adapter, so a single contract suite can drive all of them.

A harness configures its adapter through the environment, builds it through the
`trace_stream.adapters` entry points (as the service does), delivers traces to a
real local endpoint, reads back what arrived, and can make that endpoint fail in
each of the ways the adapter must classify.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import boto3
import httpx
import pytest

from devenv.tracker import Reply, Tracker
from trace_stream import adapters
from trace_stream.adapters.base import (
    Adapter,
    AdapterContext,
    BatchAdapter,
    Gone,
    Outcome,
    Permanent,
    Retriable,
    TraceBatch,
    idempotency_key,
)
from trace_stream.core.records import Trace
from trace_stream.core.tlog import audit, entry
from trace_stream.core.tlog.note import Signer
from trace_stream.pipeline.redact import redact

TOKEN = "tok-3f9a0c7e-do-not-leak"
SIGNING_KEY = b"signing-key-0123456789abcdef-secret"
SIGNING_SECRET = "whsec_" + base64.b64encode(SIGNING_KEY).decode()
AWS_KEY_ID = "AKIATESTKEY0DONOTLEAK"
AWS_SECRET = "aws-secret-9d2e7b41-do-not-leak"
PERSONAL = {
    "user_id": "user-8841",
    "user_email": "jane.doe@example.com",
    "user_name": "Jane Doe",
    "client_id": "client-5521",
    "account_id": "acct-0097-private",
}
BASE_TIME = datetime(2025, 11, 20, 9, 30, tzinfo=UTC)
Expected = tuple[type[Retriable] | type[Permanent] | type[Gone], str]


def make_trace(i: int, closed_at: datetime | None = None) -> Trace:
    """A Trace made the way the service makes one: by redacting a full trade event."""
    closed = closed_at or BASE_TIME + timedelta(minutes=i)
    event = {
        **PERSONAL,
        "trade_id": f"trade-{i:06d}",
        "signal_id": "sig-eurusd-momentum",
        "instrument": "EURUSD",
        "side": "buy" if i % 2 else "sell",
        "volume": 0.5 + i % 7,
        "entry_price": 1.08423,
        "exit_price": 1.08761,
        "opened_at": closed - timedelta(hours=2),
        "closed_at": closed,
        "profit_loss": 42.5 - i % 11,
        "fees": 1.25,
        "currency": "USD",
        "status": "CLOSED",
        "tracing_opt_in": True,
        "tracing_adapters": ("webhook",),
    }
    return redact(event)


def wait_until(predicate: Callable[[], bool], timeout: float = 5, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def closed_port_url() -> str:
    """A loopback URL where nothing listens: connecting is refused."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Harness:
    adapter: ClassVar[str]  # its entry point name
    cases: ClassVar[dict[str, Expected]]  # failure case -> expected outcome class and reason
    can_hang: ClassVar[bool] = True
    secrets: ClassVar[tuple[str, ...]]  # never in a detail, an exception or a log line
    identifiers: ClassVar[tuple[str, ...]] = ()  # never in a detail or an exception

    def __init__(self, env: pytest.MonkeyPatch) -> None:
        self.env = env
        self.elapsed = 0.0  # seconds the last `deliver` spent in the adapter
        self.client_factory: Callable[[], httpx.AsyncClient] = httpx.AsyncClient
        self.reset()

    def reset(self) -> None:
        """Configure a healthy endpoint."""

    def fail(self, case: str) -> None:
        """Make the endpoint fail as `case` names."""

    def hang(self, timeout: float) -> None:
        """Set the adapter's timeout to `timeout` and make the endpoint stall past it."""

    def break_config(self) -> None:
        """Set one variable to an invalid value, all secrets still configured."""

    def payloads(self) -> list[bytes]:
        """Everything the adapter sent or wrote, as raw bytes."""
        raise NotImplementedError

    def records(self) -> list[dict[str, Any]]:
        """Each trace as it arrived, keyed by Trace field names."""
        raise NotImplementedError

    async def send(self, adapter: Adapter | BatchAdapter, traces: Sequence[Trace]) -> list[Outcome]:
        raise NotImplementedError

    def deliver(self, traces: Sequence[Trace]) -> list[Outcome]:
        return asyncio.run(self._deliver(traces))

    async def _deliver(self, traces: Sequence[Trace]) -> list[Outcome]:
        async with self.client_factory() as http:
            context = AdapterContext(self.adapter, http, lambda: datetime.now(UTC))
            adapter = adapters.build([self.adapter], lambda _: context)[self.adapter]
            started = time.monotonic()
            try:
                return await self.send(adapter, traces)
            finally:
                self.elapsed = time.monotonic() - started
                await adapter.aclose()


class HttpHarness(Harness):
    url_var: ClassVar[str]
    timeout_var: ClassVar[str]
    ok_reply: ClassVar[bytes] = b'{"ok": true}'
    cases: ClassVar[dict[str, Expected]] = {
        "rate_limited": (Retriable, "rate_limited"),
        "server_error": (Retriable, "server_error"),
        "auth": (Permanent, "auth"),
        "rejected": (Permanent, "rejected"),
        "gone": (Gone, "gone"),
        "connection": (Retriable, "connection"),
    }
    _status: ClassVar[dict[str, int]] = {
        "rate_limited": 429,
        "server_error": 503,
        "auth": 401,
        "rejected": 422,
        "gone": 410,
    }

    def __init__(self, env: pytest.MonkeyPatch, tracker: Tracker) -> None:
        self.tracker = tracker
        tracker.default = Reply(body=self.ok_reply)
        super().__init__(env)

    def reset(self) -> None:
        self.env.setenv(self.url_var, f"{self.tracker.url}/trades")
        self.env.setenv(self.timeout_var, "5")

    def fail(self, case: str) -> None:
        if case == "connection":
            self.env.setenv(self.url_var, closed_port_url())
            return
        # The reply echoes the token, as a careless tracker might.
        echo = f'{{"error": true, "message": "bad credentials {TOKEN}"}}'.encode()
        headers = {"Retry-After": "7"} if case == "rate_limited" else {}
        self.tracker.respond(Reply(self._status[case], echo, headers))

    def hang(self, timeout: float) -> None:
        self.env.setenv(self.timeout_var, str(timeout))
        self.tracker.respond(Reply(delay=timeout * 5))

    def break_config(self) -> None:
        self.env.setenv(self.timeout_var, "-1")

    def payloads(self) -> list[bytes]:
        return [r.body for r in self.tracker.requests()]

    async def send(self, adapter: Adapter | BatchAdapter, traces: Sequence[Trace]) -> list[Outcome]:
        assert isinstance(adapter, Adapter)
        return [await adapter.deliver(t, idempotency_key(t.trade_id, adapter.name)) for t in traces]


class WebhookHarness(HttpHarness):
    adapter = "webhook"
    url_var, timeout_var = "WEBHOOK_ENDPOINT", "WEBHOOK_TIMEOUT_SECONDS"
    secrets = (TOKEN, SIGNING_SECRET, SIGNING_SECRET.removeprefix("whsec_"))

    def reset(self) -> None:
        super().reset()
        self.env.setenv("WEBHOOK_AUTH_TOKEN", TOKEN)
        self.env.setenv("WEBHOOK_SIGNING_SECRET", SIGNING_SECRET)

    def records(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.tracker.requests()]


# Myfxbook body key -> Trace field, written out independently of the adapter.
MYFXBOOK_KEYS = {
    "ticket": "trade_id",
    "signalId": "signal_id",
    "symbol": "instrument",
    "action": "side",
    "lots": "volume",
    "openTime": "opened_at",
    "openPrice": "entry_price",
    "closeTime": "closed_at",
    "closePrice": "exit_price",
    "profit": "profit_loss",
}


class MyfxbookHarness(HttpHarness):
    adapter = "myfxbook"
    url_var, timeout_var = "MYFXBOOK_WEBHOOK_URL", "MYFXBOOK_TIMEOUT_SECONDS"
    ok_reply = b'{"error": false, "message": "Trade received"}'
    secrets = (TOKEN,)

    def reset(self) -> None:
        super().reset()
        self.env.setenv("MYFXBOOK_WEBHOOK_TOKEN", TOKEN)

    def records(self) -> list[dict[str, Any]]:
        out = []
        for request in self.tracker.requests():
            body = request.json()
            assert set(body) == set(MYFXBOOK_KEYS), "a key beyond the documented mapping"
            record = {MYFXBOOK_KEYS[k]: v for k, v in body.items()}
            out.append(record | {"side": record["side"].upper()})
        return out


class FileHarness(Harness):
    adapter = "file"
    topic, partition = "trace.export", 3

    def __init__(self, env: pytest.MonkeyPatch) -> None:
        self.offset = 0
        super().__init__(env)

    async def send(self, adapter: Adapter | BatchAdapter, traces: Sequence[Trace]) -> list[Outcome]:
        assert isinstance(adapter, BatchAdapter)
        batch = TraceBatch(self.topic, self.partition, self.offset, tuple(traces))
        self.offset += len(traces)
        return [await adapter.deliver_batch(batch)]

    def break_config(self) -> None:
        self.env.setenv("FILE_EXPORT_BATCH_SIZE", "0")

    def files(self) -> dict[str, bytes]:
        """Relative path -> content of every exported file."""
        raise NotImplementedError

    def payloads(self) -> list[bytes]:
        return list(self.files().values())

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for data in self.payloads() for line in data.splitlines()]


class LocalFileHarness(FileHarness):
    cases: ClassVar[dict[str, Expected]] = {"not_a_directory": (Permanent, "storage")}
    can_hang = False  # a local disk cannot be made to stall from a test
    secrets = ()

    def __init__(self, env: pytest.MonkeyPatch, tmp: Path) -> None:
        self.root = tmp / "export"
        self.blocked = False
        super().__init__(env)

    def reset(self) -> None:
        self.env.setenv("FILE_EXPORT_TYPE", "local")
        self.env.setenv("FILE_EXPORT_DIR", str(self.root))

    def fail(self, case: str) -> None:
        """The export directory is replaced by a file once the adapter runs (a lost
        volume): a directory that is wrong from the start is refused at start-up."""
        assert case == "not_a_directory"
        self.blocked = True

    async def send(self, adapter: Adapter | BatchAdapter, traces: Sequence[Trace]) -> list[Outcome]:
        if self.blocked:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root.write_text("a file where the export directory should be")
        return await super().send(adapter, traces)

    def files(self) -> dict[str, bytes]:
        found = sorted(p for p in self.root.rglob("*.jsonl") if not p.name.startswith("."))
        return {str(p.relative_to(self.root)): p.read_bytes() for p in found}


class S3FileHarness(FileHarness):
    cases: ClassVar[dict[str, Expected]] = {
        "no_such_bucket": (Permanent, "storage"),
        "access_denied": (Permanent, "storage"),
        "invalid_access_key": (Permanent, "auth"),
        "signature_mismatch": (Permanent, "auth"),
        "slow_down": (Retriable, "storage"),
        "internal_error": (Retriable, "storage"),
        "connection": (Retriable, "storage"),
    }
    _stub: ClassVar[dict[str, tuple[int, str]]] = {
        "access_denied": (403, "AccessDenied"),
        "invalid_access_key": (403, "InvalidAccessKeyId"),
        "signature_mismatch": (403, "SignatureDoesNotMatch"),
        "slow_down": (503, "SlowDown"),
        "internal_error": (500, "InternalError"),
    }
    secrets = (AWS_SECRET,)
    # botocore's own DEBUG log shows the key id (in the Authorization header it sends),
    # so it is kept out of details and messages only.
    identifiers = (AWS_KEY_ID,)
    prefix = "exports/"

    def __init__(self, env: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
        self.request = request
        self.moto_url: str = request.getfixturevalue("moto_url")
        self.bucket = f"trace-export-{uuid.uuid4().hex[:12]}"
        env.setenv("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
        env.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        env.delenv("AWS_PROFILE", raising=False)
        self.s3 = boto3.client("s3", endpoint_url=self.moto_url)
        request.addfinalizer(self.s3.close)
        self.s3.create_bucket(Bucket=self.bucket)
        super().__init__(env)

    def reset(self) -> None:
        self.env.setenv("FILE_EXPORT_TYPE", "s3")
        self.env.setenv("S3_BUCKET", self.bucket)
        self.env.setenv("S3_PREFIX", self.prefix)
        self.env.setenv("S3_ENDPOINT_URL", self.moto_url)
        self.env.setenv("FILE_EXPORT_TIMEOUT_SECONDS", "10")

    def fail(self, case: str) -> None:
        if case == "no_such_bucket":
            self.env.setenv("S3_BUCKET", "no-such-bucket-here")
        elif case == "connection":
            self.env.setenv("S3_ENDPOINT_URL", closed_port_url())
        else:
            stub = self.request.getfixturevalue("s3_stub")
            stub.status, stub.code = self._stub[case]
            self.env.setenv("S3_ENDPOINT_URL", stub.url)

    def hang(self, timeout: float) -> None:
        self.env.setenv("FILE_EXPORT_TIMEOUT_SECONDS", str(timeout))
        self.env.setenv("S3_ENDPOINT_URL", self.request.getfixturevalue("blackhole"))

    def files(self) -> dict[str, bytes]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix)
        keys = sorted(o["Key"] for o in listed.get("Contents", []))
        assert listed.get("IsTruncated") is False
        return {
            k.removeprefix(self.prefix): self.s3.get_object(Bucket=self.bucket, Key=k)[
                "Body"
            ].read()
            for k in keys
        }


LEDGER_KEY = Signer.generate("ledger.contract")


class LedgerHarness(FileHarness):
    """The ledger on local disk: what arrived is each log's entries, read back through
    a full audit of the log (so a trace counts only if its log verifies)."""

    adapter = "ledger"
    cases: ClassVar[dict[str, Expected]] = {"not_a_directory": (Permanent, "storage")}
    can_hang = False
    secrets = (LEDGER_KEY.secret().split("+", 4)[4],)  # the base64 seed

    def __init__(self, env: pytest.MonkeyPatch, tmp: Path) -> None:
        self.root = tmp / "ledger"
        self.blocked = False
        super().__init__(env)

    def reset(self) -> None:
        self.env.setenv("LEDGER_TYPE", "local")
        self.env.setenv("LEDGER_DIR", str(self.root))
        self.env.setenv("LEDGER_SIGNING_KEY", LEDGER_KEY.secret())

    def fail(self, case: str) -> None:
        assert case == "not_a_directory"
        self.blocked = True

    def break_config(self) -> None:
        self.env.setenv("LEDGER_BATCH_SIZE", "0")

    async def send(self, adapter: Adapter | BatchAdapter, traces: Sequence[Trace]) -> list[Outcome]:
        if self.blocked:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root.write_text("a file where the ledger directory should be")
        return await super().send(adapter, traces)

    def files(self) -> dict[str, bytes]:
        found = sorted(p for p in self.root.rglob("*") if p.is_file())
        return {str(p.relative_to(self.root)): p.read_bytes() for p in found}

    def records(self) -> list[dict[str, Any]]:
        out = []
        for checkpoint in sorted(self.root.glob("*/checkpoint")):

            def fetch(path: str, log: Path = checkpoint.parent) -> bytes | None:
                return (log / path).read_bytes() if (log / path).exists() else None

            verified = audit.audit(fetch, audit.checkpoint(fetch, LEDGER_KEY.verifier))
            out += [json.loads(entry.encode(t)) for t in verified.trades]
        return out


HARNESSES: dict[str, type[Harness]] = {
    "webhook": WebhookHarness,
    "myfxbook": MyfxbookHarness,
    "file-local": LocalFileHarness,
    "file-s3": S3FileHarness,
    "ledger-local": LedgerHarness,
}


def build_harness(
    kind: str, env: pytest.MonkeyPatch, request: pytest.FixtureRequest, tmp: Path
) -> Harness:
    if kind == "webhook":
        return WebhookHarness(env, request.getfixturevalue("tracker"))
    if kind == "myfxbook":
        return MyfxbookHarness(env, request.getfixturevalue("tracker"))
    if kind == "file-local":
        return LocalFileHarness(env, tmp)
    if kind == "ledger-local":
        return LedgerHarness(env, tmp)
    return S3FileHarness(env, request)
