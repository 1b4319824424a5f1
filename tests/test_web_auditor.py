"""The auditor's pages through Flask's test client: who may open them, the log's filters and
pages, one task's timeline, the signed export (.zip) and receipts checked with the standalone
verifier, "verify now", and what the pages say when the signing key is missing."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app import auditor, create_app
from app.cli import main
from app.database import database_of
from audit.ledger import Ledger
from audit.receipt import verify_receipt_text
from audit.verify import VerifyReport, verify_export
from workflow.bootstrap import DEMO_PASSWORD
from workflow.clock import WARD_TZ
from workflow.db import make_engine

ORIGIN = "cchc.haiphong.gov.vn/tran-hung-dao"
AUDIT_ROLES = ("kiemtoan", "lanhdao", "quantri")
OTHERS = ("vp.canbo", "vhxh.thamdinh1", "vhxh.truong")
REFUSED = "Bạn không có quyền truy cập nhật ký kiểm toán."
ROW = re.compile(
    r"<tr>\s*<td>(\d+)</td>\s*<td>([^<]+)</td>\s*<td>([^<]+)</td>\s*<td>([^<]+)</td>\s*"
    r"<td>([^<]+)</td>\s*<td><code>([^<]+)</code></td>"
)


@pytest.fixture
def instance_dir(tmp_path: Path) -> Path:
    return tmp_path / "instance"


@pytest.fixture
def web(fresh_db_url: str, instance_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CCHC_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("CCHC_INSTANCE_DIR", str(instance_dir))
    result = CliRunner().invoke(main, ["init", "--demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    app = create_app({"TESTING": True})
    yield app
    database_of(app).engine.dispose()


def _public_key(instance_dir: Path) -> str:
    return (instance_dir / "keys" / "audit-signing.pub").read_text(encoding="utf-8")


def _token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the page carries a CSRF token"
    return match.group(1)


def _login(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    token = _token(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"username": username, "password": DEMO_PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302, username
    return client


def _html(response: TestResponse) -> str:
    """A rendered page, checked against the CSP: no inline script, no style attribute."""
    text = response.get_data(as_text=True)
    assert "<script" not in text
    assert 'style="' not in text
    assert "<style" not in text
    return text


def _log_size(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return Ledger(ORIGIN).size(conn)
    finally:
        engine.dispose()


def _total(page: str) -> int:
    match = re.search(r"<p>(\d+) mục", page)
    assert match, "the page says how many entries match"
    return int(match.group(1))


def _rows(page: str) -> list[tuple[str, ...]]:
    return ROW.findall(page)


def _task_id() -> int:
    out = CliRunner().invoke(main, ["task", "list", "--number", "12", "--json"]).stdout
    tid: int = json.loads(out)[0]["id"]
    return tid


@pytest.mark.db
@pytest.mark.parametrize("username", AUDIT_ROLES)
def test_the_audit_pages_open_for_auditors_leaders_and_admins(web: Flask, username: str) -> None:
    client = _login(web, username)
    page = _html(client.get("/kiem-toan"))
    assert "Nhật ký kiểm toán" in page
    assert _rows(page), "the log lists entries"
    assert client.get("/kiem-toan/kiem-chung").status_code == 200
    assert client.get(f"/kiem-toan/nhiem-vu/{_task_id()}").status_code == 200
    assert client.get("/kiem-toan/bien-nhan/0").status_code == 200
    # the menu shows the way in (the engine decides, the menu obeys)
    assert 'href="/kiem-toan"' in _html(client.get("/"))


@pytest.mark.db
@pytest.mark.parametrize("username", OTHERS)
def test_everyone_else_is_refused_with_the_reason(
    web: Flask, username: str, fresh_db_url: str
) -> None:
    client = _login(web, username)
    token = _token(client.get("/").get_data(as_text=True))
    assert 'href="/kiem-toan"' not in _html(client.get("/"))
    size = _log_size(fresh_db_url)
    for response in (
        client.get("/kiem-toan"),
        client.get("/kiem-toan/kiem-chung"),
        client.get(f"/kiem-toan/nhiem-vu/{_task_id()}"),
        client.get("/kiem-toan/bien-nhan/0"),
        client.get("/kiem-toan/khoa-cong-khai"),
        client.post("/kiem-toan/xuat", data={"csrf_token": token}),
        client.post("/kiem-toan/kiem-chung", data={"csrf_token": token}),
    ):
        assert response.status_code == 403
        assert REFUSED in _html(response)
    assert _log_size(fresh_db_url) == size  # nothing signed, nothing written


@pytest.mark.db
def test_signed_out_visitors_go_to_the_login_page(web: Flask) -> None:
    response = web.test_client().get("/kiem-toan")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.db
def test_filters_narrow_the_log(web: Flask, fresh_db_url: str) -> None:
    _login(web, "vp.canbo")  # one login.succeeded by a member of VP
    client = _login(web, "kiemtoan")
    everything = _total(_html(client.get("/kiem-toan")))
    assert everything == _log_size(fresh_db_url)  # reading the log wrote nothing

    by_user = _html(client.get("/kiem-toan?user=vp.canbo"))
    assert _total(by_user) == 1
    ((_seq, when, user, unit, _role, action),) = _rows(by_user)
    assert (user, unit, action) == ("vp.canbo", "VP", "login.succeeded")
    assert re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d", when)

    by_unit = _html(client.get("/kiem-toan?unit=VP"))
    assert 1 <= _total(by_unit) < everything
    assert {row[3] for row in _rows(by_unit)} == {"VP"}

    by_action = _html(client.get("/kiem-toan?action=login.succeeded"))
    assert _total(by_action) == 2  # vp.canbo, then kiemtoan
    assert {row[5] for row in _rows(by_action)} == {"login.succeeded"}

    combined = _html(client.get("/kiem-toan?action=login.succeeded&user=kiemtoan"))
    assert _total(combined) == 1

    today = datetime.now(WARD_TZ).date()
    fmt = "%d/%m/%Y"
    assert _total(_html(client.get(f"/kiem-toan?from={today:{fmt}}&to={today:{fmt}}"))) == (
        everything
    )
    tomorrow, yesterday = today + timedelta(days=1), today - timedelta(days=1)
    assert _total(_html(client.get(f"/kiem-toan?from={tomorrow:{fmt}}"))) == 0
    assert _total(_html(client.get(f"/kiem-toan?to={yesterday:{fmt}}"))) == 0

    bad = client.get("/kiem-toan?from=31/02/2026")
    assert bad.status_code == 400
    assert "không phải ngày hợp lệ (dd/mm/yyyy)" in _html(bad)
    backwards = client.get(f"/kiem-toan?from={today:{fmt}}&to={yesterday:{fmt}}")
    assert backwards.status_code == 400


@pytest.mark.db
def test_the_log_is_paginated_newest_first(web: Flask) -> None:
    client = _login(web, "kiemtoan")
    first = _html(client.get("/kiem-toan"))
    total = _total(first)
    assert total > 50, "the demo ward's log has more than one page"
    seqs = [int(row[0]) for row in _rows(first)]
    assert len(seqs) == 50
    assert seqs == sorted(seqs, reverse=True)
    assert seqs[0] == total - 1
    assert "page=2" in first
    second = _html(client.get("/kiem-toan?page=2"))
    assert int(_rows(second)[0][0]) == seqs[-1] - 1
    # the pager keeps the filters
    filtered = _html(client.get("/kiem-toan?user=system"))
    assert _total(filtered) > 50
    links = re.findall(r'href="(/kiem-toan\?[^"]*page=2[^"]*)"', filtered)
    assert links and all("user=system" in link for link in links)
    assert {row[2] for row in _rows(_html(client.get(links[0].replace("&amp;", "&"))))} == {
        "system"
    }


@pytest.mark.db
def test_a_tasks_timeline_shows_its_history_with_before_after_and_details(
    web: Flask, fresh_db_url: str
) -> None:
    tid = _task_id()
    fired = CliRunner().invoke(main, ["task", "fire", str(tid), "start", "--as", "vp.canbo"])
    assert fired.exit_code == 0, fired.output
    client = _login(web, "kiemtoan")
    size = _log_size(fresh_db_url)
    page = _html(client.get(f"/kiem-toan/nhiem-vu/{tid}"))
    assert "task.assigned" in page
    assert "task.start" in page
    assert "Trước" in page and "Sau" in page
    assert "&#34;state&#34;: &#34;in_progress&#34;" in page  # the after of task.start
    assert page.index("task.assigned") < page.index("task.start")  # oldest first
    assert _log_size(fresh_db_url) == size  # reading is not audited
    assert client.get("/kiem-toan/nhiem-vu/999999").status_code == 404
    # the log links task entries to their timeline
    assert f'href="/kiem-toan/nhiem-vu/{tid}"' in _html(client.get("/kiem-toan?user=vp.canbo"))


@pytest.mark.db
def test_the_export_zip_verifies_after_unzipping(
    web: Flask, fresh_db_url: str, instance_dir: Path, tmp_path: Path
) -> None:
    client = _login(web, "kiemtoan")
    token = _token(_html(client.get("/kiem-toan")))
    size = _log_size(fresh_db_url)
    # the download is streamed from a temporary file: close the response as a server would
    with client.post("/kiem-toan/xuat", data={"csrf_token": token}) as response:
        assert response.status_code == 200
        assert response.mimetype == "application/zip"
        assert response.headers["Content-Disposition"].startswith("attachment;")
        data = response.get_data()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "unzipped")
    (top,) = {name.split("/")[0] for name in names}
    folder = tmp_path / "unzipped" / top
    assert {"entries.jsonl", "verifier.vkey", "README.txt"} <= {p.name for p in folder.iterdir()}
    report = verify_export(folder, _public_key(instance_dir))
    assert report.ok, report.problem
    assert report.size == size
    assert report.covered == size  # a checkpoint of the whole log was signed for the export
    assert report.origin == ORIGIN
    # signing the checkpoint is the ledger's own record, not a new entry
    assert _log_size(fresh_db_url) == size
    # the export is refused without a CSRF token
    assert client.post("/kiem-toan/xuat").status_code == 400


@pytest.mark.db
def test_a_receipt_downloads_as_json_and_verifies(
    web: Flask, fresh_db_url: str, instance_dir: Path
) -> None:
    client = _login(web, "lanhdao")
    last = _log_size(fresh_db_url) - 1  # lanhdao's own login: no checkpoint covers it yet
    page = _html(client.get("/kiem-toan"))
    assert f'href="/kiem-toan/bien-nhan/{last}"' in page
    response = client.get(f"/kiem-toan/bien-nhan/{last}")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    verified = verify_receipt_text(response.get_data(as_text=True), _public_key(instance_dir))
    assert verified.seq == last
    assert verified.entry["action"] == "login.succeeded"
    assert verified.entry["actor"]["user"] == "lanhdao"
    early = client.get("/kiem-toan/bien-nhan/0")
    assert verify_receipt_text(early.get_data(as_text=True), _public_key(instance_dir)).seq == 0
    assert client.get(f"/kiem-toan/bien-nhan/{last + 100}").status_code == 404
    key = client.get("/kiem-toan/khoa-cong-khai")
    assert key.get_data(as_text=True).strip() == _public_key(instance_dir).strip()


@pytest.mark.db
def test_verify_now_reports_an_untouched_log_as_intact(web: Flask, fresh_db_url: str) -> None:
    client = _login(web, "quantri")
    page = _html(client.get("/kiem-toan/kiem-chung"))
    assert "Kiểm chứng ngay" in page
    size = _log_size(fresh_db_url)
    result = _html(client.post("/kiem-toan/kiem-chung", data={"csrf_token": _token(page)}))
    assert "Kết quả: nhật ký nguyên vẹn." in result
    assert f"<dt>Kích thước cây (số mục)</dt><dd>{size}</dd>" in result
    assert re.search(r"<dt>Gốc cây Merkle \(hex\)</dt><dd><code>[0-9a-f]{64}</code>", result)
    assert _log_size(fresh_db_url) == size  # verifying writes nothing


@pytest.mark.db
def test_verify_now_names_the_first_bad_entry_of_a_damaged_export(
    web: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refuses to alter the log, so the damage is done to the exported copy just
    before the verifier reads it: the page must name the entry and the kind of damage."""

    def tampered(folder: Path, key: str) -> VerifyReport:
        entries = folder / "entries.jsonl"
        lines = entries.read_bytes().splitlines(keepends=True)
        lines[7] = lines[7].replace(b"system", b"hacker", 1)
        entries.write_bytes(b"".join(lines))
        return verify_export(folder, key)

    monkeypatch.setattr(auditor, "verify_export", tampered)
    client = _login(web, "kiemtoan")
    page = _html(client.get("/kiem-toan/kiem-chung"))
    result = _html(client.post("/kiem-toan/kiem-chung", data={"csrf_token": _token(page)}))
    assert "Kết quả: phát hiện sai lệch." in result
    assert "Mục đầu tiên có vấn đề: số 7." in result
    assert "nội dung mục bị sửa (<code>body_modified</code>)" in result


@pytest.mark.db
def test_without_a_signing_key_the_pages_say_so(
    web: Flask, fresh_db_url: str, instance_dir: Path
) -> None:
    keys = instance_dir / "keys"
    for path in keys.iterdir():
        path.unlink()
    app = create_app({"TESTING": True})  # the deployment starts without a key
    try:
        client = _login(app, "kiemtoan")  # a new entry that no checkpoint covers
        page = _html(client.get("/kiem-toan"))
        assert "cchc audit keygen" in page
        token = _token(page)
        exported = _html(
            client.post("/kiem-toan/xuat", data={"csrf_token": token}, follow_redirects=True)
        )
        assert "Chưa có khóa ký nhật ký kiểm toán" in exported
        assert "cchc audit keygen" in exported
        last = _log_size(fresh_db_url) - 1
        receipt = _html(client.get(f"/kiem-toan/bien-nhan/{last}", follow_redirects=True))
        assert "Chưa có khóa ký nhật ký kiểm toán" in receipt
        verified = _html(client.post("/kiem-toan/kiem-chung", data={"csrf_token": token}))
        assert "Chưa có khóa công khai để kiểm chứng nhật ký" in verified
        assert "cchc audit keygen" in verified
    finally:
        database_of(app).engine.dispose()
