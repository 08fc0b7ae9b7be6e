"""Throughput of the service against plain loops doing the same work, in the same run.

Five pipelines, each a process of its own, over the same broker, the same trades and
the same sinks:

    a  plain post   `python -m bench.plain post`: consume -> decode -> JSON -> POST -> commit
    c  service      `python -m trace_stream.cli run`, webhook adapter, TRACE_DELAY_MINUTES=0
    b  plain jsonl  `python -m bench.plain jsonl`: consume -> decode -> redact -> file -> commit
    d  service      the same, `file` adapter (local directory)
    e  service      the same, `ledger` adapter (local directory; one signal, so one log
                    whose appends are serialized by its lock: the worst case)

For every run: fresh topics (6 partitions), N trades published beforehand, all due at
once; the pipeline is started and the bench waits (with a deadline) until the sink
holds N: the counting tracker (a fast aiohttp server in its own process) for a and c,
JSON Lines files in a fresh directory under `--sink-dir` for b and d, the ledger's
checkpoints there for e (each log fully audited at the end: trades are counted from
verified entries). Rounds are interleaved (a, c, b, d, e, a, ...) and figures are
medians over the rounds; the ratios c/a, d/b and e/d are taken within each round, then
their median.

    .venv/bin/python -m bench.throughput                 # 20,000 / 100,000 trades, 3 rounds
    .venv/bin/python -m bench.throughput --quick         # 2,000 trades, 1 round: a smoke run
    .venv/bin/python -m bench.throughput --json out.json --log-level WARNING

Loopback only; the broker (unless KAFKA_BOOTSTRAP_SERVERS is set), the tracker and
every pipeline are stopped when the script ends.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    Progress,
    Tracker,
    broker,
    counting_tracker,
    service_command,
    start_process,
    stop_process,
    usage,
)
from bench.plot import plot
from devenv.broker import free_port
from devenv.trades import fresh_settings, publish_trades, service_env
from trace_stream.core.tlog import audit
from trace_stream.core.tlog.note import Signer


@dataclass(frozen=True)
class Pipeline:
    key: str
    label: str
    sink: str  # "webhook", "file" or "ledger"
    command: list[str]
    root: Path = ROOT  # the checkout whose trace_stream runs (PYTHONPATH)


PIPELINES = {
    "a": Pipeline("a", "plain post", "webhook", [sys.executable, "-m", "bench.plain", "post"]),
    "c": Pipeline("c", "service webhook", "webhook", service_command()),
    "b": Pipeline("b", "plain jsonl", "file", [sys.executable, "-m", "bench.plain", "jsonl"]),
    "d": Pipeline("d", "service file", "file", service_command()),
    "e": Pipeline("e", "service ledger", "ledger", service_command()),
}
ORDER = ("a", "c", "b", "d", "e")
LEDGER_KEY = Signer.generate("bench.ledger")


class FileSink:
    """Counts the lines of the JSON Lines files under a directory as they appear (a
    file appears whole: temp name, then rename; dot-files are skipped)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lines: dict[Path, int] = {}
        self.mtimes: dict[Path, float] = {}

    def count(self) -> int:
        for day in self.root.glob("dt=*"):
            for entry in os.scandir(day):
                path = Path(entry.path)
                if entry.name.startswith(".") or path in self.lines:
                    continue
                self.mtimes[path] = entry.stat().st_mtime
                self.lines[path] = path.read_bytes().count(b"\n")
        return sum(self.lines.values())

    def trade_ids(self) -> list[str]:
        return [
            json.loads(line)["trade_id"]
            for path in self.lines
            for line in path.read_bytes().splitlines()
        ]


