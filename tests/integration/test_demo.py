"""`make demo` as a newcomer sees it: the story in order, and a Ctrl-C at any moment
(during broker start-up, while running) ends everything with exit 0, no traceback.
Each run starts a broker of its own (devenv/broker.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.kafka
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Demo:
    def __init__(self) -> None:
        env = {**os.environ, "DEMO_INTERVAL_SECONDS": "1.5"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devenv.demo"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(_ANSI.sub("", line.rstrip("\n")))

    def wait_for(self, pattern: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(re.search(pattern, line) for line in self.lines):
            assert self.proc.poll() is None, "\n".join(self.lines)
            assert time.monotonic() < deadline, f"no {pattern!r} in:\n" + "\n".join(self.lines)
            time.sleep(0.05)

    def interrupt(self, within: float = 60) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(within)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def test_ctrl_c_during_broker_start_up_exits_0() -> None:
    demo = Demo()
    demo.wait_for(r"starting a single-node Apache Kafka broker", 20)
    time.sleep(2.5)  # the broker is formatting or starting now
    started = time.monotonic()
    assert demo.interrupt(within=20) == 0, demo.text
    assert time.monotonic() - started < 10
    assert "Traceback" not in demo.text
    assert demo.lines[-1].endswith("bye")


def test_the_story_in_order_then_ctrl_c_exits_0() -> None:
    demo = Demo()
    demo.wait_for(r"\[alert\].*T-0004", 90)
    demo.wait_for(r"T-0006 not posted", 30)
    assert demo.interrupt() == 0, demo.text
    text = demo.text
    assert "Traceback" not in text and not re.search(r"^%\d\|", text, re.M), text
    stories = [  # each trade's lines in order; trades run side by side
        [
            r"\[demo\] +published T-0001",
            r"\[service\] T-0001 scheduled on trace\.delay, due",
            r"personal fields dropped: user_id, user_email, user_name, client_id, account_id",
            r"\[tracker\] T-0001 received at .*, due .* \(\+\d+ ms\)",
        ],
        [
            r"\[demo\] +published T-0002",
            r"\[tracker\] T-0002 answered HTTP 503",
            r"\[service\] T-0002 retry scheduled on trace\.retry\.3s",
            r"\[tracker\] T-0002 received",
            r"\[service\] T-0002 posted, attempt 2",
        ],
        # The service's line and the alert's arrival race (the line travels through the
        # service's stderr pipe, the alert over HTTP): each follows the refusal.
        [
            r"\[demo\] +published T-0004",
            r"\[tracker\] T-0004 answered HTTP 422",
            r"\[service\] T-0004 dead-lettered to trace\.dlq",
            r"\[service\] stopped",
            r"\[demo\] +bye",
        ],
        [
            r"\[tracker\] T-0004 answered HTTP 422",
            r"\[alert\] +.*abandoned trade T-0004",
            r"\[service\] stopped",
        ],
        # Scheduling and the withdrawal race too: each comes before the verdict.
        [
            r"\[demo\] +published T-0006",
            r"\[demo\] +the owner of SIG-1 withdraws consent",
            r"\[service\] T-0006 not posted: SIG-1's owner withdrew consent",
            r"\[service\] stopped",
        ],
        [
            r"\[service\] T-0006 scheduled on trace\.delay",
            r"\[service\] T-0006 not posted",
        ],
    ]
    for story in stories:
        at = 0
        for pattern in story:
            found = next(
                (i for i in range(at, len(demo.lines)) if re.search(pattern, demo.lines[i])), None
            )
            assert found is not None, f"{pattern!r} not after line {at}:\n{text}"
            at = found
    assert "T-0003 received" not in text  # not opted in
    assert "T-0006 received" not in text  # consent withdrawn
    assert "user_email" not in "".join(line for line in demo.lines if "[tracker]" in line)
    assert "warning" not in text.lower() or "consumer error" not in text, text
