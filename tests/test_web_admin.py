"""The administrator's pages through Flask's test client: only administrators get in; creating
accounts, changing roles, deactivating and reactivating, password resets change the data and
each adds exactly one audit entry; refusals are explained in Vietnamese and change nothing."""

from __future__ import annotations

import json
import re
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
from workflow.accounts import password_matches
from workflow.bootstrap import DEMO_PASSWORD
from workflow.db import make_engine
from workflow.models import User

ORIGIN = "cchc.haiphong.gov.vn/tran-hung-dao"
REFUSED = "Bạn không có quyền truy cập quản trị hệ thống."
NEW_PASSWORD = "mat-khau-moi-2026"


@pytest.fixture
def web(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CCHC_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("CCHC_INSTANCE_DIR", str(tmp_path / "instance"))
    result = CliRunner().invoke(main, ["init", "--demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    app = create_app({"TESTING": True})
    yield app
    database_of(app).engine.dispose()


class Ward:
    """The committed database as another process sees it: people and the audit log."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)

    def size(self) -> int:
        with self.engine.connect() as conn:
            return Ledger(ORIGIN).size(conn)

    def entries_since(self, size: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            ledger = Ledger(ORIGIN)
            return [ledger.entry(conn, seq).content() for seq in range(size, ledger.size(conn))]

    def user(self, username: str) -> User:
        with Session(self.engine) as session:
            user = session.scalars(select(User).where(User.username == username)).one()
            _ = user.unit, user.roles  # loaded before the session closes
            return user


@pytest.fixture
def ward(fresh_db_url: str, web: Flask) -> Iterator[Ward]:
    observed = Ward(fresh_db_url)
    yield observed
    observed.engine.dispose()


def _token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the page carries a CSRF token"
    return match.group(1)


def _sign_in(app: Flask, username: str, password: str = DEMO_PASSWORD) -> TestResponse:
    client = app.test_client()
    token = _token(client.get("/login").get_data(as_text=True))
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


def _login(app: Flask, username: str, password: str = DEMO_PASSWORD) -> FlaskClient:
    client = app.test_client()
    token = _token(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
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


def _post(client: FlaskClient, path: str, data: dict[str, Any]) -> str:
    token = _token(client.get("/quan-tri/nguoi-dung").get_data(as_text=True))
    response = client.post(path, data={**data, "csrf_token": token}, follow_redirects=True)
    assert response.status_code == 200
    return _html(response)


@pytest.fixture
def admin(web: Flask) -> FlaskClient:
    return _login(web, "quantri")


@pytest.mark.db
def test_the_admin_pages_list_units_and_people(admin: FlaskClient, ward: Ward) -> None:
    size = ward.size()
    page = _html(admin.get("/quan-tri/nguoi-dung"))
    assert "vp.canbo" in page and "Cán bộ đơn vị" in page
    assert "Kiểm toán viên" in page
    assert 'name="csrf_token"' in page
    units = _html(admin.get("/quan-tri/don-vi"))
    assert "VHXH" in units and "VP" in units
    vp = ward.user("vp.canbo")
    detail = _html(admin.get(f"/quan-tri/nguoi-dung/{vp.id}"))
    assert "user.created" in detail  # the account's own history from the audit log
    assert detail.count('name="csrf_token"') >= 4  # logout, roles, activation, password
    assert admin.get("/quan-tri/nguoi-dung/999999").status_code == 404
    assert 'href="/quan-tri/nguoi-dung"' in _html(admin.get("/"))
    assert ward.size() == size  # reading is not audited


@pytest.mark.db
@pytest.mark.parametrize("username", ["kiemtoan", "lanhdao", "vp.canbo", "vhxh.thamdinh1"])
def test_only_administrators_get_in(web: Flask, ward: Ward, username: str) -> None:
    client = _login(web, username)
    assert 'href="/quan-tri/nguoi-dung"' not in _html(client.get("/"))
    token = _token(client.get("/").get_data(as_text=True))
    target = ward.user("vp.truong")
    size = ward.size()
    for response in (
        client.get("/quan-tri/nguoi-dung"),
        client.get("/quan-tri/don-vi"),
        client.get(f"/quan-tri/nguoi-dung/{target.id}"),
        client.post(
            "/quan-tri/nguoi-dung/them",
            data={
                "csrf_token": token,
                "username": "ke.gian",
                "full_name": "Kẻ gian",
                "roles": "admin",
                "password": NEW_PASSWORD,
            },
        ),
        client.post(
            f"/quan-tri/nguoi-dung/{target.id}/vai-tro",
            data={"csrf_token": token, "roles": ["admin"]},
        ),
        client.post(
            f"/quan-tri/nguoi-dung/{target.id}/trang-thai",
            data={"csrf_token": token, "active": "0"},
        ),
        client.post(
            f"/quan-tri/nguoi-dung/{target.id}/mat-khau",
            data={"csrf_token": token, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
        ),
    ):
        assert response.status_code == 403
        assert REFUSED in _html(response)
    assert ward.size() == size
    after = ward.user("vp.truong")
    assert after.active and after.role_names == target.role_names
    assert after.password_hash == target.password_hash
    assert _sign_in(web, "ke.gian", NEW_PASSWORD).status_code == 200  # never created


@pytest.mark.db
def test_signed_out_visitors_go_to_the_login_page(web: Flask) -> None:
    response = web.test_client().get("/quan-tri/nguoi-dung")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.db
def test_creating_an_account_adds_one_audit_entry(
    web: Flask, admin: FlaskClient, ward: Ward
) -> None:
    size = ward.size()
    page = _post(
        admin,
        "/quan-tri/nguoi-dung/them",
        {
            "username": "TP.CanBo2",
            "full_name": "Nguyễn Thị Hoa",
            "unit": "VP",
            "roles": ["member", "head"],
            "password": NEW_PASSWORD,
        },
    )
    assert "Đã tạo tài khoản “tp.canbo2”." in page
    created = ward.user("tp.canbo2")
    assert created.full_name == "Nguyễn Thị Hoa"
    assert created.unit is not None and created.unit.code == "VP"
    assert sorted(created.role_names) == ["head", "member"]
    (entry,) = ward.entries_since(size)
    assert entry["action"] == "user.created"
    assert entry["object"] == {"type": "user", "id": "tp.canbo2"}
    assert entry["actor"] == {"user": "quantri", "unit": None, "role": "admin"}
    assert entry["after"]["roles"] == ["head", "member"]
    assert NEW_PASSWORD not in json.dumps(entry, ensure_ascii=False)
    assert _sign_in(web, "tp.canbo2", NEW_PASSWORD).status_code == 302

    size = ward.size()
    taken = _post(
        admin,
        "/quan-tri/nguoi-dung/them",
        {"username": "vp.canbo", "full_name": "X", "roles": ["member"], "password": NEW_PASSWORD},
    )
    assert "Tên đăng nhập “vp.canbo” đã được sử dụng." in taken
    no_role = _post(
        admin,
        "/quan-tri/nguoi-dung/them",
        {"username": "khong.vaitro", "full_name": "Y", "password": NEW_PASSWORD},
    )
    assert "Hãy chọn ít nhất một vai trò." in no_role
    weak = _post(
        admin,
        "/quan-tri/nguoi-dung/them",
        {"username": "yeu", "full_name": "Z", "roles": ["member"], "password": "ngan"},
    )
    assert "Mật khẩu phải có ít nhất 8 ký tự." in weak
    assert ward.size() == size  # refusals write nothing


@pytest.mark.db
def test_changing_roles_adds_one_audit_entry(admin: FlaskClient, ward: Ward) -> None:
    person = ward.user("vp.canbo")
    size = ward.size()
    page = _post(admin, f"/quan-tri/nguoi-dung/{person.id}/vai-tro", {"roles": ["member", "head"]})
    assert "Đã cập nhật vai trò của “vp.canbo”." in page
    assert sorted(ward.user("vp.canbo").role_names) == ["head", "member"]
    (entry,) = ward.entries_since(size)
    assert entry["action"] == "user.roles_changed"
    assert entry["before"] == {"roles": ["member"]}
    assert entry["after"] == {"roles": ["head", "member"]}

    # back to one role: the kept row stays, the other goes
    size = ward.size()
    _post(admin, f"/quan-tri/nguoi-dung/{person.id}/vai-tro", {"roles": ["head"]})
    assert ward.user("vp.canbo").role_names == ["head"]
    assert len(ward.entries_since(size)) == 1

    size = ward.size()
    same = _post(admin, f"/quan-tri/nguoi-dung/{person.id}/vai-tro", {"roles": ["head"]})
    assert "Vai trò của “vp.canbo” không thay đổi." in same
    none = _post(admin, f"/quan-tri/nguoi-dung/{person.id}/vai-tro", {})
    assert "Hãy chọn ít nhất một vai trò." in none
    unknown = _post(admin, f"/quan-tri/nguoi-dung/{person.id}/vai-tro", {"roles": ["vua"]})
    assert "Vai trò không tồn tại: vua." in unknown
    assert ward.size() == size
    assert ward.user("vp.canbo").role_names == ["head"]


@pytest.mark.db
def test_the_last_administrator_keeps_the_role(admin: FlaskClient, ward: Ward) -> None:
    me = ward.user("quantri")
    size = ward.size()
    page = _post(admin, f"/quan-tri/nguoi-dung/{me.id}/vai-tro", {"roles": ["auditor"]})
    assert "Phường phải còn ít nhất một tài khoản quản trị hệ thống đang hoạt động" in page
    assert ward.user("quantri").role_names == ["admin"]
    own = _post(admin, f"/quan-tri/nguoi-dung/{me.id}/trang-thai", {"active": "0"})
    assert "Không thể tự ngừng kích hoạt tài khoản của chính mình." in own
    assert ward.user("quantri").active
    assert ward.size() == size


@pytest.mark.db
def test_deactivating_and_reactivating_each_add_one_audit_entry(
    web: Flask, admin: FlaskClient, ward: Ward
) -> None:
    person = ward.user("vp.canbo")
    member = _login(web, "vp.canbo")  # signed in before the deactivation
    size = ward.size()
    page = _post(admin, f"/quan-tri/nguoi-dung/{person.id}/trang-thai", {"active": "0"})
    assert "Đã ngừng kích hoạt tài khoản “vp.canbo”." in page
    assert not ward.user("vp.canbo").active
    (entry,) = ward.entries_since(size)
    assert (entry["action"], entry["before"], entry["after"]) == (
        "user.deactivated",
        {"active": True},
        {"active": False},
    )
    assert _sign_in(web, "vp.canbo").status_code == 200  # refused: the login form again
    assert member.get("/").status_code == 302  # the open session ends too

    again = _post(admin, f"/quan-tri/nguoi-dung/{person.id}/trang-thai", {"active": "0"})
    assert "Tài khoản “vp.canbo” đã ngừng hoạt động." in again

    size = ward.size()
    page = _post(admin, f"/quan-tri/nguoi-dung/{person.id}/trang-thai", {"active": "1"})
    assert "Đã kích hoạt lại tài khoản “vp.canbo”." in page
    assert ward.user("vp.canbo").active
    (entry,) = ward.entries_since(size)
    assert entry["action"] == "user.activated"
    assert _sign_in(web, "vp.canbo").status_code == 302


@pytest.mark.db
def test_a_password_reset_adds_one_audit_entry_and_refuses_weak_ones(
    web: Flask, admin: FlaskClient, ward: Ward
) -> None:
    person = ward.user("vp.truong")
    path = f"/quan-tri/nguoi-dung/{person.id}/mat-khau"
    signed_in = _login(web, "vp.truong")  # a session open before the reset
    size = ward.size()
    weak = _post(admin, path, {"password": "1234567", "confirm": "1234567"})
    assert "Mật khẩu phải có ít nhất 8 ký tự." in weak
    mismatch = _post(admin, path, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD + "x"})
    assert "Mật khẩu nhập lại không khớp." in mismatch
    assert ward.size() == size
    assert ward.user("vp.truong").password_hash == person.password_hash
    assert signed_in.get("/").status_code == 200  # refused resets change nothing

    page = _post(admin, path, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert "Đã đặt lại mật khẩu cho “vp.truong”." in page
    changed = ward.user("vp.truong")
    assert password_matches(changed, NEW_PASSWORD)
    assert not password_matches(changed, DEMO_PASSWORD)
    (entry,) = ward.entries_since(size)
    assert entry["action"] == "user.password_reset"
    assert entry["actor"]["user"] == "quantri"
    assert NEW_PASSWORD not in json.dumps(entry, ensure_ascii=False)
    assert changed.password_hash not in json.dumps(entry)
    assert signed_in.get("/").status_code == 302  # the reset ends the open session
    assert _sign_in(web, "vp.truong", DEMO_PASSWORD).status_code == 200
    assert _sign_in(web, "vp.truong", NEW_PASSWORD).status_code == 302


@pytest.mark.db
def test_a_reset_lifts_the_sign_in_lockout(web: Flask, admin: FlaskClient, ward: Ward) -> None:
    for _ in range(5):
        assert _sign_in(web, "vp.canbo", "sai-mat-khau").status_code == 200
    assert ward.user("vp.canbo").locked_until is not None
    person = ward.user("vp.canbo")
    size = ward.size()
    _post(
        admin,
        f"/quan-tri/nguoi-dung/{person.id}/mat-khau",
        {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    (entry,) = ward.entries_since(size)
    assert entry["details"] == {"unlocked": True}
    assert ward.user("vp.canbo").locked_until is None
    assert _sign_in(web, "vp.canbo", NEW_PASSWORD).status_code == 302


@pytest.mark.db
def test_an_email_address_is_recorded_checked_and_audited(admin: FlaskClient, ward: Ward) -> None:
    person = ward.user("vp.canbo")
    path = f"/quan-tri/nguoi-dung/{person.id}/thu-dien-tu"
    size = ward.size()
    bad = _post(admin, path, {"email": "không phải địa chỉ"})
    assert "không phải địa chỉ thư điện tử hợp lệ" in bad
    assert ward.size() == size
    page = _post(admin, path, {"email": "Nguyen.Van.A@TranHungDao.HaiPhong.gov.vn"})
    assert "Đã cập nhật thư điện tử của “vp.canbo”." in page
    assert ward.user("vp.canbo").email == "Nguyen.Van.A@tranhungdao.haiphong.gov.vn"
    (entry,) = ward.entries_since(size)
    assert entry["action"] == "user.email_set"
    assert entry["after"] == {"email": "Nguyen.Van.A@tranhungdao.haiphong.gov.vn"}
    cleared = _post(admin, path, {"email": ""})
    assert "Đã cập nhật thư điện tử" in cleared and ward.user("vp.canbo").email is None
    assert "Chưa có (chỉ nhận thông báo trong phần mềm)" in cleared
