"""`make demo`: a local broker, a local tracker, sample trades, and the real service.

Starts a single-node Kafka (KRaft), creates the topics, starts a tracker on
loopback that prints what it receives, publishes sample `trade.closed` events
(with personal fields in them) and runs `trace-stream run` with a short delay, so
you can watch each trade being scheduled and then posted, redacted, at its due
time. A new trade closes every few seconds. Ctrl-C stops everything cleanly.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

from devenv.broker import LocalKafka
from devenv.tracker import Received, Tracker
from trace_stream import codec
from trace_stream.kafka import Admin, OutRecord, Producer, TopicSpec
from trace_stream.settings import Settings
from trace_stream.topics import specs

DELAY_MINUTES = float(os.environ.get("DEMO_DELAY_MINUTES", "0.1"))  # 6 seconds
INSTRUMENTS = [("EURUSD", 1.08), ("XAUUSD", 2400.0), ("GBPJPY", 191.2), ("US500", 5600.0)]


def say(text: str) -> None:
    print(f"\033[1;36m[demo]\033[0m {text}", flush=True)


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


def show_post(got: Received) -> None:
    body = json.dumps(got.json(), separators=(",", ":"))
    print(f"\033[1;32m[tracker]\033[0m received {got.json()['trade_id']}: {body}", flush=True)


def main() -> int:
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    say("starting a single-node Apache Kafka broker (KRaft) ...")
    with LocalKafka() as kafka, Tracker() as tracker:
        say(f"broker on {kafka.bootstrap}; tracker on {tracker.url}")
        tracker.on_request = show_post
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
            "TRACE_DELAY_MINUTES": str(DELAY_MINUTES),
            "TRACE_ENABLED_ADAPTERS": "webhook",
            "TRACE_TOPIC_PARTITIONS": "2",
            "WEBHOOK_ENDPOINT": f"{tracker.url}/traces",
            "WEBHOOK_AUTH_HEADER": "X-Api-Key",
            "WEBHOOK_AUTH_TOKEN": "demo-token",
            "LOG_FORMAT": "text",
            "METRICS_PORT": "0",
        }
        settings = Settings(kafka_bootstrap_servers=kafka.bootstrap, trace_topic_partitions=2)
        Admin(settings.kafka_config()).create(
            [*specs(settings), TopicSpec(settings.trace_input_topic, 2, 1, {})]
        )
        say(
            "topics created; starting `trace-stream run` "
            f"(posts wait until closed_at + {DELAY_MINUTES * 60:.0f}s)"
        )
        service = subprocess.Popen(
            [sys.executable, "-m", "trace_stream.cli", "run"], env=env, start_new_session=True
        )
        producer = Producer(settings.kafka_config())
        try:
            for n in itertools.count(1):
                trade = sample_trade(n)
                producer.produce(
                    OutRecord(
                        settings.trace_input_topic,
                        codec.encode("trade_closed", trade),
                        key=str(trade["trade_id"]).encode(),
                    )
                )
                producer.flush()
                opted = "opted in" if trade["tracing_opt_in"] else "NOT opted in: never posted"
                say(f"published {trade['trade_id']} for {trade['user_email']} ({opted})")
                if stop.wait(4) or service.poll() is not None:
                    break
        finally:
            say("stopping the service ...")
            if service.poll() is None:
                service.send_signal(signal.SIGTERM)
                service.wait(60)
        say("stopping the broker; bye")
    return service.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
