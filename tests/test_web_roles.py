"""Every page × every role (and someone of another ward): nobody reads or does what their
role does not allow. The expectations are written out by hand, as the rules read in the
issue, not derived from the code that enforces them."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

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
# The evaluation, self-inspection, sampling and inspection pages of the whole ward: the ward
# leader, VHXH's approver and reviewers, unit heads and auditors.
OVERSIGHT_READERS = {"vp.truong", "vhxh.thamdinh1", "vhxh.truong", "lanhdao", "kiemtoan"}
for _path in ("/danh-gia", "/danh-gia/nhiem-vu", "/tu-kiem-tra", "/chon-mau", "/kiem-tra"):
    PAGES[_path] = set(OVERSIGHT_READERS)
# Periodic reports (/bao-cao): VHXH's staff and the ward leader generate; the oversight area
# reads (workflow.permissions.report_refusal).
PAGES["/bao-cao"] = set(OVERSIGHT_READERS)
# One's own unit's self-inspection (to fill it in): members of a unit, including the outsider
# in their own ward (nothing opened there); not the leader (no unit membership), nor the
# auditor or administrator (no unit).
PAGES["/tu-kiem-tra/cua-don-vi"] = {
    "vp.canbo",
    "vp.truong",
    "vhxh.thamdinh1",
    "vhxh.truong",
    "outsider",
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


def _ward_with_an_outsider() -> Flask:
    """The demo ward, and an administrator of another ward (the outsider)."""
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
    return app


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    # a module-scoped SQLite database: these tests only read, and log in
    tmp = tmp_path_factory.mktemp("roles")
    mp = pytest.MonkeyPatch()
    mp.setenv("CCHC_DATABASE_URL", f"sqlite:///{tmp / 'roles.sqlite'}")
    mp.setenv("CCHC_INSTANCE_DIR", str(tmp / "instance"))
    app = _ward_with_an_outsider()
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


# --- evaluation, self-inspection, sampling and inspections: pages of one record, and forms ----


@pytest.fixture(scope="module")
def oversight_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A second ward database where VHXH opened the year's self-inspections, drew the sample
    (VP included) and entered a KPI measurement; the forms below are posted with inputs the
    domain refuses after its permission check, so nothing changes between roles."""
    tmp = tmp_path_factory.mktemp("roles-oversight")
    mp = pytest.MonkeyPatch()
    mp.setenv("CCHC_DATABASE_URL", f"sqlite:///{tmp / 'roles.sqlite'}")
    mp.setenv("CCHC_INSTANCE_DIR", str(tmp / "instance"))
    app = _ward_with_an_outsider()
    vhxh = _login(app, "vhxh.truong")
    token = _csrf(vhxh)
    for path, data in (
        ("/tu-kiem-tra/mo", {"nam": "2026"}),
        ("/chon-mau", {"nam": "2026", "seed": "roles", "include": ["VP"]}),
        (
            "/danh-gia/chi-tieu",
            {
                "nam": "2026",
                "kpi": "online_payment",
                "value": "91",
                "measured_on": "20/11/2026",
                "file": (BytesIO(b"%PDF-1.4\n%%EOF\n"), "kq.pdf"),
            },
        ),
    ):
        response = vhxh.post(path, data={**data, "csrf_token": token}, follow_redirects=True)
        assert "flash ok" in response.get_data(as_text=True), path
    record = re.search(r'href="/tu-kiem-tra/(\d+)">VP</a>', vhxh.get("/tu-kiem-tra").text)
    inspection = re.search(r'href="/kiem-tra/(\d+)">VP</a>', vhxh.get("/kiem-tra").text)
    sha = re.search(r"/danh-gia/chi-tieu/2026/([0-9a-f]{64})", vhxh.get("/danh-gia").text)
    assert record and inspection and sha
    yield {
        "app": app,
        "record": int(record.group(1)),
        "inspection": int(inspection.group(1)),
        "sha": sha.group(1),
    }
    database_of(app).engine.dispose()
    mp.undo()


def _oversight_get_table(r: int, i: int, sha: str) -> dict[str, tuple[set[str], set[str]]]:
    """path: (who gets 200, who gets 404); everyone else gets 403."""
    return {
        f"/tu-kiem-tra/{r}": (OVERSIGHT_READERS | {"vp.canbo"}, {"outsider"}),
        f"/kiem-tra/{i}": (set(OVERSIGHT_READERS), {"outsider"}),
        f"/danh-gia/chi-tieu/2026/{sha}": (set(OVERSIGHT_READERS), set()),
    }


@pytest.mark.parametrize("username", ROLES)
def test_oversight_records_by_role(oversight_web: dict[str, Any], username: str) -> None:
    client = _login(oversight_web["app"], username)
    table = _oversight_get_table(
        oversight_web["record"], oversight_web["inspection"], oversight_web["sha"]
    )
    for path, (allowed, hidden) in table.items():
        response = client.get(path)
        expected = 200 if username in allowed else 404 if username in hidden else 403
        assert response.status_code == expected, (username, path, response.status_code)
        response.close()


