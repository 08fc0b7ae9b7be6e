"""The manual (docs/, README.md) holds to the code: the generated references are
current, every test it cites exists, and the contract's examples fit the schemas."""

from __future__ import annotations

import json
import re

import fastavro
import pytest
from fastavro.validation import validate

from devenv import docs
from tests.support import ROOT
from trace_stream import codec
from trace_stream.pipeline.redact import redact

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
CITED = re.compile(r"\btests/[\w/]*\w(?:\.py)?(?:::\w+)?")
EXAMPLE = re.compile(r"<!-- schema: (\w+) -->\n```json\n(.*?)```", re.DOTALL)
TRACE = re.compile(r"<!-- trace of the example above -->\n```json\n(.*?)```", re.DOTALL)
CONTRACT = ROOT / "docs" / "contract.md"


def test_generated_references_are_current() -> None:
    stale = docs.stale()
    assert not stale, f"{', '.join(stale)} differ from the code: run `{docs.COMMAND}`"


def test_every_setting_has_a_description() -> None:
    missing = docs.undescribed()
    assert not missing, f"give these fields a Field(description=...): {', '.join(missing)}"


def _citations() -> set[tuple[str, str]]:
    return {
        (page.relative_to(ROOT).as_posix(), cited)
        for page in PAGES
        for cited in CITED.findall(page.read_text())
    }


def test_the_pages_cite_tests() -> None:
    assert any(cited.count("::") for _, cited in _citations())  # the pattern still matches


@pytest.mark.parametrize(("page", "cited"), sorted(_citations()))
def test_every_cited_test_exists(page: str, cited: str) -> None:
    path, _, name = cited.partition("::")
    target = ROOT / path
    assert target.exists(), f"{page} cites {path}, which does not exist"
    if name:
        source = target.read_text()
        assert re.search(rf"^(async )?def {name}\(", source, re.MULTILINE), (
            f"{page} cites {cited}: no test of that name in {path}"
        )


def _examples() -> list[tuple[str, str]]:
    return EXAMPLE.findall(CONTRACT.read_text())


def test_the_contract_shows_both_platform_schemas() -> None:
    assert {name for name, _ in _examples()} == {"trade_closed", "signal_tracing"}


@pytest.mark.parametrize(("name", "text"), _examples(), ids=lambda v: str(v)[:20])
def test_contract_examples_fit_their_schema(name: str, text: str) -> None:
    schema = fastavro.parse_schema(json.loads((codec.schema_dir() / f"{name}.avsc").read_text()))
    assert validate(json.loads(text), schema, raise_errors=True)


@pytest.mark.parametrize("name", ["trade_closed", "signal_tracing"])
def test_the_contract_names_every_field(name: str) -> None:
    fields = json.loads((codec.schema_dir() / f"{name}.avsc").read_text())["fields"]
    page = CONTRACT.read_text()
    missing = [f["name"] for f in fields if f"`{f['name']}`" not in page]
    assert not missing, f"docs/contract.md does not describe {name}'s {missing}"


def test_the_trace_shown_is_what_redaction_makes() -> None:
    page = CONTRACT.read_text()
    event = next(text for name, text in _examples() if name == "trade_closed")
    [shown] = TRACE.findall(page)
    decoded = codec.decode("trade_closed", codec.encode("trade_closed", json.loads(event)))
    assert json.loads(shown) == redact(decoded).model_dump(mode="json")


def test_mkdocs_nav_lists_only_pages_that_exist() -> None:
    nav = re.findall(r":\s+([\w/.-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.MULTILINE)
    assert nav
    assert [page for page in nav if not (ROOT / "docs" / page).exists()] == []


def test_the_readme_is_a_front_door() -> None:
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines < 250, "README.md is the front door: put the detail in docs/"


def test_the_readme_links_resolve() -> None:
    # mkdocs checks the links inside docs/; the README is read on GitHub, so here.
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", (ROOT / "README.md").read_text())
    assert links
    assert [link for link in links if not (ROOT / link).exists()] == []
