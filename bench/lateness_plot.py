"""The lateness distribution of a `bench.scheduling` JSON file, as a PNG beside it.

One curve per run: the share of trades posted later than x after their due time
(a complementary CDF, log-log), so the median, the tail and the worst trade read off
the same figure; the 1 s target and each run's p50, p99 and max are marked.

    .venv/bin/python -m bench.lateness_plot results.json     # writes results.png

Needs matplotlib: `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def plot(results: dict[str, Any], png: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # an optional extra
        raise SystemExit("the plot needs matplotlib: pip install -e '.[bench]'") from exc
    p = results["parameters"]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    floor = 1e-4  # 0.1 ms: lateness is rounded to it, and a log axis needs a floor
    for i, run in enumerate(results["runs"]):
        late = sorted(max(floor, x) for x in run["lateness_s"])
        n = len(late)
        if not n:
            continue
        share = [1 - k / n for k in range(n)]  # share of trades at least this late
        label = (
            f"run {i + 1}: p50 {_s(run['lateness_p50_s'])}, p99 {_s(run['lateness_p99_s'])}, "
            f"max {_s(run['lateness_max_s'])}, early {run['early']}, "
            f"peak RSS {run['peak_rss_mib']:.0f} MiB"
        )
        ax.step(late, share, where="post", label=label)
    ax.axvline(1.0, color="red", linestyle="--", linewidth=1, label="1 s")
    ax.axhline(0.01, color="grey", linestyle=":", linewidth=1, label="1% of trades (p99)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("lateness: first post's arrival - due time (s)")
    ax.set_ylabel("share of trades at least this late")
    ax.set_title(
        f"{p['rate']:g} trades/s for {p['seconds']:g} s, closed_at ±{p['disorder']:g} s, "
        f"delay {p['delay_s']:g} s, budget {p['lookahead_mib']:g} MiB",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m bench.lateness_plot RESULTS.json")
    path = Path(args[0])
    png = path.with_suffix(".png")
    plot(json.loads(path.read_text()), png)
    print(f"plot written to {png}")


if __name__ == "__main__":
    main()
