"""Read access to a published log, for `verify`: `fetcher(location)(path) -> bytes | None`.

A location is a folder, an http(s) URL, or `s3://bucket/prefix`. None means the file is
not there (404, NoSuchKey, no such file); any other failure to read is a
TraceStreamError, so an unreachable log is never mistaken for a short one.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from trace_stream.core.errors import ConfigError, TraceStreamError
from trace_stream.core.tlog.audit import Fetch


def fetcher(location: str) -> Fetch:
    if location.startswith(("http://", "https://")):
        return _http(location.rstrip("/") + "/")
    if location.startswith("s3://"):
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        return _s3(bucket, prefix.rstrip("/") + "/" if prefix else "")
    root = Path(location)
    if not root.is_dir():
        raise ConfigError(f"--log: {location} is not a folder, an http(s) URL or s3://...")
    return lambda path: _file(root / path)


def _file(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TraceStreamError(f"cannot read {path} ({exc.strerror})") from None


def _http(base: str) -> Fetch:
    client = httpx.Client(timeout=30, follow_redirects=True)

    def fetch(path: str) -> bytes | None:
        try:
            reply = client.get(base + path)
        except httpx.HTTPError as exc:
            raise TraceStreamError(f"cannot fetch {path} ({type(exc).__name__})") from None
        if reply.status_code == 404:
            return None
        if reply.status_code != 200:
            raise TraceStreamError(f"cannot fetch {path} (HTTP {reply.status_code})")
        return reply.content

    return fetch


def _s3(bucket: str, prefix: str) -> Fetch:
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise ConfigError("--log s3://... needs boto3: pip install trace-stream[s3]") from None
    client = boto3.client("s3")

    def fetch(path: str) -> bytes | None:
        try:
            return client.get_object(Bucket=bucket, Key=prefix + path)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise TraceStreamError(f"cannot fetch {path} (S3 error)") from None
        except BotoCoreError as exc:
            raise TraceStreamError(f"cannot fetch {path} ({type(exc).__name__})") from None

    return fetch
