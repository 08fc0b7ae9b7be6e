"""The `trace-stream` command: topic provisioning and start-up errors."""

from __future__ import annotations

import pytest

from tests.support import admin_for, env_for, make_settings
from trace_stream.cli import main
from trace_stream.core.topics import layout
from trace_stream.settings import Settings


def use(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    for name, value in env_for(settings).items():
        monkeypatch.setenv(name, value)


def test_topics_ensure_is_idempotent_and_describe_shows_retention(
    kafka_bootstrap, monkeypatch, capsys
):
    settings = make_settings(kafka_bootstrap, create_topics=False)
    use(monkeypatch, settings)
    topics = layout(settings)
    assert main(["topics", "ensure"]) == 0
    first = capsys.readouterr().out
    assert all(f"{t}" in first for t in topics.internal)
    assert first.count("created") == len(topics.internal)
    assert main(["topics", "ensure"]) == 0
    assert capsys.readouterr().out.count("exists") == len(topics.internal)
    existing = admin_for(settings).existing()
    assert {existing[t] for t in topics.internal} == {settings.trace_topic_partitions}
    assert main(["topics", "describe"]) == 0
    described = capsys.readouterr().out
    assert described.count("retention.ms=604800000") == len(topics.internal)


def test_invalid_setting_exits_2_naming_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("TRACE_DELAY_MINUTES", "later")
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "TRACE_DELAY_MINUTES" in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_adapter_exits_2(kafka_bootstrap, monkeypatch, capsys):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("TRACE_ENABLED_ADAPTERS", "carrier-pigeon")
    monkeypatch.setenv("METRICS_PORT", "0")
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "unknown adapter 'carrier-pigeon'" in err
