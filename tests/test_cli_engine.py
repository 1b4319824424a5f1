"""Issue 4's script: a task driven through its whole lifecycle from the command line with the
demo accounts; wrong actors refused with their codes; the exported log verifies and shows
exactly those steps."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import make_url

import audit.ledger as ledger_module
from app.cli import main
from workflow.db import make_engine

PDF = b"%PDF-1.4\n% minh chung\n%%EOF\n"


@pytest.fixture
def cli(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CCHC_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("CCHC_INSTANCE_DIR", str(tmp_path / "instance"))
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    assert run("init", "--demo").exit_code == 0
    return run


@pytest.mark.db
def test_full_lifecycle_from_the_cli(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (task,) = json.loads(cli("task", "list", "--number", "13", "--json").stdout)
    tid = str(task["id"])

    def fire(event: str, user: str, *extra: str) -> Result:
        return cli("task", "fire", tid, event, "--as", user, *extra)

    def refused(result: Result, code: str) -> None:
        assert result.exit_code == 1, result.output
        assert f"[{code}]" in result.output

    refused(fire("start", "kthtdt.canbo"), "not_permitted")
    assert fire("start", "vp.canbo").stdout.strip() == "in_progress"
    refused(fire("submit", "vp.truong"), "evidence_missing")

    detail = json.loads(cli("task", "show", tid, "--json", "--as", "vp.canbo").stdout)
    evidence = tmp_path / "bao-cao.pdf"
    evidence.write_bytes(PDF)
    for product in detail["products"]:
        added = cli("evidence", "add", tid, str(evidence), "--product", product, "--as", "vp.canbo")
        assert added.exit_code == 0, added.output

    refused(fire("submit", "vp.canbo"), "not_permitted")
    assert fire("submit", "vp.truong").stdout.strip() == "evidence_submitted"
    refused(
        fire("review", "vp.truong", "--findings", "x", "--recommendation", "accept"),
        "not_permitted",
    )
    refused(fire("review", "vhxh.thamdinh1"), "findings_required")
    assert (
        fire(
            "review",
            "vhxh.thamdinh1",
            "--findings",
            "Thiếu số liệu quý",
            "--recommendation",
            "return",
        ).stdout.strip()
        == "reviewed"
    )
    refused(fire("accept", "vhxh.thamdinh1", "--assessment", "x"), "not_permitted")
    refused(fire("return_for_rework", "vhxh.truong"), "reason_required")
    assert (
        fire("return_for_rework", "vhxh.truong", "--reason", "Bổ sung số liệu quý").stdout.strip()
        == "returned"
    )
    assert fire("rework", "vp.canbo").stdout.strip() == "in_progress"
    assert fire("submit", "vp.truong").stdout.strip() == "evidence_submitted"
    assert (
        fire(
            "review", "vhxh.thamdinh2", "--findings", "Đạt yêu cầu", "--recommendation", "accept"
        ).stdout.strip()
        == "reviewed"
    )
    refused(fire("accept", "vhxh.truong", "--assessment", "Tốt", "--version", "1"), "stale_version")
    assert fire("accept", "vhxh.truong", "--assessment", "Hoàn thành tốt").stdout.strip() == (
        "accepted"
    )
    refused(fire("cancel", "lanhdao", "--reason", "x"), "invalid_transition")

    shown = json.loads(cli("task", "show", tid, "--json").stdout)
    steps = [h["action"] for h in shown["history"]]
    assert steps == ["task.assigned", "task.start"] + ["evidence.added"] * len(
        detail["products"]
    ) + [
        "task.submit",
        "task.review",
        "task.return_for_rework",
        "task.rework",
        "task.submit",
        "task.review",
        "task.accept",
    ]

    out = tmp_path / "export"
    assert cli("audit", "export", "-o", str(out)).exit_code == 0
    verified = subprocess.run(
        [sys.executable, "-m", "audit", "verify", str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    lines = (out / "entries.jsonl").read_text(encoding="utf-8").splitlines()
    mine = [json.loads(line) for line in lines]
    mine = [e for e in mine if e["object"] == {"type": "task_instance", "id": tid}]
    assert [e["action"] for e in mine] == steps
    assert [e["actor"]["user"] for e in mine if e["action"].startswith("task.")][1:] == [
        "vp.canbo",
        "vp.truong",
        "vhxh.thamdinh1",
        "vhxh.truong",
        "vp.canbo",
        "vp.truong",
        "vhxh.thamdinh2",
        "vhxh.truong",
    ]


@pytest.mark.db
def test_plan_amendment_from_the_cli(cli) -> None:  # type: ignore[no-untyped-def]
    refused = cli(
        "plan",
        "amend",
        "propose",
        "--as",
        "vp.truong",
        "--kind",
        "change_task",
        "--task",
        "45",
        "--set",
        "timeframe=Tháng 12/2026",
        "--reason",
        "Lùi lịch",
    )
    assert refused.exit_code == 1 and "[not_permitted]" in refused.output
    made = cli(
        "plan",
        "amend",
        "propose",
        "--as",
        "vhxh.truong",
        "--kind",
        "change_task",
        "--task",
        "45",
        "--set",
        "timeframe=Tháng 12/2026",
        "--reason",
        "Lùi lịch",
        "--json",
    )
    assert made.exit_code == 0, made.output
    amendment = json.loads(made.stdout)
    self_decided = cli(
        "plan", "amend", "decide", str(amendment["id"]), "--as", "vhxh.truong", "--approve"
    )
    assert self_decided.exit_code == 1
    decided = cli(
        "plan", "amend", "decide", str(amendment["id"]), "--as", "lanhdao", "--approve", "--json"
    )
    assert decided.exit_code == 0, decided.output
    assert json.loads(decided.stdout)["state"] == "approved"
    (task,) = json.loads(cli("task", "list", "--number", "45", "--json").stdout)
    assert task["due"] == "2026-12-31"
    listed = json.loads(cli("plan", "amend", "list", "--json").stdout)
    assert [a["state"] for a in listed] == ["approved"]


@pytest.mark.db
def test_tick_alerts_once_and_notifications_are_delivered(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = cli("tick", "--today", "20/01/2026", "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    (task1,) = json.loads(cli("task", "list", "--number", "1", "--json").stdout)
    assert task1["id"] in report["overdue"]  # due 14/01/2026
    again = json.loads(cli("tick", "--today", "20/01/2026", "--json").stdout)
    assert again["overdue"] == [] and again["due_soon"] == []

    outbox = tmp_path / "mail"
    delivered = cli("notify", "deliver", "--to-dir", str(outbox))
    assert delivered.exit_code == 0, delivered.output
    files = list(outbox.glob("*.eml"))
    assert files and "Đã gửi" in delivered.stdout
    assert cli("notify", "deliver", "--to-dir", str(outbox)).stdout.startswith("Đã gửi 0 ")


@pytest.mark.db
def test_token_create_prints_once_and_works(cli, fresh_db_url: str) -> None:  # type: ignore[no-untyped-def]
    from app import create_app
    from app.database import database_of

    made = cli("token", "create", "vp.canbo", "--name", "script")
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    app = create_app({"TESTING": True})
    try:
        client = app.test_client()
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.get_json()["username"] == "vp.canbo"
        bad = client.get("/api/v1/me", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401 and "error" in bad.get_json()
    finally:
        database_of(app).engine.dispose()


def test_an_unreachable_database_is_an_error_with_its_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a traceback: the code, a Vietnamese message, the driver's one-line reason, exit 1."""
    monkeypatch.setenv("CCHC_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    monkeypatch.setenv("CCHC_INSTANCE_DIR", str(tmp_path / "instance"))
    result = CliRunner().invoke(main, ["task", "list", "--json"], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    first, detail = result.stderr.splitlines()[:2]
    assert first.startswith("Lỗi [database_error]: Lỗi cơ sở dữ liệu: thao tác có thể chưa được")
    assert detail.startswith("(OperationalError: ") and "Connection refused" in detail


def _known_heads(url: str) -> list[tuple[tuple[str, str], ledger_module._Head]]:
    """The log heads this process remembers for the database at `url` (keyed by engine URL
    and origin)."""
    database = make_url(url).database
    return [
        (key, head)
        for key, head in ledger_module._KNOWN_HEADS.items()
        if make_url(key[0]).database == database
    ]


@pytest.mark.db
def test_an_append_refused_at_the_commit_is_an_error_and_nothing_changes(
    cli, fresh_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL the audit entry goes with the COMMIT; when the database refuses it (here
    the log this process remembers is not there), the command reports database_error and
    neither the state nor an entry is saved."""
    if not fresh_db_url.startswith("postgresql"):
        pytest.skip("on SQLite the entry is written before the COMMIT")
    (task,) = json.loads(cli("task", "list", "--number", "13", "--json").stdout)
    tid = str(task["id"])
    shown = json.loads(cli("task", "show", tid, "--json", "--as", "vp.canbo").stdout)
    before = len(shown["history"])
    [(key, head)] = _known_heads(fresh_db_url)
    monkeypatch.setitem(ledger_module._KNOWN_HEADS, key, dataclasses.replace(head, id=head.id + 99))
    result = cli("task", "fire", tid, "start", "--as", "vp.canbo")
    assert result.exit_code == 1, result.output
    first, detail = result.stderr.splitlines()[:2]
    assert first.startswith("Lỗi [database_error]: ")
    assert detail.startswith("(AppendFailedError: ") and "nothing was committed" in detail
    shown = json.loads(cli("task", "show", tid, "--json", "--as", "vp.canbo").stdout)
    assert shown["state"] == "assigned" and len(shown["history"]) == before
    # The remembered head was forgotten: the next try goes through.
    assert cli("task", "fire", tid, "start", "--as", "vp.canbo").stdout.strip() == "in_progress"


@pytest.mark.db
def test_a_driver_error_in_the_ledger_is_an_error_and_nothing_changes(
    cli, fresh_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The ledger writes through the driver's own cursor: its errors (here the entries' table
    is not there) are reported with the code too, and the transition is not saved."""
    for key, _head in _known_heads(fresh_db_url):
        monkeypatch.delitem(ledger_module._KNOWN_HEADS, key)  # as in a new process
    (task,) = json.loads(cli("task", "list", "--number", "13", "--json").stdout)
    tid = str(task["id"])
    db = make_engine(fresh_db_url)
    try:
        with db.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE audit_entry RENAME TO audit_entry_away")
        try:
            result = cli("task", "fire", tid, "start", "--as", "vp.canbo")
        finally:
            with db.begin() as conn:
                conn.exec_driver_sql("ALTER TABLE audit_entry_away RENAME TO audit_entry")
    finally:
        db.dispose()
    assert result.exit_code == 1, result.output
    first, detail = result.stderr.splitlines()[:2]
    assert first.startswith("Lỗi [database_error]: ") and "audit_entry" in detail
    shown = json.loads(cli("task", "show", tid, "--json", "--as", "vp.canbo").stdout)
    assert shown["state"] == "assigned"
    assert cli("task", "fire", tid, "start", "--as", "vp.canbo").stdout.strip() == "in_progress"


@pytest.mark.db
def test_an_entry_stored_otherwise_than_prepared_is_an_integrity_alarm(
    cli, fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL an append built on a head another writer has moved is built again by the
    database. If that entry does not match the one prepared (here its bytes after the link
    are made to differ as it comes back), the transaction has already committed: the command
    says so with its own code (do not fire again, verify the log), not with a traceback."""
    if not fresh_db_url.startswith("postgresql"):
        pytest.skip("on SQLite the entry is written by this process, never built again")
    tasks = {t["number"]: str(t["id"]) for t in json.loads(cli("task", "list", "--json").stdout)}
    [(key, stale)] = _known_heads(fresh_db_url)
    assert cli("task", "fire", tasks[13], "start", "--as", "vp.canbo").exit_code == 0
    shown = json.loads(cli("task", "show", tasks[14], "--json", "--as", "vp.canbo").stdout)
    before = len(shown["history"])
    monkeypatch.setitem(ledger_module._KNOWN_HEADS, key, stale)  # as if another writer moved it

    real = ledger_module._around_link
    calls: list[bytes] = []

    def altered_on_return(body: bytes) -> tuple[bytes, bytes]:
        calls.append(body)
        pre, post = real(body)
        return (pre, post) if len(calls) == 1 else (pre, post + b" ")

    monkeypatch.setattr(ledger_module, "_around_link", altered_on_return)
    result = cli("task", "fire", tasks[14], "start", "--as", "vp.canbo")
    monkeypatch.setattr(ledger_module, "_around_link", real)
    assert len(calls) == 2, "the entry was not built again by the database"
    assert result.exit_code == 1, result.output
    first, detail = result.stderr.splitlines()[:2]
    assert first.startswith("Lỗi [audit_mismatch]: Cảnh báo về tính toàn vẹn của nhật ký")
    assert "ĐÃ được lưu" in first and "Đừng thực hiện lại" in first
    assert detail.startswith("(CommittedMismatchError: ") and "committed with it" in detail
    assert _known_heads(fresh_db_url) == []  # forgotten: the next append reads it under lock
    shown = json.loads(cli("task", "show", tasks[14], "--json", "--as", "vp.canbo").stdout)
    assert shown["state"] == "in_progress"
    assert [h["action"] for h in shown["history"][before:]] == ["task.start"]
    # What the message asks for: the log, with the database's entry, exports and verifies.
    exported = cli("audit", "export", "-o", str(tmp_path / "export"))
    assert exported.exit_code == 0, exported.output
    verified = cli("audit", "verify", str(tmp_path / "export"))
    assert verified.exit_code == 0 and "HỢP LỆ" in verified.output, verified.output
    again = cli("task", "fire", tasks[16], "start", "--as", "vp.canbo")
    assert again.stdout.strip() == "in_progress", again.output
