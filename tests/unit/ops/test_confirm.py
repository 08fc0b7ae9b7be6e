"""ops.confirm: many records move only with --yes or a yes typed on a terminal."""

from __future__ import annotations

import io

import pytest

from trace_stream.core.errors import ConfigError
from trace_stream.ops.confirm import CONFIRM_OVER, confirm


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_few_records_need_no_answer() -> None:
    confirm("replay", CONFIRM_OVER, yes=False, stdin=io.StringIO(), stderr=io.StringIO())


def test_many_records_without_a_terminal_need_yes() -> None:
    with pytest.raises(ConfigError, match="rerun with --yes"):
        confirm("replay", CONFIRM_OVER + 1, yes=False, stdin=io.StringIO())
    confirm("replay", CONFIRM_OVER + 1, yes=True, stdin=io.StringIO())


@pytest.mark.parametrize(("answer", "goes_on"), [("y\n", True), ("yes\n", True), ("\n", False)])
def test_a_terminal_is_asked(answer: str, goes_on: bool) -> None:
    asked = io.StringIO()
    if goes_on:
        confirm("dlq redrive", 5000, yes=False, stdin=Terminal(answer), stderr=asked)
    else:
        with pytest.raises(ConfigError, match="not confirmed"):
            confirm("dlq redrive", 5000, yes=False, stdin=Terminal(answer), stderr=asked)
    assert "5,000 records would move" in asked.getvalue()
