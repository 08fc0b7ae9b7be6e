"""The per-record steps (`pipeline/`), the loops' bookkeeping (`state/`) and the shared
types (`core/`) are pure: importing them loads no Kafka, Avro, HTTP, S3 or metrics
library. Each is imported in a fresh interpreter where those libraries raise
ImportError, so an import added anywhere down the chain fails here."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import ROOT

PURE = ("core", "pipeline", "state")
BLOCKED = ("confluent_kafka", "aiohttp", "httpx", "fastavro", "boto3", "prometheus_client")

_BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is blocked: this module must be pure")
        return None
sys.meta_path.insert(0, Block())
import importlib
importlib.import_module({module!r})
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not loaded, loaded
"""


def _modules() -> list[str]:
    found = []
    for package in PURE:
        for path in sorted((ROOT / "trace_stream" / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def test_every_pure_package_has_modules() -> None:
    modules = _modules()
    for package in PURE:
        assert sum(m.startswith(f"trace_stream.{package}.") for m in modules) >= 3, package


@pytest.mark.parametrize("module", _modules())
def test_imports_no_io_library(module: str) -> None:
    code = _BLOCKER.format(blocked=BLOCKED, module=module)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1]


def test_the_blocker_blocks() -> None:
    """The check itself can fail: a module that imports a blocked library is refused."""
    code = _BLOCKER.format(blocked=BLOCKED, module="trace_stream.kafka.common")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "confluent_kafka is blocked" in done.stderr
