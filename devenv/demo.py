"""`make demo`: a local broker, a local tracker, sample trades, and the real service.

Starts a single-node Kafka (KRaft), creates the topics, starts a tracker and an alert
receiver on loopback, publishes sample `trade.closed` events (with personal fields in
them) and runs `trace-stream run` with a short delay. The story, in order: each trade
is scheduled with its personal fields dropped (named), then posted at its due time;
T-0002 fails once (HTTP 503) and is retried; T-0003 did not opt in and is never
posted; T-0004 is rejected for good (HTTP 422), dead-lettered, and its alert arrives;
the owner of T-0006's signal withdraws consent after it closed, so it is not posted
(nor any later trade of that signal).
The service's JSON log is read and retold in one line per event; librdkafka's own
log lines are limited to errors. Ctrl-C at any moment stops everything, exit 0.
"""

from __future__ import annotations

import signal
import threading

# First, before the slower imports: a Ctrl-C at any moment only asks the demo to stop,
# and so do SIGTERM and a closed terminal (SIGHUP). A reader that goes away (`| tee`
# interrupted) stops it too, at the next line it writes (see `_paint`).
STOP = threading.Event()
for _signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(_signum, lambda *_: STOP.set())

import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import IO, Any  # noqa: E402

from devenv.broker import LocalKafka  # noqa: E402
from devenv.tracker import Received, Reply, Tracker  # noqa: E402
from trace_stream import codec  # noqa: E402
from trace_stream.codec.wire import encode_signal_settings  # noqa: E402
from trace_stream.core.messages import OutRecord  # noqa: E402
from trace_stream.core.topics import TopicSpec, specs  # noqa: E402
from trace_stream.kafka import Admin, Producer  # noqa: E402
from trace_stream.pipeline import consent  # noqa: E402
from trace_stream.pipeline.redact import ALLOWED_FIELDS  # noqa: E402
from trace_stream.settings import Settings  # noqa: E402

DELAY_MINUTES = float(os.environ.get("DEMO_DELAY_MINUTES", "0.1"))  # 6 seconds
INTERVAL = float(os.environ.get("DEMO_INTERVAL_SECONDS", "4"))
INSTRUMENTS = [("EURUSD", 1.08), ("XAUUSD", 2400.0), ("GBPJPY", 191.2), ("US500", 5600.0)]
PERSONAL = ("user_id", "user_email", "user_name", "client_id", "account_id")
FAILS_ONCE, REJECTED, WITHDRAWN = "T-0002", "T-0004", "T-0006"
RETRY = "3s"  # one retry tier, so the retried trade comes back soon
COMPACTED = {"cleanup.policy": "compact"}
QUIET = {"log_level": 0}  # the demo's own clients: no librdkafka lines at all


def _paint(code: str, tag: str, text: str) -> None:
    try:
        print(f"\033[{code}m{tag}\033[0m {text}", flush=True)
    except (BrokenPipeError, ValueError):  # nobody reads any more: stop, write nothing
        STOP.set()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def say(text: str) -> None:
    _paint("1;36", "[demo]   ", text)


def clock(at: datetime | float) -> str:
    moment = at if isinstance(at, datetime) else datetime.fromtimestamp(at, UTC)
    return moment.astimezone().strftime("%H:%M:%S.%f")[:-3]


def sample_trade(n: int) -> dict[str, object]:
    instrument, price = INSTRUMENTS[n % len(INSTRUMENTS)]
    closed = datetime.now(UTC)
    exit_price = round(price * (1 + random.uniform(-0.004, 0.004)), 5)
    return {
        "trade_id": f"T-{n:04d}",
        "signal_id": f"SIG-{n % 3 + 1}",
        "user_id": f"U-{1000 + n}",
        "user_email": f"trader{n}@example.com",
        "user_name": f"Trader Number{n}",
        "client_id": f"C-{n}",
        "account_id": f"ACC-{900000 + n}",
        "instrument": instrument,
        "side": random.choice(["BUY", "SELL"]),
        "volume": round(random.uniform(0.1, 2.0), 2),
        "entry_price": price,
        "exit_price": exit_price,
        "opened_at": closed - timedelta(minutes=random.randint(5, 240)),
        "closed_at": closed,
        "profit_loss": round((exit_price - price) * 1000, 2),
        "fees": 1.25,
        "currency": "USD",
        "status": "closed",
        "tracing_opt_in": n % 5 != 3,  # every fifth user did not opt in
        "tracing_adapters": ["webhook"],
    }