class LedgerSink:
    """Counts the entries of the ledger's logs under a directory (the size in each
    signal's checkpoint), noting when it was first and last seen growing."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.first = self.last = 0.0
        self._seen = 0

    def count(self) -> int:
        n = sum(int(c.read_bytes().split(b"\n")[1]) for c in self.root.glob("*/checkpoint"))
        if n > self._seen:
            self.first, self.last = self.first or time.monotonic(), time.monotonic()
            self._seen = n
        return n

    def trade_ids(self) -> list[str]:
        """Every trade of every log, after a full audit of each (raises if one fails)."""
        ids = []
        for log in self.root.glob("*/checkpoint"):

            def fetch(path: str, folder: Path = log.parent) -> bytes | None:
                return (folder / path).read_bytes() if (folder / path).exists() else None

            cp = audit.checkpoint(fetch, LEDGER_KEY.verifier)
            ids += [t.trade_id for t in audit.audit(fetch, cp).trades]
        return ids


def _py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` (only samples holding the GIL) into `out`, raw format."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [spy, "record", "--gil", "--format", "raw", "--output", str(out)]
    return subprocess.Popen(
        [*command, "--pid", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


_FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")


def _function(frame: str) -> str:
    """'name (path/to/module.py:12)' -> 'name (to/module.py)': one entry per function."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    return f"{m[1]} ({'/'.join(Path(m[2]).parts[-2:])})"


_EVERYWHERE = {
    "Thread._bootstrap (threading.py)",
    "Thread._bootstrap_inner (threading.py)",
    "Thread.run (threading.py)",
}
"""Frames at the bottom of every thread's stack: left out of the cumulative ranking."""


def top_functions(profile: Path, n: int = 15) -> dict[str, Any]:
    """From py-spy's raw output: the functions with the most samples as the innermost
    frame (own) and anywhere on the stack (cumulative, once per sample), as shares of
    all samples (with --gil: of the samples in which a thread held the GIL)."""
    own: dict[str, int] = {}
    cumulative: dict[str, int] = {}
    total = 0
    for line in profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [
            _function(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))
        ]
        if not frames:
            continue
        k = int(count)
        total += k
        own[frames[-1]] = own.get(frames[-1], 0) + k
        for name in set(frames) - _EVERYWHERE:
            cumulative[name] = cumulative.get(name, 0) + k

    def top(counts: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:n]
        return [(name, k / total) for name, k in ranked]

    return {"samples": total, "own": top(own), "cumulative": top(cumulative)}


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def run_once(
    bootstrap: str, tracker: Tracker, p: Pipeline, trades: int, args: argparse.Namespace
) -> dict[str, Any]:
    """One run of pipeline `p` over `trades` fresh trades; its figures."""
    settings = fresh_settings(
        bootstrap, trace_delay_minutes=0, trace_topic_partitions=6, metrics_port=free_port()
    )
    label = f"{p.key} {p.label}"
    bar = Progress(f"{label}: publish", trades)
    publish_trades(
        settings,
        (f"bench-{i:07d}" for i in range(trades)),
        datetime.now(UTC),
        adapters=(p.sink,),
        progress=bar.update,
        compression=args.input,
    )
    bar.done()
    sink_dir = Path(tempfile.mkdtemp(prefix="bench-sink-", dir=args.sink_dir))
    files = FileSink(sink_dir)
    ledger = LedgerSink(sink_dir)
    tracker.reset()
    env = service_env(
        settings,
        TRACE_ENABLED_ADAPTERS=p.sink,
        WEBHOOK_ENDPOINT=f"{tracker.url}/hook",
        FILE_EXPORT_DIR=str(sink_dir),
        FILE_EXPORT_BATCH_MAX_AGE_SECONDS=str(args.batch_age),
        LEDGER_DIR=str(sink_dir),
        LEDGER_SIGNING_KEY=LEDGER_KEY.secret(),
        LEDGER_BATCH_MAX_AGE_SECONDS=str(args.batch_age),
        LOG_LEVEL=args.log_level,
        LOG_FORMAT="json",
        PYTHONPATH=str(p.root),
    )
    log = Path(tempfile.gettempdir()) / f"bench-throughput-{p.key}-{settings.trace_group_id}.log"
    bar = Progress(label, trades)
    tracker_cpu0 = (usage(tracker.pid) or _NONE).cpu_s
    machine0 = _cpu_times()
    start_wall, start = time.time(), time.monotonic()
    proc = start_process(p.command, env, log, cwd=p.root)
    first_cpu: tuple[float, int] | None = None  # (CPU s, count) when output first seen
    profile = bool(args.profile) and p.command == service_command()
    spy: subprocess.Popen[bytes] | None = None
    spy_out = Path(args.profile or ".") / f"{p.key}-{settings.trace_group_id}.txt"
    try:
        deadline = start + args.timeout
        while True:
            if p.sink == "webhook":
                seen = tracker.count()
            else:
                seen = {"count": (ledger if p.sink == "ledger" else files).count()}
            count = int(seen["count"])
            now_usage = usage(proc.pid)
            if count and first_cpu is None and now_usage:
                first_cpu = (now_usage.cpu_s, count)
                if profile:  # the steady state only: start-up is not sampled
                    spy = _py_spy(proc.pid, spy_out)
            if count >= trades:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{label}: {count}/{trades} by the deadline (exit {proc.poll()}); see {log}"
                )
            bar.update(count)
            time.sleep(0.1)
        end = usage(proc.pid) or _NONE
        machine1 = _cpu_times()
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output and exits
            spy.wait(60)
        exit_code = stop_process(proc)
    bar.done()
    tracker_cpu = (usage(tracker.pid) or _NONE).cpu_s - tracker_cpu0
    if p.sink == "webhook":
        first, last = seen["first"], seen["last"]
        unique = min(int(seen["keys"]), int(seen["trades"]))
    elif p.sink == "ledger":
        first, last = ledger.first, ledger.last
        ids = ledger.trade_ids()
        count, unique = len(ids), len(set(ids))
    else:
        first = start + (min(files.mtimes.values()) - start_wall)
        last = start + (max(files.mtimes.values()) - start_wall)
        ids = files.trade_ids()
        count, unique = len(ids), len(set(ids))
    cpu0, count0 = first_cpu or (0.0, 0)
    ok = exit_code == 0
    if ok:
        log.unlink()
    shutil.rmtree(sink_dir, ignore_errors=True)
    return {
        "pipeline": p.key,
        "label": p.label,
        "trades": trades,
        "steady_tps": (trades - 1) / (last - first) if last > first else None,
        "overall_tps": trades / (last - start),
        "startup_s": first - start,
        "cpu_s": end.cpu_s,
        "cpu_per_1000": end.cpu_s / trades * 1000,
        "steady_cpu_per_1000": (end.cpu_s - cpu0) / (trades - count0) * 1000
        if trades > count0
        else None,
        "peak_rss_mib": end.peak_rss_mib,
        "duplicates": count - unique,
        "missing": trades - unique,
        "tracker_cpu_per_1000": tracker_cpu / trades * 1000 if p.sink == "webhook" else None,
        "machine_busy": (machine1[0] - machine0[0]) / max(1.0, machine1[1] - machine0[1]),
        "exit_code": exit_code,
        "log": None if ok else str(log),
        "profile": top_functions(spy_out) | {"path": str(spy_out)}
        if spy is not None and spy_out.exists()
        else None,
    }


