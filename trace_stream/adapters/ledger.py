"""The ledger: per signal, a signed, append-only transparency log of its redacted trades.

Where: LEDGER_DIR/<signal_id>/ (LEDGER_TYPE=local), or s3://LEDGER_S3_BUCKET/
LEDGER_S3_PREFIX<signal_id>/ (LEDGER_TYPE=s3; S3_ENDPOINT_URL as for the file export).
What: static files in the C2SP tlog-tiles layout (`checkpoint`, `tile/<L>/...`,
`tile/entries/...`; core/tlog/tiles.py); entries are the canonical JSON of the trades as
posted (core/tlog/entry.py); the checkpoint is a C2SP signed note by the Ed25519 key in
LEDGER_SIGNING_KEY (the signer string `trace-stream ledger keygen` prints) or in the
file LEDGER_SIGNING_KEY_FILE (during a key rotation, several keys of one name, one per
line: each signs every checkpoint, the first is the one the writer checks), its origin
line `<key name>/<signal_id>`. One checkpoint per batch: a batch holds one signal's
trades, at most LEDGER_BATCH_SIZE of them.

Exactly once: under the log's lock or lease (the single-writer rule: adapters/
ledger_store.py on disk, ledger_s3.py on S3) the adapter reads the checkpoint, audits
the log if it is not the one it last wrote, appends only trades whose trade id the log
does not hold yet, writes the new bundles and tiles, and replaces the checkpoint last.
A crash before that publishes nothing; after it, the retried batch finds its trades
already in the log.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import AnyHttpUrl, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from trace_stream.adapters import s3
from trace_stream.adapters.base import (
    AdapterContext,
    Delivered,
    Outcome,
    Permanent,
    Retriable,
    TraceBatch,
)
from trace_stream.adapters.ledger_s3 import S3LogStore
from trace_stream.adapters.ledger_store import LocalLogStore
from trace_stream.core.errors import ConfigError
from trace_stream.core.records import Trace
from trace_stream.core.tlog import audit
from trace_stream.core.tlog.ledger import CHECKPOINT, Log
from trace_stream.core.tlog.note import NoteError, Signer
from trace_stream.settings import load

_SIGNAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


class LedgerSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    ledger_type: Literal["local", "s3"] = Field(
        default="local", description="local disk, or S3 (pip install 'trace-stream[s3]')"
    )
    ledger_dir: Path | None = Field(
        default=None, description="local root directory: one folder per signal"
    )
    ledger_s3_bucket: str | None = Field(default=None, description="S3 bucket of the logs")
    ledger_s3_prefix: str = Field(
        default="", description="one prefix per signal is made under this one"
    )
    s3_endpoint_url: AnyHttpUrl | None = Field(
        default=None, description="an S3-compatible store instead of AWS"
    )
    ledger_signing_key: SecretStr | None = Field(
        default=None,
        description="Ed25519 signer key(s) from trace-stream ledger keygen, one per line "
        "(two during a rotation, the old first)",
    )
    ledger_signing_key_file: Path | None = Field(
        default=None, description="a file holding LEDGER_SIGNING_KEY's value instead"
    )
    ledger_batch_size: int = Field(
        default=256, ge=1, le=10_000, description="trades per checkpoint at most"
    )
    ledger_batch_max_age_seconds: float = Field(
        default=5, gt=0, description="a batch is appended once its oldest trade waited this long"
    )
    ledger_timeout_seconds: float = Field(
        default=30, gt=0, description="deadline of one append; a busy log is retriable after half"
    )


def signers(s: LedgerSettings) -> list[Signer]:
    """The signing keys, from the variable or the file; ConfigError never quoting one."""
    if s.ledger_signing_key is not None:
        text, where = s.ledger_signing_key.get_secret_value(), "LEDGER_SIGNING_KEY"
    elif s.ledger_signing_key_file is not None:
        where = "LEDGER_SIGNING_KEY_FILE"
        try:
            text = s.ledger_signing_key_file.read_text()
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read the file ({exc.strerror})") from None
    else:
        raise ConfigError("LEDGER_SIGNING_KEY or LEDGER_SIGNING_KEY_FILE: one is required")
    try:
        keys = [Signer.parse(line) for line in text.split()]
    except NoteError as exc:
        raise ConfigError(f"{where}: {exc} (make one with: trace-stream ledger keygen)") from None
    if not keys or len({k.name for k in keys}) > 1:
        raise ConfigError(f"{where}: one key, or several keys of one name (a rotation)")
    return keys


class LedgerAdapter:
    def __init__(
        self,
        name: str,
        settings: LedgerSettings,
        store: LocalLogStore | S3LogStore,
        keys: list[Signer],
    ) -> None:
        self.name = name
        self.batch_size = settings.ledger_batch_size
        self.batch_max_age = timedelta(seconds=settings.ledger_batch_max_age_seconds)
        self._timeout = settings.ledger_timeout_seconds
        self._store = store
        self._signer, self._signers = keys[0], keys
        self._logs: dict[str, tuple[bytes, Log]] = {}  # signal -> (checkpoint, log)

    def batch_key(self, trace: Trace) -> str:
        """One signal per batch: one log, one checkpoint."""
        return trace.signal_id

    async def deliver_batch(self, batch: TraceBatch) -> Outcome:
        """Append the batch's new trades to their signal's log and publish its checkpoint."""
        signal = batch.traces[0].signal_id if batch.traces else ""
        if not _SIGNAL.fullmatch(signal) or any(t.signal_id != signal for t in batch.traces):
            return Permanent("rejected", "a signal id that cannot name a log folder")
        try:
            async with asyncio.timeout(self._timeout):
                return await asyncio.to_thread(self._append, signal, batch.traces)
        except TimeoutError:
            return Retriable("timeout", f"no append within {self._timeout}s")
        except Exception as exc:
            self._logs.pop(signal, None)
            outcome = self._store.classify(exc)
            if outcome is None:
                raise
            return outcome

    def _append(self, signal: str, traces: tuple[Trace, ...]) -> Outcome:
        with self._store.lock(signal, self._timeout / 2):  # Busy before the timeout
            published = self._store.read(signal, CHECKPOINT)
            log = self._current(signal, published)
            if log is None:
                return Permanent("storage", "the published log does not verify")
            appended = log.append(traces, *self._signers)
            if not appended.added:
                return Delivered()
            self._logs.pop(signal, None)  # until the checkpoint is written
            for path, data in appended.files.items():
                self._store.write(signal, path, data)
            self._store.write(signal, CHECKPOINT, appended.signed)
            self._logs[signal] = (appended.signed, log)
        return Delivered()

    def _current(self, signal: str, published: bytes | None) -> Log | None:
        """The log as published: from the cache if this process wrote that checkpoint,
        else after a full audit (None if it fails: never extend a log that is wrong)."""
        origin = f"{self._signer.name}/{signal}"
        if published is None:
            return Log(origin)
        cached = self._logs.get(signal)
        if cached is not None and cached[0] == published:
            return cached[1]
        try:
            fetch = lambda path: self._store.read(signal, path)  # noqa: E731
            cp = audit.checkpoint(fetch, self._signer.verifier, origin)
            return Log.load(audit.audit(fetch, cp))
        except audit.AuditError:
            return None

    async def aclose(self) -> None:
        self._store.close()


def s3_store(s: LedgerSettings) -> S3LogStore:
    if not s.ledger_s3_bucket:
        raise ConfigError("LEDGER_S3_BUCKET: required when LEDGER_TYPE=s3")
    timeout = s.ledger_timeout_seconds
    endpoint = str(s.s3_endpoint_url) if s.s3_endpoint_url else None
    client = s3.client(endpoint, timeout, "LEDGER_TYPE=s3")
    return S3LogStore(client, s.ledger_s3_bucket, s.ledger_s3_prefix, lease=4 * timeout)


def create(context: AdapterContext) -> LedgerAdapter:
    s = load(LedgerSettings)
    key = signers(s)
    if s.ledger_type == "s3":
        return LedgerAdapter(context.name, s, s3_store(s), key)
    if s.ledger_dir is None:
        raise ConfigError("LEDGER_DIR: required when LEDGER_TYPE=local")
    return LedgerAdapter(context.name, s, LocalLogStore(s.ledger_dir), key)
