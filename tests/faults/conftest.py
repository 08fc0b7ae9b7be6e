"""The fault suite's own broker: outages stop it, so no other test shares it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devenv.broker import LocalKafka


@pytest.fixture(scope="session")
def fault_broker() -> Iterator[LocalKafka]:
    broker = LocalKafka()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
