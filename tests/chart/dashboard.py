"""The chart's Grafana dashboard as the tests read it: its panels' queries, with the
template variables a Grafana would fill in."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[2] / "charts/trace-stream/dashboards/trace-stream.json"
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True)
class Query:
    panel: str
    expr: str
    legend: str

    @property
    def labels(self) -> set[str]:
        """Labels the legend names: every series the query returns must carry them."""
        return set(LEGEND_LABEL.findall(self.legend))

    def filled(self, variables: dict[str, str]) -> str:
        """The expression with `$name` and `${name}` replaced, longest names first."""
        expr = self.expr
        for name in sorted(variables, key=len, reverse=True):
            expr = expr.replace(f"${{{name}}}", variables[name]).replace(
                f"${name}", variables[name]
            )
        assert "$" not in expr, f"{self.panel}: a variable left unfilled in {expr}"
        return expr


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def queries(dashboard: dict[str, Any]) -> list[Query]:
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append(Query(panel["title"], target["expr"], target.get("legendFormat", "")))
    return out