class _None:
    cpu_s = 0.0
    peak_rss_mib = 0.0


_NONE: Any = _None()


COLUMNS = [  # (heading, figure, format)
    ("trades", "trades", "{:,.0f}"),
    ("steady/s", "steady_tps", "{:,.0f}"),
    ("overall/s", "overall_tps", "{:,.0f}"),
    ("start s", "startup_s", "{:.2f}"),
    ("CPU/1k", "cpu_per_1000", "{:.3f}"),
    ("CPU/1k st", "steady_cpu_per_1000", "{:.3f}"),
    ("RSS MiB", "peak_rss_mib", "{:.0f}"),
    ("dup", "duplicates", "{:.0f}"),
    ("miss", "missing", "{:.0f}"),
    ("trk/1k", "tracker_cpu_per_1000", "{:.3f}"),
    ("busy", "machine_busy", "{:.0%}"),
    ("exit", "exit_code", "{:.0f}"),
]


def _row(label: str, figures: dict[str, Any]) -> str:
    cells = [
        "-" if figures.get(name) is None else fmt.format(figures[name]) for _, name, fmt in COLUMNS
    ]
    return f"{label:24}" + "".join(f"{c:>10}" for c in cells)


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _, name, _ in COLUMNS:
        values = [r[name] for r in runs if r.get(name) is not None]
        out[name] = statistics.median(values) if values else None
    return out