class Story:
    """Retells what the tracker, the alert receiver and the service's log say."""

    def __init__(self) -> None:
        self.trades: dict[str, dict[str, object]] = {}
        self.tries: dict[str, int] = {}
        self.due: dict[str, datetime] = {}
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.withdrawn: set[str] = set()
        self.closed_before: set[str] = set()
        """Trades published before their signal's owner withdrew consent."""
        self._assigned = 0

    def withdrawing(self, signal_id: str) -> None:
        with self.lock:
            self.withdrawn.add(signal_id)
            self.closed_before.update(
                t for t, trade in self.trades.items() if trade["signal_id"] == signal_id
            )

    def decide(self, _path: str, body: bytes) -> Reply:
        """The tracker's script: T-0002 fails once, T-0004 is refused for good."""
        trade_id = str(json.loads(body).get("trade_id"))
        with self.lock:
            self.tries[trade_id] = self.tries.get(trade_id, 0) + 1
            first = self.tries[trade_id] == 1
        if trade_id == FAILS_ONCE and first:
            return Reply(503, b'{"error": "busy, try again"}')
        if trade_id == REJECTED:
            return Reply(422, b'{"error": "unknown signal"}')
        return Reply()

    def posted(self, got: Received) -> None:
        body = got.json()
        trade_id = str(body.get("trade_id"))
        if not got.ok:
            why = "fails once" if trade_id == FAILS_ONCE else "refuses this trade for good"
            _paint("1;33", "[tracker]", f"{trade_id} answered HTTP {got.status} (scripted: {why})")
            return
        leaked = [k for k in PERSONAL if k in body]
        due = self.due.get(trade_id)
        when = f"at {clock(got.at)}"
        if due is not None:
            when += f", due {clock(due)} (+{(got.at - due.timestamp()) * 1000:.0f} ms)"
        shown = json.dumps(body, separators=(",", ":"))
        _paint("1;32", "[tracker]", f"{trade_id} received {when}: {shown}")
        if leaked:
            _paint("1;31", "[tracker]", f"{trade_id} LEAKED personal fields {leaked}")

    def alerted(self, got: Received) -> None:
        _paint("1;31", "[alert]  ", str(got.json().get("text")))

    def service_line(self, line: str) -> None:
        try:
            event: dict[str, Any] = json.loads(line)
        except ValueError:
            if line.strip():
                _paint("2", "[service]", line.rstrip())
            return
        if not isinstance(event, dict):
            return
        text = self._retell(event)
        if text:
            code = {"warning": "33", "error": "31", "critical": "31"}.get(
                str(event.get("level")), "35"
            )
            _paint(code, "[service]", text)

    def _retell(self, e: dict[str, Any]) -> str | None:
        msg, trade_id = e.get("msg"), e.get("trade_id")
        due_at = datetime.fromisoformat(e["due_at"]) if "due_at" in e else None
        due = clock(due_at) if due_at else "?"
        if due_at and msg in ("trade scheduled", "retry scheduled"):
            self.due[str(trade_id)] = due_at
        if msg == "trade scheduled":
            trade = self.trades.get(str(trade_id), {})
            dropped = [k for k in trade if k not in ALLOWED_FIELDS]
            personal = [k for k in dropped if k in PERSONAL]
            other = [k for k in dropped if k not in PERSONAL]
            return (
                f"{trade_id} scheduled on trace.delay, due {due} "
                f"(closed_at + {DELAY_MINUTES * 60:g}s)\n          personal fields dropped: "
                f"{', '.join(personal)}; not sent either: {', '.join(other)}"
            )
        if msg == "trade skipped":
            return f"an event was skipped ({e.get('reason')}): nothing about it is written"
        if msg == "not posted: consent withdrawn":
            when = "after it closed" if trade_id in self.closed_before else "before it closed"
            return (
                f"{trade_id} not posted: {e.get('signal_id')}'s owner withdrew consent "
                f"{when} (checked before every attempt); nothing is dead-lettered"
            )
        if msg == "trace posted":
            return f"{trade_id} posted, attempt {e.get('attempt')} (was due {due})"
        if msg == "post failed":
            why = f"{e.get('reason')} ({e.get('detail')})"
            return f"{trade_id} post failed, attempt {e.get('attempt')}: {why}"
        if msg == "retry scheduled":
            return f"{trade_id} retry scheduled on {e.get('retry_topic')}, due {due}"
        if msg == "delivery abandoned":
            return (
                f"{trade_id} dead-lettered to trace.dlq after {e.get('attempts')} attempt(s): "
                f"{e.get('reason')} ({e.get('detail')}); alert raised"
            )
        if msg == "partitions assigned":
            self._assigned += 1
            if self._assigned >= 2:  # the scheduler's and the deliverer's consumers
                self.ready.set()
            return None
        if msg in ("trace-stream running", "stopping", "stopped"):
            return str(msg)
        if e.get("level") in ("warning", "error", "critical"):
            fields = {k: v for k, v in e.items() if k not in ("ts", "level", "logger", "msg")}
            return f"{msg} {json.dumps(fields)}"
        return None


def relay(stream: IO[str], story: Story) -> None:
    for line in stream:
        story.service_line(line)


