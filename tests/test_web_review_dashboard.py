"""The work list, VHXH's review queue and the leadership's dashboard in the browser's place
(Flask's test client): who may open them, what they show on known work, the filters, and
that nothing inline (script or style) reaches the page, as the CSP requires."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import create_app
from app.cli import main
from app.database import database_of
from workflow.bootstrap import DEMO_PASSWORD
from workflow.clock import WARD_TZ, FixedClock
from workflow.db import make_engine
from workflow.engine import Engine
from workflow.evidence import LocalEvidenceStore
from workflow.models import PlanTask, TaskInstance, Unit, User
from workflow.trail import AuditTrail

PDF = b"%PDF-1.4\n% bao cao\n%%EOF\n"
AS_OF = date(2026, 3, 10)  # Tuesday


@pytest.fixture
def web(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CCHC_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("CCHC_INSTANCE_DIR", str(tmp_path / "instance"))
    assert CliRunner().invoke(main, ["init", "--demo"], catch_exceptions=False).exit_code == 0
    # "today" is read at the request boundary: pin it so statuses do not depend on the date
    # the suite runs
    for module in ("app.pages", "app.dashboard", "app.review"):
        monkeypatch.setattr(f"{module}.ward_today", lambda: AS_OF)
    app = create_app({"TESTING": True})
    yield app
    database_of(app).engine.dispose()


def _login(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    response = client.post(
        "/login",
        data={"username": username, "password": DEMO_PASSWORD, "csrf_token": token.group(1)},
    )
    assert response.status_code == 302
    return client


def _get(client: FlaskClient, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, path
    page = response.get_data(as_text=True)
    assert "<script" not in page and 'style="' not in page and "<style" not in page
    return page


def _vn(day: date, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=WARD_TZ).astimezone(UTC)


class Ward:
    """The committed demo ward, changed through the engine or directly on the rows."""

    def __init__(self, session: Session, engine: Engine, clock: FixedClock) -> None:
        self.session, self.engine, self.clock = session, engine, clock

    def user(self, username: str) -> User:
        return self.session.scalars(select(User).where(User.username == username)).one()

    def instance(self, number: int, unit: str, period: int = 0) -> TaskInstance:
        stmt = (
            select(TaskInstance)
            .join(PlanTask, TaskInstance.plan_task_id == PlanTask.id)
            .join(Unit, TaskInstance.unit_id == Unit.id)
            .where(PlanTask.number == number, Unit.code == unit)
            .order_by(TaskInstance.due_date)
        )
        return list(self.session.scalars(stmt))[period]

    def submit(self, inst: TaskInstance, member: str, head: str) -> None:
        self.engine.fire(inst.id, "start", self.user(member))
        for i, product in enumerate(p["name"] for p in inst.plan_task.products):
            self.engine.add_evidence(
                inst.id,
                self.user(member),
                data=PDF + str(i).encode(),
                filename=f"bc-{i}.pdf",
                product=product,
            )
        self.engine.fire(inst.id, "submit", self.user(head))


@contextmanager
def _ward(url: str, store: Path) -> Iterator[Ward]:
    db = make_engine(url)
    try:
        with Session(db, expire_on_commit=False) as session:
            clock = FixedClock(_vn(date(2026, 2, 2)))
            engine = Engine(session, AuditTrail(), clock, store=LocalEvidenceStore(store))
            yield Ward(session, engine, clock)
            session.commit()
    finally:
        db.dispose()


def _known_work(url: str, store: Path) -> dict[str, int]:
    """Set on the rows (see tests/workflow/test_reports.py for the same work counted there)."""
    with _ward(url, store) as ward:
        w = {
            "A": ward.instance(1, "VHXH"),  # accepted 13/01, due 14/01: on time
            "B": ward.instance(2, "VHXH"),  # accepted 10/03, due 09/03: late
            "C": ward.instance(19, "TTPVHCC"),  # accepted 04/03 23:30, due 04/03: on time
            "D": ward.instance(20, "VP"),  # accepted 11/03, due 04/03: open and late on 10/03
            "E": ward.instance(24, "KTHTDT"),  # cancelled
            "F": ward.instance(3, "VHXH"),  # accepted 05/03, due 31/12: on time
            "G": ward.instance(11, "VP"),  # submitted, due 31/12
        }
        for key, when in (
            ("A", _vn(date(2026, 1, 13))),
            ("B", _vn(date(2026, 3, 10))),
            ("C", _vn(date(2026, 3, 4), 23, 30)),
            ("D", _vn(date(2026, 3, 11))),
            ("F", _vn(date(2026, 3, 5))),
        ):
            w[key].state, w[key].accepted_at = "accepted", when
        w["E"].state = "cancelled"
        w["G"].state = "evidence_submitted"
        return {key: inst.id for key, inst in w.items()}


def _rows(page: str) -> list[str]:
    """The work list's rows, by their deadline-status class."""
    return re.findall(r'<tr class="status-([a-z_]+) state-', page)


