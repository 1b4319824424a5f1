"""Export and standalone verification: the round trip, the tamper matrix, malformed input."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from audit import merkle
from audit.__main__ import cli
from audit.canonical import canonical_bytes
from audit.checkpoint import sign_checkpoint
from audit.export import CHECKPOINTS_DIR, ENTRIES_FILE, KEY_FILE, checkpoint_filename, export_log
from audit.ledger import CheckpointPolicy, Ledger
from audit.verify import verify_export
from workflow.db import make_engine
from workflow.migrate import upgrade

ORIGIN = "test.example/tamper"
N = 10
POSITIONS = [0, 1, N // 2, N - 2, N - 1]  # first, second, middle, second-to-last, last


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, keys: Any) -> Path:
    """An export of N entries with a signed checkpoint after every entry."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'audit.sqlite'}"
    upgrade(url)  # the schema as the migrations make it (SQLite's entry key: 0013)
    engine = make_engine(url)
    ledger = Ledger(
        ORIGIN, signer=keys.signer, policy=CheckpointPolicy(every_entries=1, interval=None)
    )
    from datetime import UTC, datetime, timedelta

    out = tmp_path_factory.mktemp("export") / "log"
    with Session(engine) as session, session.begin():
        for i in range(N):
            ledger.append(
                session,
                ts=datetime(2026, 4, 1, tzinfo=UTC) + timedelta(hours=i),
                actor={"user": "hoa", "unit": "VP", "role": "member"},
                action="task.submitted",
                object={"type": "task", "id": str(i)},
                details={"reason": "Nộp báo cáo quý"},
            )
        export_log(session, ORIGIN, out, keys.verifier_text)
    engine.dispose()
    return out


