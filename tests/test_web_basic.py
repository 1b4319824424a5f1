"""The simple pages: sign in (audited, throttled), the unit's task list, security headers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.cli import main
from app.database import database_of
from audit.ledger import Ledger
from workflow.bootstrap import DEMO_PASSWORD
from workflow.db import make_engine

ORIGIN = "cchc.haiphong.gov.vn/tran-hung-dao"


@pytest.fixture
def web(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CCHC_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("CCHC_INSTANCE_DIR", str(tmp_path / "instance"))
    result = CliRunner().invoke(main, ["init", "--demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    app = create_app({"TESTING": True})
    yield app
    database_of(app).engine.dispose()


def _csrf(client: FlaskClient, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the form carries a CSRF token"
    return match.group(1)


def _log_size(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return Ledger(ORIGIN).size(conn)
    finally:
        engine.dispose()


@pytest.mark.db
def test_sign_in_and_see_the_units_tasks(web: Flask, fresh_db_url: str) -> None:
    client = web.test_client()
    assert client.get("/").status_code == 302  # signed out: to the login page
    before = _log_size(fresh_db_url)
    token = _csrf(client, "/login")
    response = client.post(
        "/login",
        data={"username": "vp.canbo", "password": DEMO_PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert "Việc của đơn vị: VP" in page
    assert "Tiếp tục triển khai Kế hoạch kiểm tra văn bản quy phạm pháp luật" in page
    assert "31/12/2026" in page  # dates as dd/mm/yyyy
    assert _log_size(fresh_db_url) == before + 1  # login.succeeded


@pytest.mark.db
def test_failed_sign_ins_are_audited_and_throttled(web: Flask, fresh_db_url: str) -> None:
    client = web.test_client()
    before = _log_size(fresh_db_url)
    for _ in range(5):
        token = _csrf(client, "/login")
        page = client.post(
            "/login", data={"username": "vp.canbo", "password": "sai", "csrf_token": token}
        ).get_data(as_text=True)
        assert "Tên đăng nhập hoặc mật khẩu không đúng." in page
    token = _csrf(client, "/login")
    page = client.post(
        "/login", data={"username": "vp.canbo", "password": DEMO_PASSWORD, "csrf_token": token}
    ).get_data(as_text=True)
    assert "tạm khóa" in page  # locked even with the right password
    assert _log_size(fresh_db_url) == before + 6


@pytest.mark.db
def test_login_form_requires_csrf_and_sets_headers(web: Flask) -> None:
    client = web.test_client()
    refused = client.post("/login", data={"username": "vp.canbo", "password": DEMO_PASSWORD})
    assert refused.status_code == 400
    page = client.get("/login")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.db
def test_notifications_page_lists_and_marks_read(web: Flask, tmp_path: Path) -> None:
    # the reviewer gets a notification when VP submits: drive it through the CLI
    runner = CliRunner()
    (task,) = [
        t
        for t in json.loads(runner.invoke(main, ["task", "list", "--unit", "VP", "--json"]).stdout)
        if t["number"] == 11
    ]
    tid = str(task["id"])
    assert runner.invoke(main, ["task", "fire", tid, "start", "--as", "vp.canbo"]).exit_code == 0
    detail = json.loads(runner.invoke(main, ["task", "show", tid, "--json"]).stdout)
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%%EOF\n")
    for product in detail["products"]:
        added = runner.invoke(
            main, ["evidence", "add", tid, str(pdf), "--product", product, "--as", "vp.canbo"]
        )
        assert added.exit_code == 0, added.output
    assert runner.invoke(main, ["task", "fire", tid, "submit", "--as", "vp.truong"]).exit_code == 0

    client = web.test_client()
    token = _csrf(client, "/login")
    client.post(
        "/login",
        data={"username": "vhxh.thamdinh1", "password": DEMO_PASSWORD, "csrf_token": token},
    )
    page = client.get("/thong-bao").get_data(as_text=True)
    assert "(1 chưa đọc)" in page and "đã được nộp, chờ thẩm định" in page
    client.post("/thong-bao", data={"csrf_token": _csrf(client, "/thong-bao")})
    assert "chưa đọc" not in client.get("/thong-bao").get_data(as_text=True)


@pytest.mark.parametrize(("setting", "secure"), [(None, False), ("1", True), ("0", False)])
def test_secure_cookies_follow_the_setting(
    setting: str | None, secure: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind TLS (CCHC_SECURE_COOKIES=1) the session cookie is sent over HTTPS only; the
    embedded demo on plain http://127.0.0.1 keeps working without it."""
    monkeypatch.setenv("CCHC_INSTANCE_DIR", str(tmp_path / "instance"))
    monkeypatch.setenv("CCHC_DATABASE_URL", f"sqlite:///{tmp_path / 'unused.sqlite'}")
    if setting is None:
        monkeypatch.delenv("CCHC_SECURE_COOKIES", raising=False)
    else:
        monkeypatch.setenv("CCHC_SECURE_COOKIES", setting)
    app = create_app({"TESTING": True})
    client = app.test_client()
    client.get("/login")  # the form's CSRF token puts something in the session
    cookie = client.get_cookie("session")
    assert cookie is not None and cookie.secure is secure
    assert cookie.http_only
