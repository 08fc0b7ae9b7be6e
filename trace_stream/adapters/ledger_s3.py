"""Where the ledger's logs live on S3: one prefix per signal, with conditional writes.

See `S3LogStore` for the single-writer rule there; the store's interface is the local
one's (adapters/ledger_store.py): lock, read, write, classify, close.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from trace_stream.adapters.base import Outcome, Retriable
from trace_stream.adapters.file_export import S3Store
from trace_stream.adapters.ledger_store import Busy

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class LeaseLost(Exception):
    """This writer's lease ran out before it finished: it stops writing."""


class S3LogStore:
    """Logs under `prefix/<signal>/` in an S3 bucket, with S3's conditional writes.

    The single-writer rule on S3: a writer holds the lease object `<signal>/.lock`,
    created only if absent (If-None-Match: *), or taken over once older than `lease`
    seconds by S3's own clock, replacing exactly the stale one (If-Match: its ETag), so
    of two writers taking over one wins. The holder stops writing `margin` seconds before
    its lease can be judged stale (each S3 call is bounded by the client's timeouts,
    below `margin`). The checkpoint is replaced only if it is still the one read under
    the lease (If-Match: its ETag; If-None-Match: * for the first): even a writer that
    outlived its lease cannot publish over another's checkpoint.
    """

    def __init__(self, client: S3Client, bucket: str, prefix: str, lease: float) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self._lease = lease
        self._margin = lease / 4
        self._held: dict[str, float] = {}  # log -> monotonic deadline of this writer's lease
        self._etags: dict[str, str | None] = {}  # log -> ETag of the checkpoint read

    def _key(self, log: str, path: str) -> str:
        return f"{self._prefix}{log}/{path}"

    @contextlib.contextmanager
    def lock(self, log: str, wait: float) -> Iterator[None]:
        from botocore.exceptions import ClientError

        key, owner = self._key(log, ".lock"), uuid.uuid4().hex.encode()
        deadline = time.monotonic() + wait
        while True:
            started = time.monotonic()
            try:
                reply = self._client.put_object(
                    Bucket=self._bucket, Key=key, Body=owner, IfNoneMatch="*"
                )
                break
            except ClientError as exc:
                if _code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise
            taken = self._take_over(key, owner)
            if taken is not None:
                reply = taken
                break
            if time.monotonic() > deadline:
                raise Busy
            time.sleep(0.05)
        self._held[log] = started + self._lease - self._margin
        try:
            yield
        finally:
            del self._held[log]
            self._etags.pop(log, None)
            if time.monotonic() < started + self._lease - self._margin:
                with contextlib.suppress(Exception):
                    self._client.delete_object(Bucket=self._bucket, Key=key, IfMatch=reply["ETag"])

    def _take_over(self, key: str, owner: bytes) -> Any:
        from botocore.exceptions import ClientError

        try:
            head = self._client.head_object(Bucket=self._bucket, Key=key)
            now = parsedate_to_datetime(head["ResponseMetadata"]["HTTPHeaders"]["date"])
            if (now - head["LastModified"]).total_seconds() <= self._lease:
                return None
            return self._client.put_object(
                Bucket=self._bucket, Key=key, Body=owner, IfMatch=head["ETag"]
            )
        except ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "404"):
                return None
            raise

    def read(self, log: str, path: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            reply = self._client.get_object(Bucket=self._bucket, Key=self._key(log, path))
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                if path == "checkpoint":
                    self._etags[log] = None
                return None
            raise
        if path == "checkpoint":
            self._etags[log] = reply["ETag"]
        return reply["Body"].read()

    def write(self, log: str, path: str, data: bytes) -> None:
        if time.monotonic() > self._held.get(log, 0):
            raise LeaseLost
        key = self._key(log, path)
        if path != "checkpoint":
            self._client.put_object(Bucket=self._bucket, Key=key, Body=data)
            return
        etag = self._etags.get(log)
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        self._client.put_object(Bucket=self._bucket, Key=key, Body=data, **condition)  # type: ignore[arg-type]
        self._etags.pop(log, None)

    def classify(self, exc: Exception) -> Outcome | None:
        from botocore.exceptions import ClientError

        if isinstance(exc, Busy):
            return Retriable("storage", "the log is leased by another writer")
        if isinstance(exc, LeaseLost):
            return Retriable("storage", "this writer's lease on the log ran out")
        if isinstance(exc, ClientError) and _code(exc) == "PreconditionFailed":
            return Retriable("storage", "the checkpoint changed under this writer")
        return S3Store(self._client, self._bucket, self._prefix).classify(exc)

    def close(self) -> None:
        self._client.close()


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", {})
    return str(response.get("Error", {}).get("Code", ""))
