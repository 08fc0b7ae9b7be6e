"""Every command's output survives a reader that closes early (`| head`): the command
ends quietly, as git and grep do, with no traceback. Each runs as a process whose
stdout is a pipe closed before it writes anything; dead letters, topics and a trade
exist, so each command has something to print."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devenv.tracker import Reply, Tracker
from tests.adapters.harness import make_trace
from tests.ops.test_verify import ORIGIN, VKEY, write
from tests.support import (
    ROOT,
    env_for,
    make_settings,
    publish,
    read_topics,
    running,
    trade_event,
    wait_for,
)
from trace_stream.core.topics import layout
from trace_stream.settings import Settings

COMMANDS = [
    ["--help"],
    ["dlq", "--help"],
    ["check-config"],
    ["topics", "describe"],
    ["topics", "ensure"],
    ["replay", "--from", "0", "--dry-run"],
    ["dlq", "list"],
    ["dlq", "list", "--json"],
    ["dlq", "show", "0:0"],
    ["dlq", "stats"],
    ["dlq", "redrive", "--dry-run"],
    ["dlq", "reasons"],
    ["signals", "show", "SIG-1"],
    ["signals", "show", "SIG-1", "--json"],
    ["verify", "--key", VKEY, "--log", "{ledger}", "--origin", ORIGIN],
    ["ledger", "keygen", "--name", "ledger.example", "--stdout"],
]


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A signal's log of 50 entries, as the ledger adapter writes one."""
    root = tmp_path_factory.mktemp("ledger") / "sig-eurusd-momentum"
    write(root, [make_trace(i) for i in range(50)])
    return root


@pytest.fixture(scope="module")
def world(kafka_bootstrap: str) -> tuple[Settings, dict[str, str]]:
    """Topics holding a trade and two dead letters (one per partition 0 of the dlq)."""
    with Tracker() as tracker:
        tracker.default = Reply(401)
        settings = make_settings(kafka_bootstrap, trace_delay_minutes=0, trace_topic_partitions=1)
        env = env_for(settings, WEBHOOK_ENDPOINT=f"{tracker.url}/traces")
        publish(settings, trade_event("T-1", signal_id="SIG-1"), trade_event("T-2"))
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("WEBHOOK_ENDPOINT", env["WEBHOOK_ENDPOINT"])
            with running(settings):
                dlq = layout(settings).dead_letter
                wait_for(lambda: len(read_topics(settings, dlq)) == 2, what="2 dead letters")
    return settings, env


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_a_closed_pipe_ends_the_command_quietly(
    world: tuple[Settings, dict[str, str]], ledger: Path, argv: list[str]
) -> None:
    _, env = world
    argv = [arg.replace("{ledger}", str(ledger)) for arg in argv]
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes a byte
    try:
        done = subprocess.run(
            [sys.executable, "-m", "trace_stream", *argv],
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert "Exception ignored" not in done.stderr, done.stderr
    # argparse's help ignores a failed write on its own and exits 0; every other
    # command stops at its first write with 128 + SIGPIPE.
    expected = 0 if "--help" in argv else 141
    assert done.returncode == expected, (done.returncode, done.stderr)