RATIOS = [  # (name, numerator, denominator, figure)
    ("c/a trades/s (steady)", "c", "a", "steady_tps"),
    ("c/a trades/s (overall)", "c", "a", "overall_tps"),
    ("c/a CPU per trade", "c", "a", "cpu_per_1000"),
    ("c/a CPU per trade (steady)", "c", "a", "steady_cpu_per_1000"),
    ("d/b trades/s (steady)", "d", "b", "steady_tps"),
    ("d/b trades/s (overall)", "d", "b", "overall_tps"),
    ("d/b CPU per trade", "d", "b", "cpu_per_1000"),
    ("d/b CPU per trade (steady)", "d", "b", "steady_cpu_per_1000"),
    ("c/C trades/s (steady)", "c", "C", "steady_tps"),
    ("c/C CPU per trade", "c", "C", "cpu_per_1000"),
    ("d/D trades/s (steady)", "d", "D", "steady_tps"),
    ("d/D CPU per trade", "d", "D", "cpu_per_1000"),
    ("C/a CPU per trade", "C", "a", "cpu_per_1000"),
    ("C/a trades/s (steady)", "C", "a", "steady_tps"),
    ("D/b trades/s (steady)", "D", "b", "steady_tps"),
    ("e/d trades/s (steady)", "e", "d", "steady_tps"),
    ("e/d trades/s (overall)", "e", "d", "overall_tps"),
    ("e/d CPU per trade", "e", "d", "cpu_per_1000"),
    ("e/d CPU per trade (steady)", "e", "d", "steady_cpu_per_1000"),
]


