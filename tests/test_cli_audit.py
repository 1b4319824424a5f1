"""The audit log end to end through `cchc`: export the demo ward's log, verify it with the
standalone verifier (a separate process that imports nothing of the server), then damage it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from app.cli import main


@pytest.fixture
def cli(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CCHC_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("CCHC_INSTANCE_DIR", str(tmp_path / "instance"))
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    assert run("init", "--demo").exit_code == 0
    return run


def _standalone_verify(directory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`python -m audit verify` in its own process (tests/test_layers.py proves that audit/
    imports nothing of the server)."""
    return subprocess.run(
        [sys.executable, "-m", "audit", "verify", str(directory), *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=directory.parent,
    )


@pytest.mark.db
def test_demo_log_exports_verifies_and_catches_an_edit(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "export"
    exported = cli("audit", "export", "-o", str(out), "--json")
    assert exported.exit_code == 0, exported.output
    summary = json.loads(exported.stdout)
    assert summary["size"] > 100

    ok = _standalone_verify(out)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"tree size: {summary['size']}" in ok.stdout
    assert summary["root"] in ok.stdout

    lines = (out / "entries.jsonl").read_bytes().split(b"\n")
    target = 37
    lines[target] = lines[target].replace(b'"task.assigned"', b'"task.assigneD"', 1)
    assert b"assigneD" in lines[target]
    (out / "entries.jsonl").write_bytes(b"\n".join(lines))
    bad = _standalone_verify(out)
    assert bad.returncode == 1
    assert f"seq {target}" in bad.stdout and "body_modified" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr


@pytest.mark.db
def test_receipt_for_one_entry_verifies_offline(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    receipt = tmp_path / "receipt.json"
    made = cli("audit", "prove", "5", "-o", str(receipt))
    assert made.exit_code == 0, made.output
    pub = tmp_path / "instance" / "keys" / "audit-signing.pub"
    checked = cli("audit", "verify-receipt", str(receipt), "--pubkey", str(pub))
    assert checked.exit_code == 0, checked.output
    assert "entry 5" in checked.stdout

    data = json.loads(receipt.read_text(encoding="utf-8"))
    data["entry"] = data["entry"].replace('"seq":5', '"seq":6')
    receipt.write_text(json.dumps(data), encoding="utf-8")
    forged = cli("audit", "verify-receipt", str(receipt), "--pubkey", str(pub))
    assert forged.exit_code == 1
    missing = cli("audit", "prove", "999999", "-o", str(tmp_path / "r2.json"))
    assert missing.exit_code == 1 and "no_such_entry" in missing.output


@pytest.mark.db
def test_verify_json_output(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "export"
    assert cli("audit", "export", "-o", str(out)).exit_code == 0
    result = cli("audit", "verify", str(out), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["problem"] is None and data["size"] > 100
    (out / "entries.jsonl").write_bytes((out / "entries.jsonl").read_bytes()[:-200])
    broken = cli("audit", "verify", str(out), "--json")
    assert broken.exit_code == 1
    assert json.loads(broken.stdout)["problem"]["kind"]
