"""File export: batches of traces as JSON Lines, in a local directory or an S3 bucket.

Layout: `dt=YYYY-MM-DD/{topic}-{partition}-{first_offset_of_that_date:020d}.jsonl` (under
FILE_EXPORT_DIR, or S3_PREFIX in S3_BUCKET), one redacted trace per line, dated by
its UTC close time; a batch spanning dates writes one file per date. The name
depends only on the batch, so writing a batch again after a crash replaces its
files instead of duplicating lines. A local file appears whole or not at all
(temp file, fsync, rename, fsync of the directory); readers should skip dot-files,
which are temp files a crash left behind. S3 needs the `s3` extra (boto3) and takes
credentials and region from boto3's usual chain (AWS_* variables, profile, role).
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections import defaultdict
from datetime import UTC, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import AnyHttpUrl, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trace_stream.adapters import durable, s3
from trace_stream.adapters.base import (
    AdapterContext,
    Delivered,
    Outcome,
    Permanent,
    Retriable,
    TraceBatch,
)
from trace_stream.core.errors import ConfigError
from trace_stream.core.records import Trace
from trace_stream.settings import load

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_PERMANENT_ERRNO = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR})
_S3_AUTH = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
)
_S3_BUSY = frozenset(
    {"SlowDown", "Throttling", "RequestTimeout", "InternalError", "ServiceUnavailable"}
)
_S3_KNOWN = _S3_AUTH | _S3_BUSY | {"AccessDenied", "NoSuchBucket"}


class FileExportSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    file_export_type: Literal["local", "s3"] = Field(
        default="local", description="local disk, or S3 (pip install 'trace-stream[s3]')"
    )
    file_export_dir: Path | None = Field(
        default=None, description="local root directory (created on the first write)"
    )
    s3_bucket: str | None = Field(default=None, description="S3 bucket of the export")
    s3_prefix: str = Field(default="", description="key prefix inside the bucket")
    s3_endpoint_url: AnyHttpUrl | None = Field(
        default=None, description="an S3-compatible store instead of AWS"
    )
    file_export_batch_size: int = Field(default=500, ge=1, description="traces per file at most")
    file_export_batch_max_age_seconds: float = Field(
        default=60, gt=0, description="a batch is written once its oldest trace waited this long"
    )
    file_export_timeout_seconds: float = Field(
        default=30, gt=0, description="deadline of one file write"
    )

    @field_validator("file_export_dir")
    @classmethod
    def _writable_folder(cls, value: Path | None) -> Path | None:
        """A directory this process can write in, or can create (the first write
        creates it, as it creates each date's folder)."""
        if value is None:
            return value
        existing = next(p for p in (value, *value.parents) if p.exists())
        if not existing.is_dir():
            where = "is" if existing == value else f"is under {existing}, which is"
            raise ValueError(f"{value} {where} not a directory")
        if not os.access(existing, os.W_OK | os.X_OK):
            what = "is not" if existing == value else f"cannot be created in {existing}:"
            raise ValueError(f"{value} {what} writable by this process")
        return value


def _day(trace: Trace) -> str:
    closed = trace.closed_at
    return (closed.astimezone(UTC) if closed.tzinfo else closed).date().isoformat()


def files(batch: TraceBatch) -> dict[str, bytes]:
    """Relative path -> JSON Lines content, one entry per UTC close date in the batch.

    Each date's file is named after the offset of its own first trace, not the batch's:
    when a batch is formed again after a crash with a different cut, every date's file
    still starts at the same record, so it is overwritten rather than duplicated.
    """
    lines: defaultdict[str, list[bytes]] = defaultdict(list)
    first: dict[str, int] = {}
    for index, trace in enumerate(batch.traces):
        day = _day(trace)
        first.setdefault(day, batch.offset_of(index))
        # model_dump_json is the JSON form of model_dump(mode="json"), serialized in Rust.
        lines[day].append(trace.model_dump_json().encode())
    return {
        f"dt={day}/{batch.topic}-{batch.partition}-{first[day]:020d}.jsonl": b"\n".join(rows)
        + b"\n"
        for day, rows in lines.items()
    }


class Store(Protocol):
    def write(self, path: str, data: bytes) -> None:
        """Create or replace one file, atomically; blocking, so it runs in a thread."""

    def classify(self, exc: Exception) -> Outcome | None:
        """The outcome of a failed write, or None for an error it does not know."""

    def close(self) -> None: ...


class LocalStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    def write(self, path: str, data: bytes) -> None:
        durable.write(self._root, path, data, 0o666)

    def classify(self, exc: Exception) -> Outcome | None:
        if not isinstance(exc, OSError):
            return None
        # The errno name, never str(exc): it carries the path.
        detail = f"{type(exc).__name__} {errno.errorcode.get(exc.errno or 0, exc.errno)}"
        if exc.errno in _PERMANENT_ERRNO:
            return Permanent("storage", detail)
        return Retriable("storage", detail)  # ENOSPC, EIO and anything unforeseen

    def close(self) -> None:
        return None


class S3Store:
    def __init__(self, client: S3Client, bucket: str, prefix: str) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"

    def write(self, path: str, data: bytes) -> None:
        self._client.put_object(
            Bucket=self._bucket,
            Key=self._prefix + path,
            Body=data,
            ContentType="application/x-ndjson",
        )

    def classify(self, exc: Exception) -> Outcome | None:
        from botocore import exceptions as boto

        if isinstance(exc, boto.ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            # Only codes from a known list are shown: the detail never quotes a reply.
            detail = f"S3 {code if code in _S3_KNOWN else 'error'}, HTTP {status}"
            if code in _S3_AUTH:
                return Permanent("auth", detail)
            if code in _S3_BUSY or status >= 500 or status in (408, 429):
                return Retriable("storage", detail)
            return Permanent("storage", detail)
        if isinstance(exc, boto.ReadTimeoutError | boto.ConnectTimeoutError):
            return Retriable("timeout", type(exc).__name__)
        if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError):
            return Permanent("auth", type(exc).__name__)
        if isinstance(exc, boto.BotoCoreError):  # connection refused or closed, and the like
            return Retriable("storage", type(exc).__name__)
        return None

    def close(self) -> None:
        self._client.close()


def s3_store(s: FileExportSettings) -> S3Store:
    if not s.s3_bucket:
        raise ConfigError("S3_BUCKET: required when FILE_EXPORT_TYPE=s3")
    endpoint = str(s.s3_endpoint_url) if s.s3_endpoint_url else None
    client = s3.client(endpoint, s.file_export_timeout_seconds, "FILE_EXPORT_TYPE=s3")
    return S3Store(client, s.s3_bucket, s.s3_prefix)


class FileExportAdapter:
    def __init__(self, name: str, settings: FileExportSettings, store: Store) -> None:
        self.name = name
        self.batch_size = settings.file_export_batch_size
        self.batch_max_age = timedelta(seconds=settings.file_export_batch_max_age_seconds)
        self._timeout = settings.file_export_timeout_seconds
        self._store = store

    def batch_key(self, trace: Trace) -> str:
        """One close date per batch: one file, written all or nothing."""
        return _day(trace)

    async def deliver_batch(self, batch: TraceBatch) -> Outcome:
        """Write every file of the batch within FILE_EXPORT_TIMEOUT_SECONDS, or say why not.

        Never raises for a failed write. After a failure some of the batch's files may
        exist; delivering the batch again replaces them.
        """
        try:
            async with asyncio.timeout(self._timeout):
                for path, data in files(batch).items():
                    await asyncio.to_thread(self._store.write, path, data)
        except TimeoutError:
            return Retriable("timeout", f"no write within {self._timeout}s")
        except Exception as exc:
            outcome = self._store.classify(exc)
            if outcome is None:
                raise
            return outcome
        return Delivered()

    async def aclose(self) -> None:
        self._store.close()


def create(context: AdapterContext) -> FileExportAdapter:
    s = load(FileExportSettings)
    if s.file_export_type == "s3":
        return FileExportAdapter(context.name, s, s3_store(s))
    if s.file_export_dir is None:
        raise ConfigError("FILE_EXPORT_DIR: required when FILE_EXPORT_TYPE=local")
    return FileExportAdapter(context.name, s, LocalStore(s.file_export_dir))
