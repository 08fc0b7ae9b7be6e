"""Fixtures shared by the broker tests: the webhook adapter pointed at the test's
tracker, and an alert receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devenv.tracker import Tracker


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch, tracker: Tracker) -> Tracker:
    """The test's tracker, as the webhook adapter's endpoint."""
    monkeypatch.setenv("WEBHOOK_ENDPOINT", f"{tracker.url}/traces")
    return tracker


@pytest.fixture
def alerts() -> Iterator[Tracker]:
    """A receiver for ALERT_WEBHOOK_URL."""
    with Tracker() as t:
        yield t
