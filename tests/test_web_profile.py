"""The profile page through Flask's test client: a person lists, creates and revokes their own
API tokens; the secret is shown once and only its hash is kept; each change is one audit
entry; refusals are explained in Vietnamese and change nothing."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app import create_app
from app.cli import main
from app.database import database_of
from audit.ledger import Ledger
from workflow.bootstrap import DEMO_PASSWORD
from workflow.db import make_engine
from workflow.models import ApiToken, User

ORIGIN = "cchc.haiphong.gov.vn/tran-hung-dao"
TOKEN = re.compile(r"cchc_[A-Za-z0-9_-]{43}")


@pytest.fixture
def web(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CCHC_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("CCHC_INSTANCE_DIR", str(tmp_path / "instance"))
    result = CliRunner().invoke(main, ["init", "--demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    app = create_app({"TESTING": True})
    yield app
    database_of(app).engine.dispose()


class Stored:
    """The committed database as another process sees it."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)

    def tokens(self, username: str) -> list[ApiToken]:
        with Session(self.engine) as session:
            owner = select(User.id).where(User.username == username).scalar_subquery()
            query = select(ApiToken).where(ApiToken.user_id == owner).order_by(ApiToken.id)
            return list(session.scalars(query))

    def log_size(self) -> int:
        with self.engine.connect() as conn:
            return Ledger(ORIGIN).size(conn)

    def entries_since(self, size: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            ledger = Ledger(ORIGIN)
            return [ledger.entry(conn, seq).content() for seq in range(size, ledger.size(conn))]


@pytest.fixture
def stored(fresh_db_url: str, web: Flask) -> Iterator[Stored]:
    observed = Stored(fresh_db_url)
    yield observed
    observed.engine.dispose()


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the page carries a CSRF token"
    return match.group(1)


def _login(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    token = _csrf(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"username": username, "password": DEMO_PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302, username
    return client


def _html(response: TestResponse) -> str:
    """A rendered page, checked against the CSP (no inline script or style) and for NFC."""
    text = response.get_data(as_text=True)
    assert "<script" not in text and 'style="' not in text and "<style" not in text
    assert text == unicodedata.normalize("NFC", text)
    return text


def _post(client: FlaskClient, path: str, data: dict[str, str]) -> TestResponse:
    token = _csrf(client.get("/ho-so").get_data(as_text=True))
    return client.post(path, data={**data, "csrf_token": token})


@pytest.mark.db
def test_create_shows_the_secret_once_and_keeps_only_its_hash(web: Flask, stored: Stored) -> None:
    member = _login(web, "vp.canbo")
    home = _html(member.get("/"))
    assert 'href="/ho-so"' in home  # the navigation leads to the profile
    empty = _html(member.get("/ho-so"))
    assert "Hồ sơ cá nhân" in empty and "Bạn chưa có mã truy cập nào." in empty
    size = stored.log_size()

    created = _post(member, "/ho-so/ma-truy-cap", {"name": "Báo cáo tự động"})
    assert created.status_code == 201
    assert created.headers["Cache-Control"] == "no-store"
    page = _html(created)
    (secret,) = set(TOKEN.findall(page))
    assert "sẽ không hiện lại" in page

    (row,) = stored.tokens("vp.canbo")
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in (row.name, row.prefix, row.token_hash)
    assert row.name == "Báo cáo tự động" and row.revoked_at is None
    later = _html(member.get("/ho-so"))
    assert secret not in later and TOKEN.search(later) is None
    assert "Báo cáo tự động" in later and f"{row.prefix}…" in later
    assert re.search(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}", later)  # created, dd/mm/yyyy HH:MM
    assert "Đang dùng được" in later and "Không hết hạn" in later

    program = web.test_client()  # the secret works for a program, without the cookie
    me = program.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200 and me.json["username"] == "vp.canbo"  # type: ignore[index]

    (entry,) = stored.entries_since(size)
    assert entry["action"] == "token.created"
    assert entry["actor"]["user"] == "vp.canbo"
    assert secret not in str(entry)


@pytest.mark.db
def test_revoke_own_token(web: Flask, stored: Stored) -> None:
    member = _login(web, "vp.canbo")
    created = _html(_post(member, "/ho-so/ma-truy-cap", {"name": "tạm thời"}))
    (secret,) = set(TOKEN.findall(created))
    (row,) = stored.tokens("vp.canbo")
    size = stored.log_size()

    revoked = _post(member, f"/ho-so/ma-truy-cap/{row.id}/thu-hoi", {})
    assert revoked.status_code == 302 and revoked.headers["Location"].endswith("/ho-so")
    page = _html(member.get("/ho-so"))
    assert "Đã thu hồi mã truy cập “tạm thời”." in page
    assert "Đã thu hồi lúc" in page
    assert f"/ho-so/ma-truy-cap/{row.id}/thu-hoi" not in page  # no button on a revoked token
    (after,) = stored.tokens("vp.canbo")
    assert after.revoked_at is not None
    (entry,) = stored.entries_since(size)
    assert entry["action"] == "token.revoked" and entry["actor"]["user"] == "vp.canbo"
    program = web.test_client()
    refused = program.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert refused.status_code == 401

    size = stored.log_size()
    again = _post(member, f"/ho-so/ma-truy-cap/{row.id}/thu-hoi", {})
    assert again.status_code == 302
    assert "đã bị thu hồi trước đó" in _html(member.get("/ho-so"))
    assert stored.log_size() == size


@pytest.mark.db
def test_someone_elses_token_is_not_found(web: Flask, stored: Stored) -> None:
    owner = _login(web, "vp.canbo")
    _post(owner, "/ho-so/ma-truy-cap", {"name": "của VP"})
    (row,) = stored.tokens("vp.canbo")
    size = stored.log_size()
    for username in ("vp.truong", "vhxh.truong", "kiemtoan"):
        other = _login(web, username)
        attempt = _post(other, f"/ho-so/ma-truy-cap/{row.id}/thu-hoi", {})
        assert attempt.status_code == 404, username
        assert f"Không tìm thấy mã truy cập số {row.id}." in _html(attempt)
        assert "của VP" not in _html(other.get("/ho-so"))  # nor is it listed to them
    missing = _post(owner, "/ho-so/ma-truy-cap/999999/thu-hoi", {})
    assert missing.status_code == 404
    (unchanged,) = stored.tokens("vp.canbo")
    assert unchanged.revoked_at is None
    actions = {entry["action"] for entry in stored.entries_since(size)}
    assert actions == {"login.succeeded"}  # signing in is audited; nothing was revoked


@pytest.mark.db
def test_refusals_and_expiry(web: Flask, stored: Stored) -> None:
    member = _login(web, "vp.canbo")
    size = stored.log_size()
    blank = _post(member, "/ho-so/ma-truy-cap", {"name": "   "})
    assert blank.status_code == 302
    assert "Cần đặt tên cho mã truy cập" in _html(member.get("/ho-so"))
    bad_day = _post(member, "/ho-so/ma-truy-cap", {"name": "x", "expires_on": "31/02/2026"})
    assert bad_day.status_code == 302
    assert "“31/02/2026” không phải ngày hợp lệ (dd/mm/yyyy)." in _html(member.get("/ho-so"))
    past = _post(member, "/ho-so/ma-truy-cap", {"name": "x", "expires_on": "01/01/2020"})
    assert past.status_code == 302
    assert "phải sau thời điểm hiện tại" in _html(member.get("/ho-so"))
    too_long = _post(member, "/ho-so/ma-truy-cap", {"name": "x" * 101})
    assert too_long.status_code == 302
    assert "dài tối đa 100 ký tự" in _html(member.get("/ho-so"))
    assert stored.tokens("vp.canbo") == [] and stored.log_size() == size

    decomposed = unicodedata.normalize("NFD", "Đồng bộ dữ liệu")
    created = _post(member, "/ho-so/ma-truy-cap", {"name": decomposed, "expires_on": "31/12/2099"})
    assert created.status_code == 201
    (row,) = stored.tokens("vp.canbo")
    assert row.name == "Đồng bộ dữ liệu"  # stored NFC
    page = _html(member.get("/ho-so"))
    assert "Hết ngày 31/12/2099" in page  # valid through that ward day