# --- who may open what ------------------------------------------------------------------------

ACCESS = {
    # username: (review queue, dashboard)
    "vp.canbo": (403, 403),
    "vp.truong": (403, 200),  # a unit head follows the plan's progress
    "vhxh.thamdinh1": (200, 200),
    "vhxh.truong": (200, 200),
    "lanhdao": (200, 200),
    "kiemtoan": (403, 200),
    "quantri": (403, 403),
}


@pytest.mark.db
def test_the_pages_open_for_the_right_roles(web: Flask) -> None:
    anonymous = web.test_client()
    for path in ("/", "/tham-dinh", "/dieu-hanh"):
        response = anonymous.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]

    for username, (queue, dashboard) in ACCESS.items():
        client = _login(web, username)
        home = _get(client, "/")
        page = _get(client, "/tham-dinh", queue)
        if queue == 403:
            assert "Bạn không có quyền truy cập hàng chờ thẩm định." in page
            assert 'href="/tham-dinh"' not in home  # the menu shows only what opens
        else:
            assert "Hàng chờ thẩm định" in page and 'href="/tham-dinh"' in home
        page = _get(client, "/dieu-hanh", dashboard)
        if dashboard == 403:
            assert "Bạn không có quyền truy cập bảng điều hành." in page
            assert "Nhiệm vụ quá hạn" not in page and "<svg" not in page
            assert 'href="/dieu-hanh"' not in home
        else:
            assert "Trạng thái theo dõi nhiệm vụ" in page and 'href="/dieu-hanh"' in home


# --- "Việc của đơn vị" ------------------------------------------------------------------------


@pytest.mark.db
def test_the_work_list_is_coloured_and_filtered(
    web: Flask, fresh_db_url: str, tmp_path: Path
) -> None:
    ids = _known_work(fresh_db_url, tmp_path / "evidence")
    member = _login(web, "vp.canbo")

    page = _get(member, "/")
    assert "Việc của đơn vị: VP" in page and "Xem tất cả đơn vị" in page
    rows = _rows(page)
    assert len(rows) == 23  # VP's instances
    assert rows.count("overdue") == 4 and rows.count("on_time") == 19  # D is late until 11/03
    assert "Quá hạn: 4" in page and "Trong hạn: 19" in page
    assert f'href="/nhiem-vu/{ids["D"]}"' in page
    assert '<tr class="status-on_time state-evidence_submitted">' in page  # G
    for label in ("Lĩnh vực", "Kỳ", "Trạng thái", "Tình trạng thời hạn", "Đã nộp sản phẩm"):
        assert label in page
    assert "04/03/2026" in page  # dates dd/mm/yyyy
    assert "Báo cáo định kỳ chưa lập" not in page  # the reports are VHXH's work

    vhxh = _get(_login(web, "vhxh.canbo"), "/")
    reports = vhxh[vhxh.index("Báo cáo định kỳ chưa lập") :]
    assert re.search(r"Quý I/2026</td><td>04/03/2026</td><td>Quá hạn</td>", reports)
    assert re.search(r"Năm 2026</td><td>04/12/2026</td><td>Trong hạn</td>", reports)

    section = _get(member, "/?section=II")
    assert len(_rows(section)) == 7
    assert '<option value="II" selected>' in section
    assert "Cải cách thể chế" in section
    assert re.findall(r"<small>\((\w+)\)</small>", section) == ["II"] * 7
    quarter = _get(member, "/?period=Qu%C3%BD+I%2F2026")
    assert _rows(quarter) == ["overdue"] * 4
    assert '<option value="Quý I/2026" selected>' in quarter
    submitted = _get(member, "/?state=evidence_submitted")
    assert _rows(submitted) == ["on_time"] and f'href="/nhiem-vu/{ids["G"]}"' in submitted
    assert _rows(_get(member, "/?status=overdue")) == ["overdue"] * 4
    both = _get(member, "/?section=II&state=evidence_submitted")
    assert _rows(both) == ["on_time"]
    assert len(_rows(_get(member, "/?section=XX&state=nope&period=&status=late"))) == 23

    everyone = _get(member, "/?unit=all")
    assert "Việc của đơn vị: tất cả đơn vị" in everyone
    all_rows = _rows(everyone)
    assert len(all_rows) == 116
    assert all_rows.count("done") == 4 and all_rows.count("cancelled") == 1
    assert all_rows.count("overdue") == 16
    assert 'name="unit" value="all"' in everyone  # the filters keep the unit choice
    done = _get(member, "/?unit=all&status=done")
    assert _rows(done) == ["done"] * 4 and "Đã hoàn thành" in done
    task_20 = _get(member, "/?unit=all&number=20")
    assert len(_rows(task_20)) == 12  # VP, VHXH and KTHTDT, four quarters each
    assert "Nhiệm vụ số 20" in task_20