@pytest.fixture
def copy(pristine: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(pristine, target)
    return target


def read_lines(d: Path) -> list[bytes]:
    return (d / ENTRIES_FILE).read_bytes().splitlines(keepends=True)


def write_lines(d: Path, lines: list[bytes]) -> None:
    (d / ENTRIES_FILE).write_bytes(b"".join(lines))


def keep_checkpoints(d: Path, sizes: set[int]) -> None:
    for path in (d / CHECKPOINTS_DIR).iterdir():
        if int(path.stem) not in sizes:
            path.unlink()


def change_byte(d: Path, p: int) -> tuple[str, int]:
    lines = read_lines(d)
    i = lines[p].index(b'"action":"task.') + len(b'"action":"task.')
    lines[p] = lines[p][:i] + b"S" + lines[p][i + 1 :]  # submitted -> Submitted
    write_lines(d, lines)
    return "body_modified", p


def delete(d: Path, p: int) -> tuple[str, int]:
    lines = read_lines(d)
    del lines[p]
    write_lines(d, lines)
    # Deleting the last entry is the same edit as truncating the log by one.
    return ("log_truncated" if p == N - 1 else "entry_missing"), p


def duplicate(d: Path, p: int) -> tuple[str, int]:
    lines = read_lines(d)
    lines.insert(p + 1, lines[p])
    write_lines(d, lines)
    return "entry_inserted", p + 1


def swap(d: Path, p: int) -> tuple[str, int]:
    q = min(p, N - 2)  # the last entry swaps with the one before it
    lines = read_lines(d)
    lines[q], lines[q + 1] = lines[q + 1], lines[q]
    write_lines(d, lines)
    return "entries_reordered", q


def truncate(d: Path, p: int) -> tuple[str, int]:
    write_lines(d, read_lines(d)[:p])
    return "log_truncated", p


def rewrite_consistently(d: Path, p: int) -> tuple[str, int]:
    """Change entry p and re-link every later one: only a signed checkpoint can tell.
    Keep the checkpoints at p (the untouched prefix) and at N."""
    lines = read_lines(d)
    prev_leaf = merkle.leaf_hash(lines[p - 1][:-1]).hex() if p else "0" * 64
    for k in range(p, N):
        body = json.loads(lines[k])
        if k == p:
            body["action"] = "task.accepted"
        body["prev"] = prev_leaf
        raw = canonical_bytes(body)
        prev_leaf = merkle.leaf_hash(raw).hex()
        lines[k] = raw + b"\n"
    write_lines(d, lines)
    keep_checkpoints(d, {p, N})
    # Rewriting only the last entry is a one-entry change the last two checkpoints pin down.
    return ("body_modified" if p == N - 1 else "checkpoint_root_mismatch"), p


def forge_checkpoint_line(d: Path, p: int) -> tuple[str, int]:
    """Replace the root line of the checkpoint that first covers entry p."""
    path = d / CHECKPOINTS_DIR / checkpoint_filename(p + 1)
    lines = path.read_text().split("\n")
    lines[2] = base64.b64encode(merkle.leaf_hash(b"forged")).decode()
    path.write_text("\n".join(lines))
    return "checkpoint_signature_invalid", p


TAMPERS: list[Callable[[Path, int], tuple[str, int]]] = [
    change_byte,
    delete,
    duplicate,
    swap,
    truncate,
    rewrite_consistently,
    forge_checkpoint_line,
]


def test_pristine_export_verifies(pristine: Path, keys: Any) -> None:
    report = verify_export(pristine, keys.verifier_text)
    assert report.ok and report.problem is None
    assert report.size == N and report.covered == N and report.checkpoints == N
    assert report.origin == ORIGIN
    leaves = [merkle.leaf_hash(line[:-1]) for line in read_lines(pristine)]
    assert report.root == merkle.root_from_leaves(leaves)
    # Each line is a stored body, verbatim and canonical.
    assert all(canonical_bytes(json.loads(line)) + b"\n" == line for line in read_lines(pristine))


@pytest.mark.parametrize("p", POSITIONS)
@pytest.mark.parametrize("tamper", TAMPERS, ids=lambda f: f.__name__)
def test_tamper_matrix(copy: Path, keys: Any, tamper: Any, p: int) -> None:
    kind, seq = tamper(copy, p)
    report = verify_export(copy, keys.verifier_text)
    assert not report.ok
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == (kind, seq), report.problem.message


@pytest.mark.parametrize("p", POSITIONS)
def test_checkpoint_conflict(copy: Path, keys: Any, p: int) -> None:
    other = sign_checkpoint(keys.signer, ORIGIN, p + 1, merkle.leaf_hash(b"fork"))
    (copy / CHECKPOINTS_DIR / f"{p + 1:012d}-fork.txt").write_text(other.note)
    report = verify_export(copy, keys.verifier_text)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("checkpoint_conflict", p)


def test_body_change_in_the_link_field_names_that_entry(copy: Path, keys: Any) -> None:
    lines = read_lines(copy)
    i = lines[4].index(b'"prev":"') + 8
    lines[4] = lines[4][:i] + (b"0" if lines[4][i : i + 1] != b"0" else b"1") + lines[4][i + 1 :]
    write_lines(copy, lines)
    problem = verify_export(copy, keys.verifier_text).problem
    assert problem is not None and (problem.kind, problem.seq) == ("body_modified", 4)


def test_unsigned_tail_is_reported_but_verifies(copy: Path, keys: Any) -> None:
    keep_checkpoints(copy, {4})
    report = verify_export(copy, keys.verifier_text)
    assert report.ok and report.covered == 4
    assert any("not covered" in w for w in report.warnings)


def test_wrong_key_is_a_signature_failure(copy: Path, other_keys: Any) -> None:
    problem = verify_export(copy, other_keys.verifier_text).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == ("checkpoint_signature_invalid", 0)


@pytest.mark.parametrize(
    ("mangle", "seq"),
    [
        (lambda d: write_lines(d, [*read_lines(d)[:3], b"garbage\n", *read_lines(d)[4:]]), 3),
        (lambda d: write_lines(d, [*read_lines(d)[:-1], read_lines(d)[-1][:40]]), N - 1),
        (lambda d: write_lines(d, [*read_lines(d)[:2], b"\n", *read_lines(d)[2:]]), 2),
        (lambda d: write_lines(d, [b"\xff\xfe\x00{\n", *read_lines(d)]), 0),
        (lambda d: (d / ENTRIES_FILE).unlink(), None),
        (lambda d: (d / KEY_FILE).write_text("not a key"), None),
        (lambda d: (d / KEY_FILE).unlink(), None),
        (lambda d: (d / CHECKPOINTS_DIR / checkpoint_filename(3)).write_text("junk"), None),
        (
            lambda d: (d / CHECKPOINTS_DIR / checkpoint_filename(3)).write_bytes(
                (d / CHECKPOINTS_DIR / checkpoint_filename(3)).read_bytes()[:-20] + b"!!!\n"
            ),
            None,
        ),
    ],
)
def test_malformed_exports_fail_closed(copy: Path, mangle: Any, seq: int | None) -> None:
    mangle(copy)
    report = verify_export(copy)  # the export's own key, if it has one
    assert not report.ok and report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("malformed", seq), report.problem


# --- the command line -----------------------------------------------------------------------------


def _key_file(tmp_path: Path, keys: Any) -> Path:
    path = tmp_path / "trusted.vkey"
    path.write_text(keys.verifier_text + "\n")
    return path


def test_cli_success(pristine: Path, keys: Any, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["verify", str(pristine), "--pubkey", str(_key_file(tmp_path, keys))]
    )
    assert result.exit_code == 0, result.output
    assert f"tree size: {N}" in result.output and "root: " in result.output
    assert "HỢP LỆ" in result.output


@pytest.mark.parametrize(
    "tamper", [change_byte, delete, forge_checkpoint_line], ids=lambda f: f.__name__
)
def test_cli_damage(copy: Path, keys: Any, tmp_path: Path, tamper: Any) -> None:
    kind, seq = tamper(copy, 3)
    result = CliRunner().invoke(
        cli, ["verify", str(copy), "--pubkey", str(_key_file(tmp_path, keys))]
    )
    assert result.exit_code == 1
    assert f"FAIL: seq {seq}: {kind}" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        lambda d, t: ["verify", str(t / "nowhere")],
        lambda d, t: ["verify", str(d), "--pubkey", str(t / "missing.vkey")],
        lambda d, t: ["verify", str(d / ENTRIES_FILE)],
    ],
)
def test_cli_bad_input_never_shows_a_traceback(copy: Path, tmp_path: Path, args: Any) -> None:
    result = CliRunner().invoke(cli, args(copy, tmp_path))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_standalone_module_round_trip(pristine: Path, keys: Any, tmp_path: Path) -> None:
    """`python -m audit verify` in a fresh interpreter, importing nothing of workflow/ or app/."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    code = (
        "import sys, runpy; sys.argv = ['audit', 'verify', sys.argv[1], '--pubkey', sys.argv[2]]\n"
        "try:\n    runpy.run_module('audit', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    bad = [m for m in sys.modules if m.split('.')[0] in ('workflow', 'app')]\n"
        "    assert not bad, bad\n    raise\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(pristine), str(_key_file(tmp_path, keys))],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"tree size: {N}" in done.stdout
