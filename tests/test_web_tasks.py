"""The task page in the browser's place (Flask's test client): the whole lifecycle through
the forms, exactly the enabled actions shown, refusals shown in Vietnamese, downloads."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app import create_app
from app.cli import main
from app.database import database_of
from audit.ledger import CommittedMismatchError
from workflow.bootstrap import DEMO_PASSWORD

PDF = b"%PDF-1.4\n% bao cao\n%%EOF\n"


@pytest.fixture
def web(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CCHC_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("CCHC_INSTANCE_DIR", str(tmp_path / "instance"))
    assert CliRunner().invoke(main, ["init", "--demo"], catch_exceptions=False).exit_code == 0
    app = create_app({"TESTING": True})
    yield app
    database_of(app).engine.dispose()


def _token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


def _login(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    token = _token(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"username": username, "password": DEMO_PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302
    return client


def _page(client: FlaskClient, tid: int) -> str:
    return client.get(f"/nhiem-vu/{tid}").get_data(as_text=True)


def _actions(page: str) -> list[str]:
    return re.findall(r'name="event" value="([a-z_]+)"', page)


def _fire(client: FlaskClient, tid: int, event: str, **fields: str) -> str:
    page = _page(client, tid)
    version = re.search(r'name="version" value="(\d+)"', page)
    data = {"event": event, "csrf_token": _token(page), **fields}
    if version:
        data["version"] = version.group(1)
    return client.post(f"/nhiem-vu/{tid}/thao-tac", data=data, follow_redirects=True).get_data(
        as_text=True
    )


@pytest.mark.db
def test_the_whole_lifecycle_through_the_pages(web: Flask) -> None:
    tasks = json.loads(
        CliRunner().invoke(main, ["task", "list", "--number", "12", "--json"]).stdout
    )
    tid = tasks[0]["id"]

    member = _login(web, "vp.canbo")
    assert _actions(_page(member, tid)) == ["start"]
    assert "Đã thực hiện: Bắt đầu thực hiện." in _fire(member, tid, "start")
    page = _page(member, tid)
    product = re.search(r'<select name="product"><option>([^<]+)</option>', page).group(1)
    uploaded = member.post(
        f"/nhiem-vu/{tid}/tai-lieu",
        data={
            "csrf_token": _token(page),
            "product": product,
            "file": (io.BytesIO(PDF), "../bao-cao.pdf"),
        },
        content_type="multipart/form-data",
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Đã tải lên tài liệu kiểm chứng." in uploaded
    assert hashlib.sha256(PDF).hexdigest() in uploaded
    refused = _fire(member, tid, "submit")  # the member may not submit: the engine says why
    assert "Chỉ Trưởng đơn vị chủ trì (VP) được nộp sản phẩm" in refused

    head = _login(web, "vp.truong")
    assert _actions(_page(head, tid)) == ["submit"]
    assert "Đã thực hiện: Nộp sản phẩm." in _fire(head, tid, "submit")

    reviewer = _login(web, "vhxh.thamdinh1")
    assert _actions(_page(reviewer, tid)) == ["review", "return_for_rework"]
    returned = _fire(reviewer, tid, "return_for_rework", reason="Thiếu số liệu quý I")
    assert "Trả lại để hoàn thiện" in returned

    page = _page(member, tid)
    assert "Thiếu số liệu quý I" in page  # the member reads the reason
    assert "(quyết định)" in page and "(decision)" not in page  # the kind, in Vietnamese
    _fire(member, tid, "rework")
    _fire(head, tid, "submit")
    _fire(reviewer, tid, "review", findings="Đạt yêu cầu", recommendation="accept")
    approver = _login(web, "vhxh.truong")
    assert _actions(_page(approver, tid)) == ["return_for_rework", "accept"]
    assert "Đã thực hiện: Nghiệm thu." in _fire(approver, tid, "accept", assessment="Tốt")
    assert _actions(_page(approver, tid)) == []

    page = _page(_login(web, "kiemtoan"), tid)
    for action in (
        "task.start",
        "evidence.added",
        "task.submit",
        "task.return_for_rework",
        "task.rework",
        "task.review",
        "task.accept",
    ):
        assert action in page
    evidence_id = re.search(r'href="/tai-lieu/(\d+)"', page).group(1)
    download = member.get(f"/tai-lieu/{evidence_id}")
    assert download.data == PDF
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert "bao-cao.pdf" in download.headers["Content-Disposition"]
    download.close()


@pytest.mark.db
def test_a_stale_form_is_refused(web: Flask) -> None:
    tasks = json.loads(
        CliRunner().invoke(main, ["task", "list", "--number", "12", "--json"]).stdout
    )
    tid = tasks[0]["id"]
    member = _login(web, "vp.canbo")
    page = _page(member, tid)
    _fire(member, tid, "start")
    stale = member.post(
        f"/nhiem-vu/{tid}/thao-tac",
        data={"event": "start", "version": "1", "csrf_token": _token(page)},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "vừa được người khác cập nhật" in stale
    assert member.get("/nhiem-vu/999999").status_code == 404


def _start_with_a_failing_commit(
    web: Flask, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> tuple[int, TestResponse]:
    """Task 12 (VP) started through its page while the session's COMMIT raises `error`, with
    the application answering as in production (its error handler, not the exception)."""
    tasks = json.loads(
        CliRunner().invoke(main, ["task", "list", "--number", "12", "--json"]).stdout
    )
    tid = int(tasks[0]["id"])
    member = _login(web, "vp.canbo")
    page = _page(member, tid)
    web.config["PROPAGATE_EXCEPTIONS"] = False

    def fail(_session: Any) -> None:
        raise error

    with monkeypatch.context() as patch:
        patch.setattr(Session, "commit", fail)
        response = member.post(
            f"/nhiem-vu/{tid}/thao-tac", data={"event": "start", "csrf_token": _token(page)}
        )
    return tid, response


@pytest.mark.db
def test_a_failed_commit_saves_nothing_and_says_so_in_vietnamese(
    web: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refuses the COMMIT of a transition (a lost connection, a full disk, a
    lock held too long): the person sees a Vietnamese error page, not Flask's English one, and
    neither the state nor its audit entry is saved."""
    tasks = json.loads(
        CliRunner().invoke(main, ["task", "list", "--number", "12", "--json"]).stdout
    )
    before = json.loads(
        CliRunner().invoke(main, ["task", "show", str(tasks[0]["id"]), "--json"]).stdout
    )
    refused = OperationalError("COMMIT", {}, Exception("disk I/O error"))
    tid, response = _start_with_a_failing_commit(web, monkeypatch, refused)
    text = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Máy chủ gặp sự cố" in text and "Internal Server Error" not in text
    after = json.loads(CliRunner().invoke(main, ["task", "show", str(tid), "--json"]).stdout)
    assert (after["state"], after["version"]) == ("assigned", before["version"])
    assert after["history"] == before["history"]


@pytest.mark.db
def test_an_audit_mismatch_after_the_commit_says_it_was_saved(
    web: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger's integrity alarm comes after the COMMIT (audit.ledger.CommittedMismatchError;
    provoked for real in tests/audit/test_at_commit.py): the page says the action was saved and
    must not be repeated, not the general "reload and try again"."""
    alarm = CommittedMismatchError("the entry built again does not match; committed with it")
    _tid, response = _start_with_a_failing_commit(web, monkeypatch, alarm)
    text = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "thao tác ĐÃ được lưu" in text and "Đừng thực hiện lại thao tác này" in text
    assert "Máy chủ gặp sự cố" not in text
