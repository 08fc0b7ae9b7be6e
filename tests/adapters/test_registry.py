"""Adapters are found through the `trace_stream.adapters` entry point group, so a
package the service has never heard of adds one by declaring an entry point."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from trace_stream import adapters
from trace_stream.adapters.base import Adapter, AdapterContext, Delivered, idempotency_key
from trace_stream.core.errors import ConfigError

from .harness import make_trace

DUMMY = """
from trace_stream.adapters.base import Delivered


class Dummy:
    def __init__(self, context):
        self.name = context.name
        self.context = context
        self.delivered = []

    async def deliver(self, trace, idempotency_key):
        self.delivered.append(idempotency_key)
        return Delivered()

    async def aclose(self):
        return None


def create(context):
    return Dummy(context)
"""


@pytest.fixture
def dummy_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed-looking distribution `dummy-tracker` whose entry point is `dummy`."""
    (tmp_path / "dummy_tracker.py").write_text(DUMMY)
    info = tmp_path / "dummy_tracker-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dummy-tracker\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[trace_stream.adapters]\ndummy = dummy_tracker:create\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "dummy_tracker", raising=False)


def test_built_in_adapters_are_registered() -> None:
    assert {"webhook", "myfxbook", "file", "ledger"} <= set(adapters.available())


@pytest.mark.usefixtures("dummy_distribution")
def test_a_third_party_adapter_is_found_and_built() -> None:
    assert "dummy" in adapters.available()

    async def deliver() -> tuple[Adapter, object]:
        async with httpx.AsyncClient() as http:
            context = AdapterContext("dummy", http, lambda: datetime.now(UTC))
            adapter = adapters.build(["dummy"], lambda _: context)["dummy"]
            assert isinstance(adapter, Adapter)
            return adapter, await adapter.deliver(make_trace(1), idempotency_key("t", "dummy"))

    adapter, outcome = asyncio.run(deliver())

    assert outcome == Delivered()
    assert type(adapter).__module__ == "dummy_tracker"
    assert adapter.name == "dummy"


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown adapter 'nope'.*myfxbook"):
        adapters.build(["nope"], lambda name: pytest.fail("no context is needed"))


def test_a_rate_limit_on_a_batch_adapter_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FILE_EXPORT_TYPE", "local")
    monkeypatch.setenv("FILE_EXPORT_DIR", str(tmp_path))

    def build(limited: list[str]) -> None:
        async def go() -> None:
            async with httpx.AsyncClient() as http:
                built = adapters.build(
                    ["file"],
                    lambda name: AdapterContext(name, http, lambda: datetime.now(UTC)),
                    limited=limited,
                )
                for adapter in built.values():
                    await adapter.aclose()

        asyncio.run(go())

    build([])
    with pytest.raises(ConfigError, match=r"^invalid configuration: TRACE_RATE_LIMITS\[file\]: "):
        build(["file"])