# Each form: the data posted, who gets past the permission check (and the message the domain
# gives them next), and the refusal everyone else sees. The outsider posts in their own ward:
# its records do not exist (404), and ward-level forms refuse them there.
_VP_FILL = "Chỉ cán bộ của VP được điền phiếu tự kiểm tra"
_INSPECT = "Chỉ Phòng Văn hóa - Xã hội hoặc Lãnh đạo UBND phường được thực hiện việc kiểm tra"
_SCHEDULERS = {"vhxh.truong", "lanhdao"}
_VHXH_STAFF_OR_LEADER = {"vhxh.truong", "vhxh.thamdinh1", "lanhdao"}


def _oversight_forms(r: int, i: int) -> list[tuple[str, dict[str, str], set[str], str, str]]:
    return [
        (
            "/danh-gia/chi-tieu",
            {"kpi": "online_payment", "value": "9x", "measured_on": "20/11/2026"},
            {"vhxh.truong", "vhxh.thamdinh1"},
            "không phải là số",
            "Chỉ đơn vị chủ trì nhiệm vụ của chỉ tiêu hoặc Phòng Văn hóa - Xã hội",
        ),
        (
            "/tu-kiem-tra/mo",
            {"nam": "2031"},
            _SCHEDULERS,
            "chưa có kế hoạch cải cách hành chính năm 2031",
            "mở kỳ tự kiểm tra",
        ),
        (
            "/tu-kiem-tra/khoa-so",
            {"nam": "2031"},
            {"lanhdao"},
            "Chưa khóa sổ được năm 2031",
            "Chỉ Lãnh đạo UBND phường được khóa sổ",
        ),
        (
            "/chon-mau",
            {"nam": "2031"},
            _SCHEDULERS,
            "chưa có kế hoạch cải cách hành chính năm 2031",
            "được chọn mẫu kiểm tra",
        ),
        (
            f"/tu-kiem-tra/{r}/tieu-chi",
            {"code": "nope", "self_score": "1"},
            {"vp.canbo", "vp.truong"},
            "Không có tiêu chí mã",
            _VP_FILL,
        ),
        (
            f"/tu-kiem-tra/{r}/gui",
            {},
            {"vp.truong"},
            "Chưa gửi được",
            "Chỉ Trưởng đơn vị (VP) được gửi",
        ),
        (
            f"/tu-kiem-tra/{r}/xac-nhan",
            {"decision": "return", "reason": "x"},
            {"vhxh.truong"},
            "đang ở trạng thái “Đang điền”",
            "Chỉ Trưởng phòng Văn hóa - Xã hội được xác nhận",
        ),
        (
            f"/kiem-tra/{i}/ke-hoach",
            {"plan_text": "", "team": ""},
            _VHXH_STAFF_OR_LEADER,
            "ít nhất một thành viên đoàn",
            _INSPECT,
        ),
        (
            f"/kiem-tra/{i}/ket-qua",
            {"findings": ""},
            _VHXH_STAFF_OR_LEADER,
            "Cần ghi kết quả kiểm tra",
            _INSPECT,
        ),
        (
            f"/kiem-tra/{i}/ket-luan",
            {"number": "1/TB-UBND", "conclusion": "x"},
            {"lanhdao"},
            "đang ở bước",
            "Chỉ Lãnh đạo UBND phường được ban hành thông báo kết luận",
        ),
        (f"/kiem-tra/{i}/ket-thuc", {}, _SCHEDULERS, "đang ở bước", _INSPECT),
    ]


@pytest.mark.parametrize("username", ROLES)
def test_oversight_forms_by_role(oversight_web: dict[str, Any], username: str) -> None:
    client = _login(oversight_web["app"], username)
    token = _csrf(client)
    for path, data, allowed, next_message, refusal in _oversight_forms(
        oversight_web["record"], oversight_web["inspection"]
    ):
        response = client.post(
            path, data={**data, "nam": data.get("nam", "2026"), "csrf_token": token}
        )
        if username == "outsider" and re.search(r"/\d+/", path):
            assert response.status_code == 404, (username, path)
            continue
        assert response.status_code == 302, (username, path, response.status_code)
        page = client.get(response.headers["Location"]).get_data(as_text=True)
        shown = " ".join(
            html.unescape(m) for m in re.findall(r'<p class="flash error">([^<]*)</p>', page)
        )
        if username == "outsider" and path == "/danh-gia/chi-tieu":
            assert "Phường chưa có kế hoạch cải cách hành chính năm 2026" in shown
        elif username in allowed:
            assert next_message in shown and refusal not in shown, (username, path, shown)
        else:
            assert refusal in shown and next_message not in shown, (username, path, shown)


def test_oversight_forms_need_csrf_and_a_login(oversight_web: dict[str, Any]) -> None:
    app = oversight_web["app"]
    forms = _oversight_forms(oversight_web["record"], oversight_web["inspection"])
    client = _login(app, "lanhdao")
    anonymous = app.test_client()
    login_page = anonymous.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', login_page).group(1)  # type: ignore[union-attr]
    for path, data, *_ in forms:
        assert client.post(path, data=data).status_code == 400, path
        response = anonymous.post(path, data={**data, "csrf_token": token})
        assert response.status_code == 302 and "/login" in response.headers["Location"], path
    for path in _oversight_get_table(
        oversight_web["record"], oversight_web["inspection"], oversight_web["sha"]
    ):
        response = anonymous.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path
