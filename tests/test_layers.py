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
