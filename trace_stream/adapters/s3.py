"""The S3 client the file export and the ledger build: boto3 is an optional extra,
every call is bounded, one attempt each (the core owns retrying), and checksums only
where S3 requires them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trace_stream.core.errors import ConfigError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def client(endpoint_url: str | None, timeout: float, selected_by: str) -> S3Client:
    """`selected_by`: the setting that chose S3, named when boto3 is missing."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ConfigError(f"{selected_by} needs boto3: pip install trace-stream[s3]") from None
    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        # One attempt: the core owns retrying, and boto3's retries would outlast the timeout.
        retries={"total_max_attempts": 1},
        # Checksums only where S3 requires them: several S3-compatible stores reject
        # the CRC32 headers boto3 >= 1.36 adds by default.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)