# --- the review queue -------------------------------------------------------------------------


@pytest.mark.db
def test_the_review_queue_oldest_first_with_what_each_may_do(
    web: Flask, fresh_db_url: str, tmp_path: Path
) -> None:
    with _ward(fresh_db_url, tmp_path / "evidence") as ward:
        earlier, later = ward.instance(12, "VP"), ward.instance(11, "VP")
        own = ward.instance(1, "VHXH")
        ward.clock.advance_to(_vn(date(2026, 2, 3), 8, 15))
        ward.submit(earlier, "vp.canbo", "vp.truong")
        ward.engine.fire(
            earlier.id,
            "review",
            ward.user("vhxh.thamdinh1"),
            findings="Đạt",
            recommendation="accept",
        )
        ward.clock.advance_to(_vn(date(2026, 3, 2), 10, 5))
        ward.submit(later, "vp.canbo", "vp.truong")
        ward.clock.advance_to(_vn(date(2026, 3, 3), 14, 0))
        ward.submit(own, "vhxh.canbo", "vhxh.truong")
        ward.engine.fire(
            own.id, "review", ward.user("vhxh.thamdinh2"), findings="Đạt", recommendation="accept"
        )
        ids = (earlier.id, later.id, own.id)
    earlier_id, later_id, own_id = ids

    reviewer = _login(web, "vhxh.thamdinh1")
    page = _get(reviewer, "/tham-dinh")
    order = [int(i) for i in re.findall(r'<td><a href="/nhiem-vu/(\d+)">\d+</a></td>', page)]
    assert order == [earlier_id, later_id, own_id]  # oldest submission first
    assert "03/02/2026 08:15" in page and "02/03/2026 10:05" in page  # Hà Nội time
    assert "Đã thẩm định" in page and "Đã nộp sản phẩm" in page
    assert "Trưởng Văn phòng HĐND-UBND" in page
    assert "Cán bộ thẩm định 1 (VHXH): đề xuất nghiệm thu" in page
    # thamdinh1 may review the one waiting for review; the others wait for a decider
    assert page.count("Thẩm định, Trả lại để hoàn thiện") == 1
    assert page.count("Chờ người khác") == 2
    assert "3 nhiệm vụ" in page and "bạn có thể xử lý 1" in page
    mine = _get(reviewer, "/tham-dinh?cua_toi=1")
    assert re.findall(r'<td><a href="/nhiem-vu/(\d+)">\d+</a></td>', mine) == [str(later_id)]

    approver = _login(web, "vhxh.truong")  # decides VP's work, not VHXH's own
    page = _get(approver, "/tham-dinh")
    assert page.count("Trả lại để hoàn thiện, Nghiệm thu") == 1
    assert "bạn có thể xử lý 1" in page
    leader = _login(web, "lanhdao")  # VHXH's own work goes to the ward leader
    page = _get(leader, "/tham-dinh")
    assert page.count("Trả lại để hoàn thiện, Nghiệm thu") == 1
    row = page[page.index(f'<a href="/nhiem-vu/{own_id}">') :]
    assert row.index("Nghiệm thu") < row.index("</tr>")


@pytest.mark.db
def test_an_empty_queue_says_so(web: Flask) -> None:
    page = _get(_login(web, "vhxh.thamdinh2"), "/tham-dinh")
    assert "Không có sản phẩm nào chờ thẩm định." in page


# --- the dashboard ----------------------------------------------------------------------------


def _national(page: str) -> dict[str, int]:
    return {
        code: int(count)
        for code, count in re.findall(
            r'<tr class="national-([a-z_]+)">.*?</td><td>[^<]+</td><td>(\d+)</td></tr>', page
        )
    }


