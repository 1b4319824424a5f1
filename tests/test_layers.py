"""The direction of imports (ARCHITECTURE.md): audit/ imports nothing of ours, workflow/ never
imports Flask or app/, definitions/ imports nothing of ours but itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"app", "audit", "definitions", "workflow", "migrations"}

ALLOWED = {
    "audit": {"audit"},
    "definitions": {"definitions"},
    "workflow": {"workflow", "definitions", "audit"},
}
FORBIDDEN_THIRD_PARTY = {"workflow": {"flask", "flask_login", "flask_wtf", "werkzeug"}}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_layer_imports(package: str) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        imported = _imports(path)
        ours = (imported & OURS) - ALLOWED[package]
        banned = imported & FORBIDDEN_THIRD_PARTY.get(package, set())
        if ours or banned:
            offenders.append(f"{path.relative_to(ROOT)}: {sorted(ours | banned)}")
    assert offenders == []


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from workflow.models import Unit\nimport flask\n", encoding="utf-8")
    assert {"workflow", "flask"} <= _imports(bad)


WALL_CLOCK = ("datetime.now", "datetime.utcnow", "datetime.today", "date.today", "time.time")


def _wall_clock_calls(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = f"{owner.id}.{node.func.attr}" if isinstance(owner, ast.Name) else ""
            if name in WALL_CLOCK:
                found.append(f"{path.relative_to(root)}:{node.lineno} {name}()")
    return found


@pytest.mark.parametrize("package", ["workflow", "definitions", "audit"])
def test_the_domain_never_reads_the_wall_clock(package: str) -> None:
    """Invariant 6: "now" and "today" are parameters, so results are reproducible."""
    calls = [c for p in sorted((ROOT / package).rglob("*.py")) for c in _wall_clock_calls(p)]
    assert calls == []


def test_the_clock_check_sees_a_call(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from datetime import date\nx = date.today()\n", encoding="utf-8")
    assert _wall_clock_calls(bad, tmp_path) == ["bad.py:2 date.today()"]