def main() -> int:
    say("starting a single-node Apache Kafka broker (KRaft) ... (Ctrl-C stops the demo)")
    kafka = LocalKafka()
    service: subprocess.Popen[str] | None = None
    story = Story()
    stopped_by_us = False
    try:
        kafka.start(stop=STOP)
        with Tracker() as tracker, Tracker() as alerts:
            tracker.decide = story.decide
            tracker.on_request = story.posted
            alerts.on_request = story.alerted
            say(f"broker on {kafka.bootstrap}; tracker on {tracker.url}; alerts on {alerts.url}")
            settings = Settings(
                kafka_bootstrap_servers=kafka.bootstrap,
                trace_topic_partitions=2,
                trace_retry_schedule=RETRY,
            )
            Admin({**settings.kafka_config(), **QUIET}).create(
                [
                    *specs(settings),
                    TopicSpec(settings.trace_input_topic, 2, 1, {}),
                    TopicSpec(settings.trace_signal_settings_topic, 2, 1, COMPACTED),
                ]
            )
            env = {
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
                # librdkafka's own lines only for errors (not "Coordinator load in progress")
                "KAFKA_EXTRA_CONFIG": json.dumps({"log_level": 3}),
                "LOG_LEVEL": "DEBUG",  # the per-trade lines it retells are DEBUG
                "TRACE_DELAY_MINUTES": str(DELAY_MINUTES),
                "TRACE_ENABLED_ADAPTERS": "webhook",
                "TRACE_TOPIC_PARTITIONS": "2",
                "TRACE_RETRY_SCHEDULE": RETRY,
                "TRACE_RETRY_MAX_ATTEMPTS": "3",
                "WEBHOOK_ENDPOINT": f"{tracker.url}/traces",
                "WEBHOOK_AUTH_HEADER": "X-Api-Key",
                "WEBHOOK_AUTH_TOKEN": "demo-token",
                "ALERT_WEBHOOK_URL": f"{alerts.url}/alerts",
                "ALERT_MIN_INTERVAL_SECONDS": "0",
                "LOG_FORMAT": "json",
                "METRICS_PORT": "0",
            }
            say(
                "topics created; starting `trace-stream run` "
                f"(posts wait until closed_at + {DELAY_MINUTES * 60:g}s; retries after 3s)"
            )
            service = subprocess.Popen(
                [sys.executable, "-m", "trace_stream.cli", "run"],
                env=env,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # a Ctrl-C reaches the demo only; it stops the service
            )
            assert service.stderr is not None
            threading.Thread(target=relay, args=(service.stderr, story), daemon=True).start()
            while not (story.ready.wait(0.2) or STOP.is_set() or service.poll() is not None):
                pass
            producer = Producer({**settings.kafka_config(), **QUIET})
            for n in itertools.count(1):
                if STOP.is_set() or service.poll() is not None:
                    break
                trade = sample_trade(n)
                story.trades[str(trade["trade_id"])] = trade
                opted = "opted in" if trade["tracing_opt_in"] else "NOT opted in: never posted"
                if trade["tracing_opt_in"] and trade["signal_id"] in story.withdrawn:
                    opted += f", but {trade['signal_id']}'s owner has withdrawn consent"
                role = {
                    FAILS_ONCE: "; the tracker will fail it once",
                    REJECTED: "; the tracker will refuse it",
                }
                say(
                    f"published {trade['trade_id']} for {trade['user_email']} "
                    f"({opted}{role.get(str(trade['trade_id']), '')})"
                )
                producer.produce(
                    OutRecord(
                        settings.trace_input_topic,
                        codec.encode("trade_closed", trade),
                        key=str(trade["trade_id"]).encode(),
                    )
                )
                producer.flush()
                if trade["trade_id"] == WITHDRAWN:
                    story.withdrawing(str(trade["signal_id"]))
                    withdraw(producer, settings, str(trade["signal_id"]))
                STOP.wait(INTERVAL)
            stopped_by_us = STOP.is_set()
            say("stopping the service ...")
            service = _end(service)
    except Exception:
        # A Ctrl-C during the broker's start-up stops it there (Interrupted), or kills
        # its format tool, which shares the terminal; either way the demo just ends.
        if not STOP.is_set():
            raise
        stopped_by_us = True
    finally:
        if service is not None and service.poll() is None:  # an error or a closed pipe
            service = _end(service)
        say("stopping the broker ...")
        kafka.stop()
    if service is not None and service.returncode not in (0, -signal.SIGTERM) and not stopped_by_us:
        say(f"the service stopped on its own (exit {service.returncode}); see its lines above")
        return 1
    say("bye")
    return 0


def withdraw(producer: Producer, settings: Settings, signal_id: str) -> None:
    """The signal's owner turns tracing off: its latest settings on the compacted topic."""
    off = consent.SignalSettings(signal_id, False, frozenset(), datetime.now(UTC))
    say(f"the owner of {signal_id} withdraws consent (on {settings.trace_signal_settings_topic})")
    producer.produce(
        OutRecord(
            settings.trace_signal_settings_topic,
            encode_signal_settings(off),
            key=signal_id.encode(),
        )
    )
    producer.flush()


def _end(service: subprocess.Popen[str]) -> subprocess.Popen[str]:
    """SIGTERM, then wait for the graceful stop (a second Ctrl-C does not cut it short)."""
    if service.poll() is None:
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(45)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()
    return service


if __name__ == "__main__":
    sys.exit(main())
