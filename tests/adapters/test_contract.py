"""The adapter contract, run against every adapter (see harness.py).

Every adapter: sends or writes nothing personal and exactly the Trace's fields;
classifies each failure of its endpoint as the right Retriable or Permanent;
returns Retriable("timeout") within its own timeout when the endpoint stalls; and
never lets a secret reach an outcome detail, an exception message or a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import pytest

from trace_stream.adapters.base import Delivered, Gone, Permanent, Retriable
from trace_stream.adapters.transport import http_client
from trace_stream.core.errors import ConfigError
from trace_stream.core.records import Trace

from .harness import (
    BASE_TIME,
    HARNESSES,
    PERSONAL,
    Harness,
    HttpHarness,
    build_harness,
    make_trace,
)

MakeHarness = Callable[[str], Harness]
KINDS = list(HARNESSES)
CASES = [
    pytest.param(kind, case, id=f"{kind}-{case}")
    for kind, harness in HARNESSES.items()
    for case in harness.cases
]


@pytest.fixture(params=["httpx", "shared"])
def make_harness(
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> MakeHarness:
    """Each HTTP adapter under both clients it can be given: plain httpx (`check-config`,
    third-party tools) and the service's shared client, whose posts go straight to
    aiohttp (adapters/transport.py). Other adapters run once."""

    def make(kind: str) -> Harness:
        harness = build_harness(kind, monkeypatch, request, tmp_path_factory.mktemp(kind))
        if request.param == "shared":
            if not isinstance(harness, HttpHarness):
                pytest.skip("not an HTTP adapter: runs once, under 'httpx'")
            harness.client_factory = http_client
        return harness

    return make


@pytest.mark.parametrize("kind", KINDS)
def test_delivers_exactly_the_trace_fields_and_nothing_personal(
    kind: str, make_harness: MakeHarness
) -> None:
    harness = make_harness(kind)
    traces = [make_trace(i, BASE_TIME + timedelta(hours=10 * i)) for i in range(3)]

    outcomes = harness.deliver(traces)

    assert outcomes
    assert outcomes == [Delivered()] * len(outcomes)
    records = sorted(harness.records(), key=lambda r: str(r["trade_id"]))
    assert records == [t.model_dump(mode="json") for t in traces]
    assert all(set(r) == set(Trace.model_fields) for r in records)
    sent = b"".join(harness.payloads())
    for value in PERSONAL.values():
        assert value.encode() not in sent


@pytest.mark.parametrize(("kind", "case"), CASES)
def test_classifies_each_failure(kind: str, case: str, make_harness: MakeHarness) -> None:
    harness = make_harness(kind)
    harness.fail(case)

    [outcome] = harness.deliver([make_trace(1)])

    expected_type, reason = harness.cases[case]
    assert type(outcome) is expected_type
    assert outcome.reason == reason
    if case == "rate_limited":
        assert isinstance(outcome, Retriable)
        assert outcome.retry_after == timedelta(seconds=7)


@pytest.mark.parametrize("kind", [k for k, h in HARNESSES.items() if h.can_hang])
def test_honours_its_timeout(kind: str, make_harness: MakeHarness) -> None:
    harness = make_harness(kind)
    harness.hang(timeout=0.3)

    [outcome] = harness.deliver([make_trace(1)])

    assert isinstance(outcome, Retriable)
    assert outcome.reason == "timeout"
    assert 0.3 <= harness.elapsed < 0.3 + 0.5


@pytest.mark.parametrize("kind", KINDS)
def test_secrets_never_leak(
    kind: str, make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    harness = make_harness(kind)
    details = [o.detail for o in harness.deliver([make_trace(1)]) if not isinstance(o, Delivered)]
    for case in harness.cases:
        harness.reset()
        harness.fail(case)
        [outcome] = harness.deliver([make_trace(2)])
        assert isinstance(outcome, Retriable | Permanent | Gone)
        details.append(outcome.detail)
    if harness.can_hang:
        harness.reset()
        harness.hang(timeout=0.2)
        details += [
            o.detail for o in harness.deliver([make_trace(3)]) if not isinstance(o, Delivered)
        ]
    harness.reset()
    harness.break_config()
    with pytest.raises(ConfigError) as raised:
        harness.deliver([make_trace(4)])

    said = "\n".join([*details, str(raised.value)])
    for secret in harness.secrets + harness.identifiers:
        assert secret not in said
    for secret in harness.secrets:
        assert secret not in caplog.text
