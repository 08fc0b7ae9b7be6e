"""The layering the module table in docs/concepts.md states, read from the source: a module
imports only from its own layer or the layers below it (settings sits with core), and a
stage never imports another stage."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT

LAYERS = [
    "core",
    "pipeline",
    "state",
    "codec",
    "kafka",
    "adapters",
    "telemetry",
    "stages",
    "service",
    "ops",
    "cli",
]
PACKAGE = ROOT / "trace_stream"


def _layer(module: str) -> str:
    parts = module.split(".")
    layer = parts[1] if len(parts) > 1 else ""
    return "core" if layer == "settings" else layer  # the settings model sits with core


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.startswith("trace_stream.")}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def test_every_module_sits_in_a_layer() -> None:
    roots = {"trace_stream", "trace_stream.__main__"}
    strays = [m for m in _modules() if m not in roots and _layer(m) not in LAYERS]
    assert strays == []


def test_no_module_imports_a_layer_above_its_own() -> None:
    modules = _modules()
    wrong = []
    for module, path in modules.items():
        if _layer(module) not in LAYERS:
            continue
        mine = LAYERS.index(_layer(module))
        for imported in _imports(path):
            theirs = _layer(imported)
            if theirs in LAYERS and LAYERS.index(theirs) > mine:
                wrong.append(f"{module} imports {imported}")
    assert wrong == []


def _stage(module: str) -> str | None:
    """The stage a module belongs to: `stages.<stage>` is a module or a package."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "stages" else None


def test_no_stage_imports_another_stage() -> None:
    shared = {None, "stage"}  # the package itself and the Stage contract
    wrong = []
    for module, path in _modules().items():
        mine = _stage(module)
        for imported in _imports(path):
            theirs = _stage(imported)
            if mine not in shared and theirs not in shared and theirs != mine:
                wrong.append(f"{module} imports {imported}")
    assert wrong == []


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    """An import upward is found (the parser reads absolute imports of any form)."""
    probe = tmp_path / "x.py"
    probe.write_text("from trace_stream.stages import deliver\nimport trace_stream.kafka\n")
    assert _imports(probe) >= {"trace_stream.stages.deliver", "trace_stream.kafka"}
    assert _stage("trace_stream.stages.deliver.finish") == "deliver"
    assert _stage("trace_stream.stages.schedule") != _stage("trace_stream.stages.deliver")
