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
    "/ho-so": set(ROLES),
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


def _csrf(client: FlaskClient) -> str:
    page = client.get("/ho-so").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


def _new_token(client: FlaskClient, name: str) -> int:
    """Create a token on the profile page; its id, read back from the owner's API list."""
    response = client.post("/ho-so/ma-truy-cap", data={"name": name, "csrf_token": _csrf(client)})
    assert response.status_code == 201, response.get_data(as_text=True)
    items = client.get("/api/v1/tokens").json["items"]  # type: ignore[index]
    return int(next(t["id"] for t in items if t["name"] == name))


@pytest.mark.parametrize("username", ROLES)
def test_profile_tokens_by_role(web: Flask, username: str) -> None:
    """Everyone signed in creates and revokes their own tokens; of someone else's token, only
    the ward's administrator may revoke it, and to anyone else it does not exist (404)."""
    client = _login(web, username)
    own = _new_token(client, f"own-{username}")
    revoked = client.post(f"/ho-so/ma-truy-cap/{own}/thu-hoi", data={"csrf_token": _csrf(client)})
    assert revoked.status_code == 302, username

    owner = _login(web, "vp.canbo")
    theirs = _new_token(owner, f"of-vp.canbo-for-{username}")
    attempt = client.post(
        f"/ho-so/ma-truy-cap/{theirs}/thu-hoi", data={"csrf_token": _csrf(client)}
    )
    may_revoke = username in ("vp.canbo", "quantri")
    assert attempt.status_code == (302 if may_revoke else 404), (username, attempt.status_code)
    live = {t["id"]: t["active"] for t in owner.get("/api/v1/tokens").json["items"]}  # type: ignore[index]
    assert live[theirs] is (not may_revoke), username


def test_profile_forms_need_csrf(web: Flask) -> None:
    client = _login(web, "vp.canbo")
    assert client.post("/ho-so/ma-truy-cap", data={"name": "no-csrf"}).status_code == 400
    token = _new_token(client, "csrf-check")
    assert client.post(f"/ho-so/ma-truy-cap/{token}/thu-hoi").status_code == 400


def test_anonymous_cannot_use_profile_forms(web: Flask) -> None:
    client = web.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    for path in ("/ho-so/ma-truy-cap", "/ho-so/ma-truy-cap/1/thu-hoi"):
        response = client.post(path, data={"name": "x", "csrf_token": token})
        assert response.status_code == 302 and "/login" in response.headers["Location"], path
