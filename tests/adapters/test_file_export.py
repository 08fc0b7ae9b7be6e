"""File export specifics: many batches, date partitions, rewrite after a crash, config."""

from __future__ import annotations

import asyncio
import errno
import json
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from trace_stream import adapters
from trace_stream.adapters.base import AdapterContext, BatchAdapter, Delivered, Permanent, Retriable
from trace_stream.adapters.file_export import LocalStore
from trace_stream.core.errors import ConfigError

from .harness import BASE_TIME, FileHarness, build_harness, make_trace

TRACES = 10_000
PER_DAY = 1_000
BATCH = 400
# 25 batches; the day boundaries at 1000, 3000, 5000, 7000 and 9000 fall inside a batch
# (the others are multiples of 400), so five batches write two files each.
EXPECTED_FILES = TRACES // BATCH + 5


@pytest.fixture(params=["file-local", "file-s3"])
def export(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> FileHarness:
    harness = build_harness(request.param, monkeypatch, request, tmp_path)
    assert isinstance(harness, FileHarness)
    return harness


def test_ten_thousand_traces_in_batches(export: FileHarness) -> None:
    traces = [
        make_trace(i, BASE_TIME + timedelta(days=i // PER_DAY, seconds=i % PER_DAY))
        for i in range(TRACES)
    ]
    for start in range(0, TRACES, BATCH):
        assert export.deliver(traces[start : start + BATCH]) == [Delivered()]

    files = export.files()
    assert len(files) == EXPECTED_FILES
    assert "dt=2025-11-21/trace.export-3-00000000000000000800.jsonl" in files
    rows = [(path, json.loads(line)) for path, data in files.items() for line in data.splitlines()]
    assert len(rows) == TRACES
    assert len({row["trade_id"] for _, row in rows}) == TRACES
    assert all(path.startswith(f"dt={row['closed_at'][:10]}/") for path, row in rows)

    # A crash after writing batch 800..1199 but before its offsets were committed:
    # the batch is formed and written again, and must replace its files.
    export.offset = 800
    assert export.deliver(traces[800 : 800 + BATCH]) == [Delivered()]

    assert export.files() == files


def test_local_write_leaves_no_temp_files(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    harness = build_harness("file-local", monkeypatch, request, tmp_path)
    harness.deliver([make_trace(1), make_trace(2)])

    left = [p.name for p in (tmp_path / "export").rglob("*") if p.is_file()]
    assert left == ["trace.export-3-00000000000000000000.jsonl"]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.ENOSPC, Retriable("storage", "OSError ENOSPC")),
        (errno.EIO, Retriable("storage", "OSError EIO")),
        (errno.EACCES, Permanent("storage", "PermissionError EACCES")),
        (errno.EROFS, Permanent("storage", "OSError EROFS")),
    ],
)
def test_local_errors_are_classified_by_errno(code: int, expected: object) -> None:
    # Full disks and read-only mounts cannot be made on demand here, so the errno
    # table is checked directly; the real ENOTDIR case runs in the contract suite.
    error = OSError(code, "message", "/exports/secret-looking/path")
    assert LocalStore(Path("/")).classify(error) == expected


def test_batch_size_and_age_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FILE_EXPORT_DIR", str(tmp_path))
    monkeypatch.setenv("FILE_EXPORT_BATCH_SIZE", "250")
    monkeypatch.setenv("FILE_EXPORT_BATCH_MAX_AGE_SECONDS", "7.5")

    adapter = _build()

    assert isinstance(adapter, BatchAdapter)
    assert (adapter.batch_size, adapter.batch_max_age) == (250, timedelta(seconds=7.5))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FILE_EXPORT_TYPE": "local"}, "FILE_EXPORT_DIR"),
        ({"FILE_EXPORT_TYPE": "s3"}, "S3_BUCKET"),
        ({"FILE_EXPORT_TYPE": "ftp"}, "FILE_EXPORT_TYPE"),
        (
            {"FILE_EXPORT_TYPE": "local", "FILE_EXPORT_DIR": "/x", "FILE_EXPORT_BATCH_SIZE": "0"},
            "FILE_EXPORT_BATCH_SIZE",
        ),
    ],
)
def test_bad_configuration_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        _build()


def test_s3_without_boto3_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FILE_EXPORT_TYPE", "s3")
    monkeypatch.setenv("S3_BUCKET", "exports")
    monkeypatch.setitem(sys.modules, "boto3", None)  # makes `import boto3` fail

    with pytest.raises(ConfigError, match=r"pip install trace-stream\[s3\]"):
        _build()


def _build() -> object:
    async def build() -> object:
        async with httpx.AsyncClient() as http:
            context = AdapterContext("file", http, lambda: BASE_TIME)
            adapter = adapters.build(["file"], lambda _: context)["file"]
            await adapter.aclose()
            return adapter

    return asyncio.run(build())
