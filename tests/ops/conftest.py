"""Fixtures for the operations commands: `cli` runs `trace_stream.cli.main` in-process
with the environment of a test's settings and captures what it prints."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from tests.support import env_for
from trace_stream import cli as trace_cli
from trace_stream.settings import Settings
from trace_stream.telemetry import logs

_OURS = ("TRACE_", "KAFKA_", "WEBHOOK_", "MYFXBOOK_", "FILE_EXPORT_", "S3_", "ALERT_", "LOG_")


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


class Cli:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
        self._monkeypatch = monkeypatch
        self._capsys = capsys

    def use(self, settings: Settings, **env: str) -> None:
        """Make the environment hold exactly these settings (plus `env`)."""
        for name in [n for n in os.environ if n.upper().startswith(_OURS)]:
            self._monkeypatch.delenv(name)
        for name, value in env_for(settings, **env).items():
            if os.environ.get(name) != value:
                self._monkeypatch.setenv(name, value)

    def __call__(self, *argv: str) -> Ran:
        self._capsys.readouterr()
        code = trace_cli.main(list(argv))
        out, err = self._capsys.readouterr()
        return Ran(code, out, err)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    # main() sets up logging for a whole process; in tests pytest's capture does that.
    monkeypatch.setattr(logs, "configure", lambda *_, **__: None)
    return Cli(monkeypatch, capsys)
