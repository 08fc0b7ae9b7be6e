"""Trackers that fail: down for the whole retry ladder and then redriven; slower than
the timeout or failing at random. Every trade ends delivered or dead-lettered, and the
number of posts in flight stays bounded."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import threading
from pathlib import Path

import aiohttp

from devenv.broker import LocalKafka
from devenv.tracker import Reply, Tracker
from tests.faults.harness import InFlight, Stream, Supervisor, figures, settled
from tests.support import ROOT, env_for, make_settings, wait_for

FAST = "200ms,400ms,600ms,800ms,1s"


def test_tracker_down_for_the_whole_ladder_then_redriven(
    fault_broker: LocalKafka, tracker: Tracker, tmp_path: Path
) -> None:
    tracker.default = Reply(503)
    settings = make_settings(
        fault_broker.bootstrap, trace_delay_minutes=0.05, trace_retry_schedule=FAST
    )
    env = env_for(settings, WEBHOOK_ENDPOINT=f"{tracker.url}/traces")
    service = Supervisor(env, tmp_path / "service.log")
    stream = Stream(settings, count=200, rate=100).start()
    try:

        def all_dead() -> bool:
            done = stream.done()
            return done and figures(stream, tracker, 0, dead_letters=True).dead_lettered == 200

        wait_for(all_dead, timeout=90, what="every trade dead-lettered")
        before = figures(stream, tracker, service.restarts, dead_letters=True)
        tracker.default = Reply(200)
        redrive = subprocess.run(
            [sys.executable, "-m", "trace_stream.cli", "dlq", "redrive"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert redrive.returncode == 0, redrive.stderr
        wait_for(lambda: settled(stream, tracker), timeout=90, what="every trade redriven")
    finally:
        code, took = service.stop(timeout=30)
    after = figures(stream, tracker, service.restarts)
    print(f"\ntracker down for the ladder: {before}; after the redrive: {after}")
    assert before.delivered == 0 and before.lost == 0, str(before)
    assert after.sound() and after.delivered == after.sent, str(after)
    assert code == 0, f"SIGTERM: exit {code} after {took:.1f} s"


def test_slow_and_failing_tracker_every_trade_settles_in_flight_bounded(
    fault_broker: LocalKafka, tracker: Tracker, tmp_path: Path
) -> None:
    seed, in_flight, timeout = 11, 4, 1.5
    rng = random.Random(seed)
    lock = threading.Lock()

    def decide(_path: str, _body: bytes) -> Reply:
        with lock:
            draw = rng.random()
        if draw < 0.15:
            return Reply(200, delay=timeout + 0.3)  # the service gives up first
        return Reply(500) if draw < 0.35 else Reply(200)

    tracker.decide = decide
    posts = InFlight(tracker)
    settings = make_settings(
        fault_broker.bootstrap,
        trace_delay_minutes=0,
        trace_retry_schedule=FAST,
        trace_max_in_flight=in_flight,
    )
    env = env_for(
        settings, WEBHOOK_ENDPOINT=f"{tracker.url}/traces", WEBHOOK_TIMEOUT_SECONDS=str(timeout)
    )
    service = Supervisor(env, tmp_path / "service.log")
    stream = Stream(settings, count=200, rate=200).start()
    try:

        def every_trade_settled() -> bool:
            if not stream.done():
                return False
            f = figures(stream, tracker, 0, dead_letters=True)
            return f.delivered + f.dead_lettered >= f.sent

        wait_for(every_trade_settled, timeout=150, what="every trade delivered or dead-lettered")
    finally:
        code, took = service.stop(timeout=30)
    result = figures(stream, tracker, service.restarts, dead_letters=True)
    print(
        f"\nseed {seed}, slow 15%, 500 20%: {result}; at most {posts.most} posts in flight, "
        f"{posts.abandoned} given up on (tracker threads at once: {tracker.most_in_flight})"
    )
    assert result.lost == 0 and result.early == 0 and result.same_keys, str(result)
    assert posts.most <= in_flight, f"{posts.most} posts in flight at once, limit {in_flight}"
    # Not vacuous: the limit was reached, and the slow posts were seen given up on.
    assert posts.most == in_flight and posts.abandoned > 0, str(posts.__dict__)
    assert code == 0, f"SIGTERM: exit {code} after {took:.1f} s"


def test_in_flight_counts_what_the_client_holds(tracker: Tracker) -> None:
    """InFlight, the measure of the test above: requests at the tracker together all
    count; requests the client gave up on stop counting at once, though the tracker's
    threads still sleep on them."""
    tracker.default = Reply(200, delay=1.0)
    posts = InFlight(tracker)

    async def post(session: aiohttp.ClientSession, give_up: float) -> None:
        try:
            async with asyncio.timeout(give_up), session.post(f"{tracker.url}/x", data=b"{}") as r:
                await r.read()
        except TimeoutError:
            pass

    async def run() -> tuple[int, int]:
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(post(session, 3) for _ in range(6)))
            together = posts.most
            posts.most = 0
            for _ in range(5):  # four at a time, each replaced as soon as it is given up
                await asyncio.gather(*(post(session, 0.1) for _ in range(4)))
        return together, posts.most

    together, replaced = asyncio.run(run())
    assert (together, replaced) == (6, 4)
    assert tracker.most_in_flight > 4  # the tracker's threads still held the abandoned ones
