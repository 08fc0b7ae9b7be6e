"""Dead-letter reasons: one closed set, and the docs and the `dlq` help say the same."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import get_args

import pytest
from pydantic import ValidationError

from tests.support import ROOT
from trace_stream import cli
from trace_stream.core.dead_letters import dead_letter
from trace_stream.core.reasons import REASONS, Reason
from trace_stream.core.records import Origin
from trace_stream.ops.dlq import reasons_table
from trace_stream.stages.schedule import DEAD_LETTER_OUTCOMES

AT = Origin(topic="trade.closed", partition=0, offset=1)
AT_TIME = datetime(2026, 12, 7, tzinfo=UTC)


def test_every_reason_is_described() -> None:
    assert list(REASONS) == list(get_args(Reason))


def test_the_manual_holds_the_table_the_code_makes() -> None:
    page = (ROOT / "docs" / "operations.md").read_text()
    section = page.split("### Dead-letter reasons", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert rows == reasons_table()


def test_dlq_list_help_names_every_reason(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["dlq", "list", "--help"])
    shown = set(re.findall(r"[a-z_]+", capsys.readouterr().out))
    assert set(REASONS) <= shown


def test_a_reason_outside_the_set_is_refused() -> None:
    with pytest.raises(ValidationError):
        dead_letter("lost", "x", origin=AT, at=AT_TIME)  # type: ignore[arg-type]


def test_the_first_stage_counts_exactly_its_own_reasons() -> None:
    assert {"undecodable", "invalid_event", "unprocessable"} == DEAD_LETTER_OUTCOMES
