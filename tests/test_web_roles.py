"""Every page × every role (and someone of another ward): nobody reads or does what their
role does not allow. The expectations are written out by hand, as the rules read in the
issue, not derived from the code that enforces them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.cli import main
from app.database import database_of, db_session
from definitions.loader import load_units
from workflow.accounts import create_user, hash_password
from workflow.bootstrap import DEMO_PASSWORD
from workflow.planning import ensure_organization, ensure_units, units_by_code
from workflow.trail import SYSTEM, AuditTrail

ROLES = [
    "vp.canbo",
    "vp.truong",
    "vhxh.thamdinh1",
    "vhxh.truong",
    "lanhdao",
    "kiemtoan",
    "quantri",
    "outsider",
]

# GET pages without parameters: who gets the page (200); everyone else gets 403.
PAGES: dict[str, set[str]] = {
    "/": set(ROLES),
    "/thong-bao": set(ROLES),
    "/tham-dinh": {"vhxh.thamdinh1", "vhxh.truong", "lanhdao"},
    "/dieu-hanh": {"vp.truong", "vhxh.thamdinh1", "vhxh.truong", "lanhdao", "kiemtoan"},
    "/kiem-toan": {"lanhdao", "kiemtoan", "quantri"},
    "/kiem-toan/kiem-chung": {"lanhdao", "kiemtoan", "quantri"},
    "/kiem-toan/khoa-cong-khai": {"lanhdao", "kiemtoan", "quantri"},
    "/quan-tri/nguoi-dung": {"quantri"},
    "/quan-tri/don-vi": {"quantri"},
}
# The outsider is an administrator of another ward: the admin and audit pages open, but show
# only their own ward; every page of this ward's work is out of reach.
for _path in (
    "/quan-tri/nguoi-dung",
    "/quan-tri/don-vi",
    "/kiem-toan",
    "/kiem-toan/kiem-chung",
    "/kiem-toan/khoa-cong-khai",
):
    PAGES[_path].add("outsider")


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    # a module-scoped SQLite database: these tests only read, and log in
    tmp = tmp_path_factory.mktemp("roles")
    mp = pytest.MonkeyPatch()
    mp.setenv("CCHC_DATABASE_URL", f"sqlite:///{tmp / 'roles.sqlite'}")
    mp.setenv("CCHC_INSTANCE_DIR", str(tmp / "instance"))
    assert CliRunner().invoke(main, ["init", "--demo"], catch_exceptions=False).exit_code == 0
    app = create_app({"TESTING": True})
    with app.app_context():
        session = db_session()
        now = datetime(2026, 3, 2, tzinfo=UTC)
        org, _ = ensure_organization(
            session,
            slug="le-chan",
            name="Phường Lê Chân",
            audit_origin="test.local/le-chan",
            now=now,
        )
        ensure_units(session, org, load_units())
        user = create_user(
            session,
            org,
            username="outsider",
            full_name="Quản trị Lê Chân",
            unit=units_by_code(session, org)["VP"],
            roles=["admin", "member"],
            password=None,
            actor=SYSTEM,
            now=now,
            trail=AuditTrail(),
        )
        user.password_hash = hash_password(DEMO_PASSWORD)
        session.commit()
    yield app
    database_of(app).engine.dispose()
    mp.undo()


def _login(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    response = client.post(
        "/login", data={"username": username, "password": DEMO_PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302, username
    return client


def test_every_get_page_is_in_the_table(web: Flask) -> None:
    plain_gets = {
        r.rule
        for r in web.url_map.iter_rules()
        if "GET" in r.methods
        and not r.arguments
        and not r.rule.startswith(("/api/", "/static"))
        and r.rule not in ("/login",)
    }
    assert plain_gets == set(PAGES)


@pytest.mark.parametrize("username", ROLES)
def test_pages_by_role(web: Flask, username: str) -> None:
    client = _login(web, username)
    for path, allowed in PAGES.items():
        status = client.get(path).status_code
        assert status == (200 if username in allowed else 403), (username, path, status)


def test_another_ward_cannot_reach_this_wards_work(web: Flask) -> None:
    client = _login(web, "outsider")
    listed = CliRunner().invoke(
        main, ["task", "list", "--org", "tran-hung-dao", "--number", "13", "--json"]
    )
    (task,) = json.loads(listed.stdout)
    tid = task["id"]
    assert client.get(f"/nhiem-vu/{tid}").status_code == 404
    assert client.get(f"/kiem-toan/nhiem-vu/{tid}").status_code == 404
    log = client.get("/kiem-toan").get_data(as_text=True)
    assert "vp.canbo" not in log and "task.assigned" not in log
    page = client.get("/quan-tri/nguoi-dung").get_data(as_text=True)
    assert "vp.canbo" not in page and "outsider" in page
    home = client.get("/?unit=all").get_data(as_text=True)
    assert "Tiếp tục triển khai Kế hoạch kiểm tra" not in home


def test_anonymous_is_sent_to_login(web: Flask) -> None:
    client = web.test_client()
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path
