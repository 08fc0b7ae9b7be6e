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
import uuid
from pathlib import Path

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.kafka
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def marked(marker: str) -> set[int]:
    """Live processes whose environment holds `marker` (the demo and all it started)."""
    found = set()
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() not in environ.read_bytes():
                continue
            state = (environ.parent / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if state != "Z":
            found.add(int(environ.parent.name))
    return found


class Demo:
    def __init__(self, reader: list[str] | None = None) -> None:
        """`reader`: a command the demo's output is piped into, instead of this test."""
        self.marker = f"DEMO_TEST_{uuid.uuid4().hex}"
        env = {**os.environ, "DEMO_INTERVAL_SECONDS": "1.5", self.marker: "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devenv.demo"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        if reader is not None:
            self.reader = subprocess.Popen(reader, stdin=self.proc.stdout, text=True)
            assert self.proc.stdout is not None
            self.proc.stdout.close()  # only the reader holds the pipe now
            return
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
        return self.stop(signal.SIGINT, within)

    def stop(self, signum: int, within: float = 60) -> int:
        """Send `signum`; the exit code once the demo and the reading of its output end."""
        self.proc.send_signal(signum)
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
    deadline = time.monotonic() + 30
    while len(marked(demo.marker)) < 2:  # the demo and its broker (or the broker's tools)
        assert time.monotonic() < deadline, "no broker process started"
        time.sleep(0.05)
    assert not any("broker on" in line for line in demo.lines), "the broker is up already"
    started = time.monotonic()
    assert demo.interrupt(within=20) == 0, demo.text
    assert time.monotonic() - started < 10
    assert "Traceback" not in demo.text
    assert demo.lines[-1].endswith("bye")
    assert marked(demo.marker) == set(), "a process was left behind"


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP"])
def test_terminated_while_running_leaves_no_process(how: str) -> None:
    demo = Demo()
    demo.wait_for(r"\[service\] trace-stream running", 90)
    assert len(marked(demo.marker)) >= 3, "expected the demo, its broker and its service"
    assert demo.stop(getattr(signal, how)) == 0, demo.text
    assert demo.lines[-1].endswith("bye"), demo.text
    assert "Traceback" not in demo.text
    assert marked(demo.marker) == set(), "a process was left behind"


def test_a_reader_that_goes_away_stops_everything(tmp_path: Path) -> None:
    """`make demo | tee` interrupted: the reader is gone, the demo's next line finds
    the pipe closed, and it stops its service and broker."""
    seen = tmp_path / "seen"
    demo = Demo(reader=["sed", "-n", f"w {seen}\n/trace-stream running/q"])
    assert demo.reader.wait(90) == 0
    assert "trace-stream running" in seen.read_text()
    assert demo.proc.wait(60) == 0
    deadline = time.monotonic() + 10
    while marked(demo.marker):
        assert time.monotonic() < deadline, "a process was left behind"
        time.sleep(0.1)


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
