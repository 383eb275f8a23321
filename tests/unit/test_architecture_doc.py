"""docs/architecture.md, the map for newcomers: every entry point it names exists, every folder it
names is there, and its diagram of topics and roles is the one the code has."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest

from streams.flows import flows_mermaid

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "architecture.md"


def capability_rows() -> list[tuple[str, str, str]]:
    """(capability, folder, entry point) cells of the "Where each capability lives" table."""
    section = DOC.read_text().split("## Where each capability lives", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]  # past the header and its rule
    return [tuple(cell.strip() for cell in row.strip("|").split("|")) for row in rows]  # type: ignore[misc]


def console_commands() -> dict[str, str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def entry_points() -> list[str]:
    return [name for _, _, cell in capability_rows() for name in re.findall(r"`([^`]+)`", cell)]


def resolve(entry: str) -> object:
    """The object `module:attr` names, or a console command's target."""
    target = console_commands().get(entry, entry)
    if ":" not in target:
        raise AssertionError(f"{entry!r} is neither `module:attr` nor a console command in pyproject.toml")
    module, _, attr = target.partition(":")
    obj: object = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def test_the_table_has_rows_with_three_cells() -> None:
    rows = capability_rows()
    assert len(rows) >= 20 and all(len(row) == 3 for row in rows)


@pytest.mark.parametrize("entry", entry_points())
def test_every_entry_point_imports(entry: str) -> None:
    assert resolve(entry) is not None


def test_every_folder_exists() -> None:
    folders = [re.findall(r"`([^`]+)`", folder) for _, folder, _ in capability_rows()]
    missing = [f for names in folders for f in names if not (REPO / f).is_dir()]
    assert missing == []


def test_the_diagram_is_the_code_s() -> None:
    assert flows_mermaid() in DOC.read_text()  # regenerate: python -c "from streams.flows import flows_mermaid; print(flows_mermaid())"
