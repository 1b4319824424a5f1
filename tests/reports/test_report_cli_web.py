"""Issue 7's "done when": the Q1 2026 report and the annual report generate from the demo data
with work driven to accepted, open in LibreOffice, and their figures equal `cchc evaluate` at
the same date. Then the page: generate and download, and who is refused."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app import create_app
from app.cli import main
from app.database import database_of
from audit.ledger import Ledger
from workflow.bootstrap import DEMO_PASSWORD
from workflow.clock import FixedClock
from workflow.db import make_engine
from workflow.engine import Engine
from workflow.evidence import LocalEvidenceStore
from workflow.models import Organization
from workflow.trail import AuditTrail

from .conftest import (
    T0,
    Ward,
    docx_of,
    drive_known_work,
    need_tools,
    percent_text,
    table_rows,
    xlsx_of,
)


@pytest.fixture
def cli(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CCHC_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("CCHC_INSTANCE_DIR", str(tmp_path / "instance"))
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    assert run("init", "--demo").exit_code == 0
    return run


def _drive(url: str, store: Path) -> None:
    """Accept some demo work through the engine, committed (as people would on the pages)."""
    db = make_engine(url)
    try:
        with Session(db, expire_on_commit=False) as session:
            from sqlalchemy import select

            org = session.scalars(select(Organization)).one()
            clock = FixedClock(T0)
            trail = AuditTrail()
            ward = Ward(
                session,
                Engine(session, trail, clock, store=LocalEvidenceStore(store)),
                clock,
                org,
                LocalEvidenceStore(store),
            )
            drive_known_work(ward)
            session.commit()
    finally:
        db.dispose()


def _figures(f: dict[str, Any]) -> list[str]:
    return [
        str(f["led"]),
        str(f["accepted_on_time"]),
        str(f["accepted_late"]),
        str(f["open_on_time"]),
        str(f["open_overdue"]),
        percent_text(f["completion_rate"]),
        percent_text(f["on_time_rate"]),
    ]


@pytest.mark.db
@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "as_of"),
    [
        (("--kind", "quarter", "--quarter", "1", "--as-of", "14/03/2026"), "14/03/2026"),
        (("--kind", "year", "--as-of", "31/03/2026"), "31/03/2026"),
    ],
)
def test_done_when_reports_equal_cchc_evaluate(
    cli: Any, fresh_db_url: str, tmp_path: Path, args: tuple[str, ...], as_of: str
) -> None:
    _drive(fresh_db_url, tmp_path / "instance" / "evidence")
    evaluation = json.loads(
        cli("evaluate", "--year", "2026", "--as-of", as_of, "--instances", "--json").stdout
    )
    assert evaluation["overall"]["accepted_on_time"] + evaluation["overall"]["accepted_late"] == 3

    docx_path, xlsx_path = tmp_path / "bc.docx", tmp_path / "bc.xlsx"
    made = cli("report", *args, "--year", "2026", "--format", "docx", "-o", str(docx_path),
               "--as", "vhxh.truong", "--difficulties", "Đề nghị tập huấn.", "--json")  # fmt: skip
    assert made.exit_code == 0, made.output
    out = json.loads(made.stdout)
    assert out["sha256"] == hashlib.sha256(docx_path.read_bytes()).hexdigest()
    assert out["evaluation_audit"]["tree_size"] == evaluation["audit"]["tree_size"]
    assert out["evaluation_audit"]["root"] == evaluation["audit"]["root"]
    doc = docx_of(docx_path.read_bytes())
    tables = [table_rows(t) for t in doc.tables]
    sections = next(t for t in tables if t[0][0] == "Lĩnh vực")
    for row in sections[1:-1]:
        key = row[0].split(".")[0]
        assert row[1:] == _figures(evaluation["by_section"][key]), key
    assert sections[-1][1:] == _figures(evaluation["overall"])
    units = next(t for t in tables if t[0][0] == "Đơn vị")
    assert {r[0].split(" - ")[0]: r[1:] for r in units[1:]} == {
        k: _figures(f) for k, f in evaluation["by_unit"].items() if f["led"] > 0
    }

    assert cli("report", *args, "--year", "2026", "--format", "xlsx", "-o", str(xlsx_path),
               "--as", "lanhdao").exit_code == 0  # fmt: skip
    book = xlsx_of(xlsx_path.read_bytes())
    rows = list(book["Nhiệm vụ"].iter_rows(min_row=2, values_only=True))
    assert [(r[14], r[11], r[12], len(evaluation["instances"])) for r in rows] == [
        (i["id"], i["working_days_late"], i["returns"], len(rows)) for i in evaluation["instances"]
    ]
    by_unit = {
        r[0]: list(r[2:7]) for r in book["Theo đơn vị"].iter_rows(min_row=2, values_only=True)
    }
    for code, f in evaluation["by_unit"].items():
        if f["led"]:
            assert by_unit[code] == [
                f["led"],
                f["accepted_on_time"],
                f["accepted_late"],
                f["open_on_time"],
                f["open_overdue"],
            ]

    # Opens in LibreOffice: the .docx and the .xlsx convert to PDF.
    need_tools("soffice")
    for path in (docx_path, xlsx_path):
        subprocess.run(
            ["soffice", f"-env:UserInstallation={(tmp_path / 'lo').as_uri()}", "--headless",
             "--convert-to", "pdf", "--outdir", str(tmp_path / "pdf"), str(path)],
            check=True, capture_output=True, timeout=180,
        )  # fmt: skip
        assert (tmp_path / "pdf" / f"{path.stem}.pdf").read_bytes().startswith(b"%PDF")


@pytest.mark.db
def test_report_command_refusals(cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "x.docx"
    refused = cli("report", "--kind", "quarter", "--year", "2026", "-o", str(out))
    assert refused.exit_code == 1 and "[invalid_period]" in refused.output
    refused = cli("report", "--kind", "year", "--year", "2026", "-o", str(out), "--as", "vp.canbo")
    assert refused.exit_code == 1 and "[not_permitted]" in refused.output
    assert not out.exists()
    made = cli("report", "--kind", "half-year", "--year", "2026", "--as-of", "10/03/2026",
               "--format", "xlsx", "-o", str(out.with_suffix(".xlsx")))  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "10/03/2026" in made.stdout and "SHA-256" in made.stdout


# --- the page ---------------------------------------------------------------------------------


@pytest.fixture
def web(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CCHC_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("CCHC_INSTANCE_DIR", str(tmp_path / "instance"))
    assert CliRunner().invoke(main, ["init", "--demo"], catch_exceptions=False).exit_code == 0
    monkeypatch.setattr("app.reports_page.ward_today", lambda: date(2026, 3, 2))
    monkeypatch.setattr("app.reports_page.now", lambda: datetime(2026, 3, 2, 2, tzinfo=UTC))
    app = create_app({"TESTING": True})
    yield app
    database_of(app).engine.dispose()


def _login(app: Flask, username: str) -> tuple[FlaskClient, str]:
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    response = client.post(
        "/login",
        data={"username": username, "password": DEMO_PASSWORD, "csrf_token": token.group(1)},
    )
    assert response.status_code == 302
    return client, token.group(1)


def _token(client: FlaskClient, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert found
    return found.group(1)


@pytest.mark.db
def test_the_page_generates_and_downloads(web: Flask) -> None:
    client, _ = _login(web, "vhxh.canbo")
    page = client.get("/bao-cao")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Quý I/2026" in html and "04/03/2026" in html and "Sắp đến hạn" in html
    assert "Báo cáo định kỳ" in html  # the menu link
    response = client.post(
        "/bao-cao",
        data={
            "csrf_token": _token(client, "/bao-cao"),
            "year": "2026",
            "kind": "quarter",
            "quarter": "1",
            "format": "docx",
            "difficulties": "Thiếu nhân lực chuyên trách.",
        },
    )
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    assert "bao-cao-cchc-2026-quy-1-20260302.docx" in response.headers["Content-Disposition"]
    data = response.get_data()
    doc = docx_of(data)
    assert any(p.text == "Thiếu nhân lực chuyên trách." for p in doc.paragraphs)

    with web.app_context():
        session = database_of(web).sessions()
        org = session.query(Organization).one()
        ledger = Ledger(org.audit_origin)
        last = ledger.size(session) - 1
        entry = ledger.entry(session, last).content()
        session.close()
    assert entry["action"] == "report.generated"
    assert entry["details"]["sha256"] == hashlib.sha256(data).hexdigest()

    listed = client.get("/bao-cao").get_data(as_text=True)
    assert "Đã lập" in listed and f"/bao-cao/tep/{last}" in listed
    auditor, _ = _login(web, "kiemtoan")
    again = auditor.get(f"/bao-cao/tep/{last}")
    assert again.status_code == 200 and again.get_data() == data
    assert "Lập và tải báo cáo" not in auditor.get("/bao-cao").get_data(as_text=True)
    assert auditor.get(f"/bao-cao/tep/{last - 1}").status_code == 404  # not a report entry


@pytest.mark.db
def test_the_page_refuses(web: Flask) -> None:
    member, _ = _login(web, "vp.canbo")
    assert member.get("/bao-cao").status_code == 403
    assert member.get("/bao-cao/tep/0").status_code == 403
    assert "Báo cáo định kỳ" not in member.get("/").get_data(as_text=True)
    auditor, _ = _login(web, "kiemtoan")
    refused = auditor.post(
        "/bao-cao",
        data={"csrf_token": _token(auditor, "/bao-cao"), "year": "2026", "kind": "year"},
    )
    assert refused.status_code == 403
    assert "Chỉ Phòng Văn hóa - Xã hội" in refused.get_data(as_text=True)
    no_csrf = auditor.post("/bao-cao", data={"year": "2026", "kind": "year"})
    assert no_csrf.status_code == 400
    leader, _ = _login(web, "lanhdao")
    bad = leader.post(
        "/bao-cao",
        data={
            "csrf_token": _token(leader, "/bao-cao"),
            "year": "2026",
            "kind": "quarter",
            "quarter": "1",
            "as_of": "31/02/2026",
            "format": "xlsx",
        },
    )
    assert bad.status_code == 400 and "không phải ngày hợp lệ" in bad.get_data(as_text=True)
