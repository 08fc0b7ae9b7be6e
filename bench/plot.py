"""A PNG of a `throughput.py` result: trades/s and CPU s per 1,000 trades, per
pipeline and round, side by side (the webhook pair and the file pipelines differ by
an order of magnitude, so each panel has a log scale)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PANELS = (
    ("steady_tps", "trades/s (steady)", "{:,.0f}"),
    ("cpu_per_1000", "CPU s per 1,000 trades", "{:.3f}"),
)


def plot(result: dict[str, Any], path: Path) -> None:
    """Write the plot to `path`. Raises ImportError without matplotlib (the `bench` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    rounds: list[dict[str, dict[str, Any]]] = result["rounds"]
    params = result["parameters"]
    keys = [k for k in params["pipelines"] if any(k in r for r in rounds)]
    width = 0.8 / max(1, len(rounds))
    fig, axes = plt.subplots(1, len(PANELS), figsize=(max(12, 2.4 * len(keys)), 4.8))
    for ax, (figure, title, fmt) in zip(axes, PANELS, strict=True):
        for i, rnd in enumerate(rounds):
            xs = [k + (i - (len(rounds) - 1) / 2) * width for k in range(len(keys))]
            ys = [(rnd.get(key) or {}).get(figure) or 0 for key in keys]
            bars = ax.bar(xs, ys, width, label=f"round {i + 1}")
            ax.bar_label(bars, labels=[fmt.format(y) for y in ys], fontsize=7, rotation=90)
        ax.set_xticks(range(len(keys)), [f"{k}\n{rounds[0][k]['label']}" for k in keys])
        ax.tick_params(axis="x", labelsize=8)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,g}"))
        ax.margins(y=0.25)  # room for the labels above the tallest bars
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"bench/throughput.py, {result['machine_before']['at']}: webhook {params['trades']:,}, "
        f"file {params['file_trades']:,} trades, input {params.get('input', 'lz4')}, "
        f"LOG_LEVEL={params['log_level']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