def _ratios(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each ratio within each round (interleaved neighbours), then the median."""
    out: dict[str, dict[str, Any]] = {}
    for name, num, den, figure in RATIOS:
        per_round = [
            r[num][figure] / r[den][figure]
            for r in rounds
            if num in r and den in r and r[num][figure] and r[den][figure]
        ]
        out[name] = {
            "median": statistics.median(per_round) if per_round else None,
            "rounds": per_round,
        }
    return out


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _table(result: dict[str, Any]) -> str:
    a = result["parameters"]
    lines = [
        f"webhook {a['trades']:,} trades, file and ledger {a['file_trades']:,} trades, "
        f"{a['rounds']} round(s) interleaved {','.join(a['pipelines'])}, 6 partitions, "
        f"LOG_LEVEL={a['log_level']}, file batch max age {a['batch_age']:g} s, "
        f"input {a.get('input', 'lz4')}",
        f"machine: {result['machine_before']['cpus']} CPUs, load average before "
        f"{' '.join(result['machine_before']['loadavg'])}, after "
        f"{' '.join(result['machine_after']['loadavg'])}",
        f"{'':24}" + "".join(f"{h:>10}" for h, _, _ in COLUMNS),
    ]
    for i, rnd in enumerate(result["rounds"]):
        for key in a["pipelines"]:
            if key in rnd:
                lines.append(_row(f"r{i + 1} {key} {PIPELINES[key].label}", rnd[key]))
    lines.append("median over rounds:")
    for key, med in result["median"].items():
        lines.append(_row(f"   {key} {PIPELINES[key].label}", med))
    lines.append("ratios (within each round, then the median; rounds in brackets):")
    for name, r in result["ratios"].items():
        if r["median"] is not None:
            each = ", ".join(f"{x:.2f}" for x in r["rounds"])
            lines.append(f"   {name:28} {r['median']:6.2f}   [{each}]")
    lines += [
        f"log kept: {run['log']}" for rnd in result["rounds"] for run in rnd.values() if run["log"]
    ]
    for i, rnd in enumerate(result["rounds"]):
        for key, run in rnd.items():
            if run["profile"]:
                lines.append(_profile_table(f"r{i + 1} {key} {run['label']}", run["profile"]))
    return "\n".join(lines)


def _profile_table(label: str, prof: dict[str, Any]) -> str:
    """Top functions, own and cumulative, side by side, as shares of GIL samples."""
    lines = [
        f"py-spy --gil of {label}: {prof['samples']:,} samples holding the GIL ({prof['path']})",
        f"  {'own':>6}  {'function':64} {'cumul.':>6}  function",
    ]
    for (o_name, o_share), (c_name, c_share) in zip(prof["own"], prof["cumulative"], strict=False):
        lines.append(f"  {o_share:6.1%}  {o_name[:64]:64} {c_share:6.1%}  {c_name}")
    return "\n".join(lines)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--trades", type=int, default=20_000, help="per webhook run (a, c)")
    parser.add_argument(
        "--file-trades", type=int, default=100_000, help="per file or ledger run (b, d, e)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--pipelines", default=",".join(ORDER), help="which, in round order (default a,c,b,d,e)"
    )
    parser.add_argument("--warmup", type=int, default=500, help="trades of an uncounted c run")
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the service")
    parser.add_argument(
        "--batch-age",
        type=float,
        default=1.0,
        help="FILE_EXPORT_ and LEDGER_BATCH_MAX_AGE_SECONDS (b, d, e)",
    )
    parser.add_argument(
        "--input",
        choices=("lz4", "none"),
        default="lz4",
        help="compression of the published 1 MB batches: lz4 (as a platform publishes, the "
        "default) or none",
    )
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="another checkout (e.g. `git archive` of an older commit): pipelines C and D "
        "run its service as c and d run this one's, for before/after ratios in one run",
    )
    parser.add_argument("--sink-dir", default=tempfile.gettempdir(), help="where b, d, e write")
    parser.add_argument("--timeout", type=float, default=600, help="deadline of one run, s")
    parser.add_argument("--json", metavar="PATH", help="write the full results there")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="sample the service runs (c, d) with py-spy --gil from their first output on, "
        "raw stacks into DIR; their figures are then not comparable",
    )
    parser.add_argument(
        "--quick", action="store_true", help="2,000 trades each, 1 round, 200-trade warm-up"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.trades = args.file_trades = 2_000
        args.rounds, args.warmup = 1, 200
    if args.baseline:
        root = Path(args.baseline).resolve()
        for key, base in (("C", "c"), ("D", "d")):
            p = PIPELINES[base]
            PIPELINES[key] = Pipeline(key, f"baseline {p.sink}", p.sink, p.command, root)
    args.pipelines = [k.strip() for k in args.pipelines.split(",") if k.strip()]
    if not set(args.pipelines) <= set(PIPELINES) or not args.pipelines:
        parser.error(f"--pipelines: a comma list of {', '.join(ORDER)}")
    if min(args.trades, args.file_trades, args.rounds) < 1:
        parser.error("--trades, --file-trades and --rounds must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    before = _machine()
    rounds: list[dict[str, dict[str, Any]]] = []
    print(f"{'':24}" + "".join(f"{h:>10}" for h, _, _ in COLUMNS), flush=True)
    with broker() as bootstrap, counting_tracker() as tracker:
        if args.warmup:
            run_once(bootstrap, tracker, PIPELINES["c"], args.warmup, args)
        for _ in range(args.rounds):
            rnd: dict[str, dict[str, Any]] = {}
            for key in args.pipelines:
                p = PIPELINES[key]
                n = args.trades if p.sink == "webhook" else args.file_trades
                rnd[key] = run_once(bootstrap, tracker, p, n, args)
                print(_row(f"r{len(rounds) + 1} {key} {p.label}", rnd[key]), flush=True)
            rounds.append(rnd)
    result = {
        "parameters": {k: v for k, v in vars(args).items() if k != "json"},
        "machine_before": before,
        "machine_after": _machine(),
        "rounds": rounds,
        "median": {k: _median([r[k] for r in rounds]) for k in args.pipelines},
        "ratios": _ratios(rounds),
    }
    print(_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"results written to {args.json}")
        png = Path(args.json).with_suffix(".png")
        try:
            plot(result, png)
        except ImportError:
            print("no plot: matplotlib is missing (pip install '.[bench]')")
        else:
            print(f"plot written to {png}")


if __name__ == "__main__":
    main()