@pytest.mark.db
def test_the_dashboard_on_known_work(web: Flask, fresh_db_url: str, tmp_path: Path) -> None:
    _known_work(fresh_db_url, tmp_path / "evidence")
    leader = _login(web, "lanhdao")

    page = _get(leader, "/dieu-hanh")  # today is pinned to 10/03/2026
    assert "Số liệu tính đến ngày <strong>10/03/2026</strong>" in page
    assert _national(page) == {
        "hoan_thanh_dung_han": 3,
        "hoan_thanh_qua_han": 1,
        "chua_hoan_thanh_trong_han": 95,
        "chua_hoan_thanh_qua_han": 16,
    }
    for label in (
        "Hoàn thành đúng hạn",
        "Hoàn thành quá hạn",
        "Chưa hoàn thành trong hạn",
        "Chưa hoàn thành quá hạn",
    ):
        assert label in page
    assert "115 nhiệm vụ (không kể 1 đã hủy)" in page and "<strong>3,5%</strong>" in page
    # section I: 3 of 13 accepted; VHXH 3 of 39; section III 1 of 76
    assert (
        "<tr><td>I</td><td>Chỉ đạo điều hành, kiểm tra và tuyên truyền</td>"
        "<td>13</td><td>3</td><td>0</td><td>23,1%</td></tr>"
    ) in page
    assert "<td>76</td><td>1</td><td>16</td><td>1,3%</td>" in page
    assert (
        "<tr><td>VHXH</td><td>Phòng VH-XH</td><td>39</td><td>3</td><td>4</td><td>7,7%</td>" in page
    )
    assert "<td>II</td><td>Cải cách thể chế</td><td>7</td><td>0</td><td>0</td><td>0%</td>" in page
    # the overdue list: 16 rows, 4 working days late (05, 06, 09, 10/03)
    assert "Nhiệm vụ quá hạn (16)" in page
    overdue = page[page.index('<table class="overdue">') : page.index("Chỉ tiêu của Kế hoạch")]
    assert overdue.count('<tr class="status-overdue">') == 16
    assert re.findall(r"<td>04/03/2026</td>\s*<td>(\d+)</td>", overdue) == ["4"] * 16
    # the plan's targets
    assert "Mức độ hài lòng của người dân, tổ chức về giải quyết thủ tục hành chính" in page
    assert "≥ 95%" in page and "≥ 20%" in page and "Nhiệm vụ 3" in page
    # the year's self-inspection coverage, and the periodic reports' deadlines: Q1 was due on
    # 04/03 and is overdue on 10/03 (none generated); Q2 (due 04/06) is on time
    assert "0/5 đơn vị đã gửi, 0/5 đơn vị đã được xác nhận" in page
    deadlines = page[page.index('<section class="report-deadlines">') :]
    assert re.search(r"Quý I/2026</td><td>04/03/2026</td>\s*<td>Quá hạn</td>", deadlines)
    assert re.search(r"Quý II/2026</td><td>04/06/2026</td>\s*<td>Trong hạn</td>", deadlines)
    # charts: inline SVG bars, section I's filled bar 3/13 of 380 px
    assert page.count('<figure class="chart">') == 3
    assert 'width="87" height="18" fill="#1d7a35"' in page
    assert "23,1%</text>" in page and "<title>" in page

    day_before = _get(leader, "/dieu-hanh?as_of=09/03/2026")
    assert "Số liệu tính đến ngày <strong>09/03/2026</strong>" in day_before
    assert _national(day_before) == {
        "hoan_thanh_dung_han": 3,
        "hoan_thanh_qua_han": 0,
        "chua_hoan_thanh_trong_han": 96,
        "chua_hoan_thanh_qua_han": 16,
    }
    iso = _get(leader, "/dieu-hanh?as_of=2026-01-14")
    assert _national(iso)["hoan_thanh_dung_han"] == 1 and "Nhiệm vụ quá hạn (0)" in iso
    assert "Không có nhiệm vụ quá hạn." in iso

    wrong = _get(leader, "/dieu-hanh?as_of=31/02/2026", 400)
    assert "“31/02/2026” không phải ngày hợp lệ (dd/mm/yyyy)" in wrong
    assert "Số liệu tính đến ngày <strong>10/03/2026</strong>" in wrong
    assert _get(leader, "/dieu-hanh?as_of=%3Cb%3E", 400).count("<b>") == 0  # escaped


@pytest.mark.db
def test_the_dashboard_for_a_reviewer_and_an_auditor(web: Flask) -> None:
    for username in ("vhxh.thamdinh1", "kiemtoan"):
        page = _get(_login(web, username), "/dieu-hanh")
        assert "Tiến độ theo lĩnh vực" in page and "Tiến độ theo đơn vị" in page
        assert "Chỉ tiêu của Kế hoạch" in page
