"""The evaluation, self-inspection, sampling and inspection pages in the browser's place (Flask's
test client), on SQLite and PostgreSQL: what they show on known work, every form, and the
engine's refusals shown as Vietnamese messages (never a 500)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from fractions import Fraction
from io import BytesIO
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
from definitions.calendar import load_calendar
from definitions.rubric import load_rubric
from workflow import sampling
from workflow.bootstrap import DEMO_PASSWORD
from workflow.clock import WARD_TZ
from workflow.db import make_engine
from workflow.evaluation import evaluate
from workflow.models import Organization, PlanTask, TaskInstance, Unit
from workflow.states import TaskState

pytestmark = pytest.mark.db

TODAY = date(2026, 11, 30)  # a Monday
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=WARD_TZ).astimezone(UTC)
PDF = b"%PDF-1.4\n% ket qua do\n%%EOF\n"
RUBRIC = load_rubric()
IN_SCOPE = ["KTHTDT", "TTDVSNC", "TTPVHCC", "VHXH", "VP"]


@pytest.fixture
def web(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CCHC_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("CCHC_INSTANCE_DIR", str(tmp_path / "instance"))
    assert CliRunner().invoke(main, ["init", "--demo"], catch_exceptions=False).exit_code == 0
    # "today" and "now" are read at the request boundary: pin them
    for module in ("app.pages", "app.dashboard", "app.review", "app.oversight"):
        monkeypatch.setattr(f"{module}.ward_today", lambda: TODAY)
    monkeypatch.setattr("app.oversight.now", lambda: NOW)
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


def _clean(page: str) -> str:
    assert "<script" not in page and 'style="' not in page and "<style" not in page
    return page


def _get(client: FlaskClient, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, (path, response.status_code)
    return _clean(response.get_data(as_text=True))


def _csrf(client: FlaskClient) -> str:
    page = client.get("/ho-so").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    return token.group(1)


def _flashes(page: str) -> list[tuple[str, str]]:
    return [
        (kind, html.unescape(text))
        for kind, text in re.findall(r'<p class="flash (ok|error|info)">([^<]*)</p>', page)
    ]


def _post(
    client: FlaskClient, path: str, data: dict[str, object], **kw: object
) -> list[tuple[str, str]]:
    """POST a form (with its CSRF token), follow the redirect; the messages shown."""
    response = client.post(
        path, data={**data, "csrf_token": _csrf(client)}, follow_redirects=True, **kw
    )
    assert response.status_code == 200, (path, response.status_code)
    return _flashes(_clean(response.get_data(as_text=True)))


def _ok(messages: list[tuple[str, str]], text: str) -> None:
    assert any(kind == "ok" and text in m for kind, m in messages), messages


def _refused(messages: list[tuple[str, str]], text: str) -> None:
    assert any(kind == "error" and text in m for kind, m in messages), messages


@contextmanager
def _rows(url: str) -> Iterator[Session]:
    db = make_engine(url)
    try:
        with Session(db, expire_on_commit=False) as session:
            yield session
            session.commit()
    finally:
        db.dispose()


def _instance(session: Session, number: int, unit: str) -> TaskInstance:
    stmt = (
        select(TaskInstance)
        .join(PlanTask, TaskInstance.plan_task_id == PlanTask.id)
        .join(Unit, TaskInstance.unit_id == Unit.id)
        .where(PlanTask.number == number, Unit.code == unit)
        .order_by(TaskInstance.due_date)
        .limit(1)
    )
    return session.scalars(stmt).one()


def _vn(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 9, tzinfo=WARD_TZ).astimezone(UTC)


# --- evaluation -------------------------------------------------------------------------------


def test_the_evaluation_shows_the_domains_figures_down_to_instances(
    web: Flask, fresh_db_url: str
) -> None:
    with _rows(fresh_db_url) as session:
        on_time = _instance(session, 1, "VHXH")  # due 14/01
        late = _instance(session, 2, "VHXH")  # due 09/03
        on_time.state, on_time.accepted_at = "accepted", _vn(date(2026, 1, 13))
        late.state, late.accepted_at = "accepted", _vn(date(2026, 3, 10))
        ids = (on_time.id, late.id)

    client = _login(web, "lanhdao")
    page = _get(client, "/danh-gia?nam=2026&as_of=10/03/2026")
    with _rows(fresh_db_url) as session:
        org = session.scalars(select(Organization)).one()
        expected = evaluate(
            session,
            org,
            year=2026,
            as_of=date(2026, 3, 10),
            calendar=load_calendar(),
            rubric=RUBRIC,
        )
    assert "Tính đến ngày <strong>10/03/2026</strong>" in page
    assert f"{expected.overall.led} nhiệm vụ" in page
    assert f"đã nghiệm thu {expected.overall.accepted}" == "đã nghiệm thu 2"
    assert f"đã nghiệm thu {expected.overall.accepted}," in page
    # the audit tree the figures were computed at
    assert f"kích thước cây <strong>{expected.audit.size}</strong>" in page
    assert expected.audit.root in page
    # tables by section and by unit, the four statuses, the charts drawn in SVG
    for key, figures in expected.by_unit.items():
        assert f"don_vi={key}" in page
        row = re.search(rf"don_vi={key}\">{key}</a></td><td>[^<]*</td>\s*<td>(\d+)</td>", page)
        assert row and int(row.group(1)) == figures.led, key
    for key in expected.by_section:
        assert f"linh_vuc={key}" in page
    for label in ("Hoàn thành đúng hạn", "Hoàn thành quá hạn", "Chưa hoàn thành quá hạn"):
        assert label in page
    assert page.count("<svg") >= 2 and "<rect" in page
    # scores per unit with each criterion's points
    for score in expected.scores:
        assert f'don_vi={score.unit}">{score.unit}</a><br>' in page
    for criterion in RUBRIC.criteria:
        assert html.escape(criterion.title) in page
    assert "Chưa đo" in page  # no KPI measured yet

    # drill-down: the unit's instances, each linking to its task page
    unit_page = _get(client, "/danh-gia/nhiem-vu?nam=2026&as_of=10/03/2026&don_vi=VHXH")
    assert "Đơn vị VHXH" in unit_page
    assert unit_page.count('<tr class="national-') == expected.by_unit["VHXH"].led
    for instance_id, status in zip(ids, ("Hoàn thành đúng hạn", "Hoàn thành quá hạn"), strict=True):
        row = re.search(rf'<a href="/nhiem-vu/{instance_id}">.*?</tr>', unit_page, flags=re.DOTALL)
        assert row and status in row.group(0)
    late_row = re.search(rf'<a href="/nhiem-vu/{ids[1]}">.*?</tr>', unit_page, flags=re.DOTALL)
    assert late_row and "<td>1</td><td>0</td>" in late_row.group(0)  # 1 working day late
    section = next(iter(expected.by_section))
    section_page = _get(client, f"/danh-gia/nhiem-vu?nam=2026&as_of=10/03/2026&linh_vuc={section}")
    assert section_page.count('<tr class="national-') == expected.by_section[section].led

    # what cannot be read is said, not crashed on
    bad = _get(client, "/danh-gia?as_of=31/02/2026", status=400)
    assert "không phải ngày hợp lệ" in bad
    missing = _get(client, "/danh-gia?nam=2031", status=404)
    assert "chưa có kế hoạch cải cách hành chính năm 2031" in missing
    _get(client, "/danh-gia/nhiem-vu?nam=2026&don_vi=NOPE", status=404)


def test_a_kpi_measurement_is_entered_with_its_file_by_those_allowed(web: Flask) -> None:
    lead = _login(web, "ttpvhcc.truong")  # TTPVHCC leads the online-payment task
    page = _get(lead, "/danh-gia?nam=2026")
    assert 'value="online_payment"' in page and 'value="sipas"' not in page
    messages = _post(
        lead,
        "/danh-gia/chi-tieu",
        {
            "nam": "2026",
            "kpi": "online_payment",
            "value": "91,5",
            "measured_on": "2026-11-20",
            "note": "Số liệu Cổng DVC quốc gia",
            "file": (_pdf(), "Báo cáo thanh toán.pdf"),
        },
        content_type="multipart/form-data",
    )
    _ok(messages, "Đã ghi kết quả đo chỉ tiêu: 91.5 (ngày 20/11/2026)")
    page = _get(lead, "/danh-gia?nam=2026")
    row = re.search(r"<tr class=\"kpi-met\">.*?</tr>", page, flags=re.DOTALL)
    assert row and "91,5%" in row.group(0) and "Đạt" in row.group(0)
    assert "20/11/2026" in row.group(0)
    link = re.search(r'href="(/danh-gia/chi-tieu/2026/[0-9a-f]{64})"', row.group(0))
    assert link
    download = lead.get(link.group(1))
    assert download.status_code == 200 and download.data == PDF
    download.close()
    assert "Số liệu Cổng DVC quốc gia" in page  # the measurement history

    # refusals come back as messages: another unit, a bad value, a missing file
    other = _login(web, "vp.truong")
    assert 'value="online_payment"' not in _get(other, "/danh-gia?nam=2026")
    _refused(
        _post(
            other,
            "/danh-gia/chi-tieu",
            {
                "nam": "2026",
                "kpi": "online_payment",
                "value": "95",
                "measured_on": "20/11/2026",
                "file": (_pdf(), "x.pdf"),
            },
            content_type="multipart/form-data",
        ),
        "Chỉ đơn vị chủ trì nhiệm vụ của chỉ tiêu hoặc Phòng Văn hóa - Xã hội",
    )
    _refused(
        _post(
            lead,
            "/danh-gia/chi-tieu",
            {"nam": "2026", "kpi": "online_payment", "value": "9x", "measured_on": "20/11/2026"},
        ),
        "không phải là số",
    )
    _refused(
        _post(
            lead,
            "/danh-gia/chi-tieu",
            {"nam": "2026", "kpi": "online_payment", "value": "90", "measured_on": "2026-11-20"},
        ),
        "Cần tải lên tài liệu kiểm chứng",
    )
    _refused(
        _post(
            lead,
            "/danh-gia/chi-tieu",
            {"nam": "2026", "kpi": "online_payment", "value": "90", "measured_on": "hôm qua"},
        ),
        "Ngày đo “hôm qua” không phải ngày hợp lệ",
    )
    # without the CSRF token the form is refused outright
    assert lead.post("/danh-gia/chi-tieu", data={"kpi": "online_payment"}).status_code == 400
    # a file of no measurement of this ward is not served
    assert lead.get("/danh-gia/chi-tieu/2026/" + "0" * 64).status_code == 404


def _pdf() -> BytesIO:
    """A fresh stream of the PDF for each upload (the test client reads it to the end)."""
    return BytesIO(PDF)


# --- self-inspection ---------------------------------------------------------------------------


def _record_id(client: FlaskClient, unit: str) -> int:
    page = _get(client, "/tu-kiem-tra?nam=2026")
    found = re.search(rf'href="/tu-kiem-tra/(\d+)">{unit}</a>', page)
    assert found, unit
    return int(found.group(1))


def _version(client: FlaskClient, record_id: int) -> str:
    page = _get(client, f"/tu-kiem-tra/{record_id}")
    found = re.search(r'name="version" value="(\d+)"', page)
    assert found
    return found.group(1)


def _fill_all(client: FlaskClient, record_id: int) -> None:
    for i, criterion in enumerate(RUBRIC.criteria):
        data: dict[str, object] = {
            "code": criterion.code,
            "self_score": str(criterion.max_points),
            "explanation": "" if i % 2 == 0 else "Kết quả thể hiện trong báo cáo năm.",
            "document": ["Báo cáo số 12/BC-UBND", "", ""] if i % 2 == 0 else ["", "", ""],
            "location": ["mục II.1", "", ""] if i % 2 == 0 else ["", "", ""],
        }
        _ok(_post(client, f"/tu-kiem-tra/{record_id}/tieu-chi", data), "Đã lưu")


def test_self_inspection_from_opening_to_closing_the_year(
    web: Flask, fresh_db_url: str, tmp_path: Path
) -> None:
    # evidence on one of VP's instances before the year is opened: the prefill links to it
    member, head = _login(web, "vp.canbo"), _login(web, "vp.truong")
    with _rows(fresh_db_url) as session:
        instance = _instance(session, 20, "VP")
        instance_id = instance.id
    _post(member, f"/nhiem-vu/{instance_id}/thao-tac", {"event": "start"})
    product = re.search(
        r'<select name="product"><option>([^<]+)</option>', _get(member, f"/nhiem-vu/{instance_id}")
    )
    assert product
    _ok(
        _post(
            member,
            f"/nhiem-vu/{instance_id}/tai-lieu",
            {"product": html.unescape(product.group(1)), "file": (_pdf(), "bao-cao-vp.pdf")},
            content_type="multipart/form-data",
        ),
        "Đã tải lên",
    )

    approver, leader = _login(web, "vhxh.truong"), _login(web, "lanhdao")
    page = _get(approver, "/tu-kiem-tra?nam=2026")
    assert "0/5 đơn vị đã gửi, 0/5 đơn vị đã được xác nhận" in page
    assert "Chưa mở phiếu" in page and "Mở kỳ tự kiểm tra năm 2026" in page
    # a unit head may not open the year: no button, and the refusal if posted anyway
    assert "Mở kỳ tự kiểm tra" not in _get(head, "/tu-kiem-tra?nam=2026")
    _refused(_post(head, "/tu-kiem-tra/mo", {"nam": "2026"}), "Chỉ lãnh đạo Phòng Văn hóa")
    _ok(_post(approver, "/tu-kiem-tra/mo", {"nam": "2026"}), "Đã mở phiếu tự kiểm tra năm 2026")
    _ok(_post(approver, "/tu-kiem-tra/mo", {"nam": "2026"}), "không mở thêm phiếu nào")
    # closing before 100% coverage: refused, with the coverage line
    _refused(
        _post(leader, "/tu-kiem-tra/khoa-so", {"nam": "2026"}),
        "Chưa khóa sổ được năm 2026: 0/5 đơn vị đã gửi, 0/5 đơn vị đã được xác nhận",
    )

    # the member reaches the unit's record from the menu and sees the prefill
    own = member.get("/tu-kiem-tra/cua-don-vi")
    assert own.status_code == 302
    record = int(own.headers["Location"].rsplit("/", 1)[1])
    assert record == _record_id(approver, "VP")
    page = _get(member, f"/tu-kiem-tra/{record}")
    assert f'href="/nhiem-vu/{instance_id}"' in page
    evidence_link = re.search(r'<a href="(/tai-lieu/\d+)">bao-cao-vp.pdf</a>', page)
    assert evidence_link
    evidence = member.get(evidence_link.group(1))
    assert evidence.status_code == 200 and evidence.data.startswith(b"%PDF")
    evidence.close()
    assert page.count('name="document"') == len(RUBRIC.criteria) * 3  # blank rows
    assert "Gửi báo cáo tự kiểm tra" not in page  # only the head submits
    # another unit's member may not read it; another unit's record is out of reach
    assert _get(_login(web, "kthtdt.canbo"), f"/tu-kiem-tra/{record}", status=403)

    first = RUBRIC.criteria[0]
    _refused(
        _post(
            member,
            f"/tu-kiem-tra/{record}/tieu-chi",
            {"code": first.code, "self_score": "99", "document": [""], "location": [""]},
        ),
        "điểm tự chấm phải trong khoảng",
    )
    _refused(
        _post(
            member,
            f"/tu-kiem-tra/{record}/tieu-chi",
            {"code": first.code, "self_score": "1", "document": ["Báo cáo"], "location": [""]},
        ),
        "phải ghi rõ văn bản và mục/trang",
    )
    _refused(_post(head, f"/tu-kiem-tra/{record}/gui", {}), "Chưa gửi được")
    _refused(
        _post(
            _login(web, "kthtdt.truong"),
            f"/tu-kiem-tra/{record}/tieu-chi",
            {"code": first.code, "self_score": "1"},
        ),
        "Chỉ cán bộ của VP được điền phiếu tự kiểm tra",
    )
    _fill_all(member, record)
    page = _get(member, f"/tu-kiem-tra/{record}")
    assert 'value="Báo cáo số 12/BC-UBND"' in page and 'value="mục II.1"' in page
    # a stale version (someone saved in between) is refused
    _refused(
        _post(
            member,
            f"/tu-kiem-tra/{record}/tieu-chi",
            {"code": first.code, "self_score": "1", "version": "1"},
        ),
        "vừa được người khác cập nhật",
    )
    _refused(_post(member, f"/tu-kiem-tra/{record}/gui", {}), "Chỉ Trưởng đơn vị (VP)")
    assert "Gửi báo cáo tự kiểm tra" in _get(head, f"/tu-kiem-tra/{record}")
    _ok(_post(head, f"/tu-kiem-tra/{record}/gui", {}), "Đã gửi báo cáo tự kiểm tra")
    assert "1/5 đơn vị đã gửi, 0/5 đơn vị đã được xác nhận" in _get(
        approver, "/tu-kiem-tra?nam=2026"
    )

    # VHXH's head returns it (a reason is needed), the head submits again, it is acknowledged
    assert "Trả lại để hoàn thiện" in _get(approver, f"/tu-kiem-tra/{record}")
    assert "Xác nhận kết quả tự kiểm tra" not in _get(head, f"/tu-kiem-tra/{record}")
    _refused(
        _post(head, f"/tu-kiem-tra/{record}/xac-nhan", {"decision": "acknowledge"}),
        "Chỉ Trưởng phòng Văn hóa - Xã hội",
    )
    _refused(
        _post(approver, f"/tu-kiem-tra/{record}/xac-nhan", {"decision": "return"}),
        "Cần nêu lý do trả lại",
    )
    _ok(
        _post(
            approver,
            f"/tu-kiem-tra/{record}/xac-nhan",
            {"decision": "return", "reason": "Bổ sung số trang của báo cáo."},
        ),
        "Đã trả lại",
    )
    page = _get(head, f"/tu-kiem-tra/{record}")
    assert "Trả lại để hoàn thiện" in page and "Bổ sung số trang của báo cáo." in page
    _ok(_post(head, f"/tu-kiem-tra/{record}/gui", {}), "Đã gửi")
    _ok(
        _post(approver, f"/tu-kiem-tra/{record}/xac-nhan", {"decision": "acknowledge"}),
        "Đã xác nhận",
    )
    assert "1/5 đơn vị đã gửi, 1/5 đơn vị đã được xác nhận" in _get(leader, "/tu-kiem-tra?nam=2026")

    # every other unit; VHXH's own is acknowledged by the ward leader
    for unit in IN_SCOPE:
        if unit == "VP":
            continue
        record_id = _record_id(approver, unit)
        _fill_all(_login(web, f"{unit.lower()}.canbo"), record_id)
        _ok(
            _post(_login(web, f"{unit.lower()}.truong"), f"/tu-kiem-tra/{record_id}/gui", {}),
            "Đã gửi",
        )
        decider = leader if unit == "VHXH" else approver
        if unit == "VHXH":
            _refused(
                _post(approver, f"/tu-kiem-tra/{record_id}/xac-nhan", {"decision": "acknowledge"}),
                "do Lãnh đạo UBND phường xác nhận",
            )
        _ok(
            _post(decider, f"/tu-kiem-tra/{record_id}/xac-nhan", {"decision": "acknowledge"}),
            "Đã xác nhận",
        )
    page = _get(leader, "/tu-kiem-tra?nam=2026")
    assert "5/5 đơn vị đã gửi, 5/5 đơn vị đã được xác nhận" in page
    _refused(_post(approver, "/tu-kiem-tra/khoa-so", {"nam": "2026"}), "Chỉ Lãnh đạo UBND phường")
    _ok(_post(leader, "/tu-kiem-tra/khoa-so", {"nam": "2026"}), "Đã khóa sổ năm")
    page = _get(leader, "/tu-kiem-tra?nam=2026")
    assert "đã khóa sổ lúc 30/11/2026 09:00" in page and "Khóa sổ năm 2026" not in page


def test_the_own_unit_link_when_nothing_is_opened(web: Flask) -> None:
    page = _get(_login(web, "vp.canbo"), "/tu-kiem-tra/cua-don-vi")
    assert "Chưa mở phiếu tự kiểm tra năm 2026 cho đơn vị VP" in page
    assert _get(_login(web, "kiemtoan"), "/tu-kiem-tra/cua-don-vi", status=403)


# --- sampling and inspections -------------------------------------------------------------------


def test_a_draw_with_a_given_seed_its_outcome_and_replay(web: Flask) -> None:
    drawer, head = _login(web, "vhxh.truong"), _login(web, "vp.truong")
    page = _get(drawer, "/chon-mau?nam=2026")
    assert "chưa chọn mẫu" in page and 'name="fraction" value="0.2"' in page
    assert 'name="fraction"' not in _get(head, "/chon-mau?nam=2026")
    _refused(_post(head, "/chon-mau", {"nam": "2026", "seed": "x"}), "Chỉ lãnh đạo Phòng")
    _refused(_post(drawer, "/chon-mau", {"nam": "2026", "fraction": "1,5"}), "Tỷ lệ chọn mẫu")
    _refused(
        _post(drawer, "/chon-mau", {"nam": "2026", "weights": "mixed", "seed": "x"}),
        "không được hỗ trợ",
    )
    seed = "Hội nghị giao ban 30/11/2026"
    messages = _post(
        drawer,
        "/chon-mau",
        {"nam": "2026", "fraction": "0.4", "seed": seed, "weights": "uniform", "include": ["VP"]},
    )
    expected = sampling.draw(
        seed, dict.fromkeys(IN_SCOPE, 1), fraction=Fraction(2, 5), include=["VP"]
    )
    _ok(messages, f"Đã chọn mẫu kiểm tra năm 2026: {', '.join(expected.selected)}")
    page = _get(drawer, "/chon-mau?nam=2026")
    assert html.escape(seed) in page and "Do người chọn mẫu nhập" in page
    assert "(tối thiểu 1 đơn vị; chọn 2)" in page
    for code in IN_SCOPE:
        assert re.search(rf"<td>{code}</td><td>[^<]*</td><td>1</td>", page), code
    assert 'name="fraction"' not in page  # one draw a year
    _refused(_post(drawer, "/chon-mau", {"nam": "2026", "seed": "again"}), "đã chọn mẫu")
    seq = re.search(r'name="phat_lai" value="(\d+)"', page)
    assert seq
    replayed = _get(drawer, f"/chon-mau?nam=2026&phat_lai={seq.group(1)}")
    assert "Trùng khớp: chạy lại cho cùng các đơn vị đã ghi." in replayed
    assert f"<dt>Chạy lại</dt><dd>{', '.join(expected.selected)}</dd>" in replayed
    # an auditor reads and replays, but may not draw
    auditor = _get(_login(web, "kiemtoan"), f"/chon-mau?nam=2026&phat_lai={seq.group(1)}")
    assert "Trùng khớp" in auditor
    not_a_draw = _get(drawer, "/chon-mau?nam=2026&phat_lai=0", status=404)
    assert "không phải là một lần chọn mẫu" in not_a_draw
    assert "không có mục số 999999" in _get(drawer, "/chon-mau?phat_lai=999999", status=404)
    inspections = _get(drawer, "/kiem-tra?nam=2026")
    for code in expected.selected:
        assert re.search(rf'href="/kiem-tra/\d+">{code}</a>', inspections), code
    assert inspections.count("Đã chọn, đang lập kế hoạch kiểm tra") == len(expected.selected)


def test_a_draw_seeded_by_the_signed_checkpoint_with_risk_weights(web: Flask) -> None:
    drawer = _login(web, "lanhdao")
    _ok(_post(drawer, "/chon-mau", {"nam": "2026", "weights": "risk"}), "Đã chọn mẫu")
    page = _get(drawer, "/chon-mau?nam=2026")
    assert "Điểm kiểm tra có chữ ký của nhật ký" in page
    assert "theo rủi ro" in page and "Điểm đánh giá dùng tính trọng số" in page
    seq = re.search(r'name="phat_lai" value="(\d+)"', page)
    assert seq
    assert "Trùng khớp" in _get(drawer, f"/chon-mau?phat_lai={seq.group(1)}")


def test_an_inspection_from_plan_to_closing_after_corrective_work(
    web: Flask, fresh_db_url: str
) -> None:
    drawer, reviewer, leader = (
        _login(web, "vhxh.truong"),
        _login(web, "vhxh.thamdinh1"),
        _login(web, "lanhdao"),
    )
    _ok(
        _post(drawer, "/chon-mau", {"nam": "2026", "seed": "s", "include": ["VP"]}),
        "Đã chọn mẫu",
    )
    found = re.search(r'href="/kiem-tra/(\d+)">VP</a>', _get(drawer, "/kiem-tra?nam=2026"))
    assert found
    path = f"/kiem-tra/{found.group(1)}"
    page = _get(reviewer, path)
    assert "Kế hoạch và đoàn kiểm tra" in page and "Thông báo kết luận kiểm tra" not in page
    assert _get(_login(web, "vp.canbo"), path, status=403)

    _refused(
        _post(reviewer, f"{path}/ket-qua", {"findings": "Sớm quá"}),
        "Cần lập kế hoạch và đoàn kiểm tra trước",
    )
    _refused(_post(reviewer, f"{path}/ke-hoach", {"plan_text": "", "team": ""}), "ít nhất một")
    _refused(
        _post(
            reviewer, f"{path}/ke-hoach", {"plan_text": "x", "team": "A", "scheduled_on": "32/12"}
        ),
        "Ngày kiểm tra “32/12” không phải ngày hợp lệ",
    )
    _ok(
        _post(
            reviewer,
            f"{path}/ke-hoach",
            {
                "plan_text": "Kiểm tra hồ sơ CCHC năm 2026 của Văn phòng.",
                "team": "Nguyễn Văn A — trưởng đoàn\nTrần Thị B",
                "scheduled_on": "2026-12-03",
            },
        ),
        "Đã lưu kế hoạch",
    )
    page = _get(reviewer, path)
    assert "Trần Thị B" in page and "03/12/2026" in page
    _ok(
        _post(reviewer, f"{path}/ket-qua", {"findings": "Thiếu 2 báo cáo quý."}),
        "Đã ghi kết quả kiểm tra",
    )
    assert "Ban hành thông báo kết luận" not in _get(reviewer, path)
    _refused(
        _post(reviewer, f"{path}/ket-luan", {"number": "15/TB-UBND", "conclusion": "x"}),
        "Chỉ Lãnh đạo UBND phường được ban hành",
    )
    assert "Ban hành thông báo kết luận" in _get(leader, path)
    _refused(
        _post(
            leader,
            f"{path}/ket-luan",
            {
                "number": "15/TB-UBND",
                "conclusion": "Văn phòng bổ sung báo cáo.",
                "description": ["Bổ sung báo cáo quý I", ""],
                "due": ["2026-11-01", ""],
            },
        ),
        "Hạn khắc phục 01/11/2026 đã qua",
    )
    _refused(
        _post(
            leader,
            f"{path}/ket-luan",
            {
                "number": "15/TB-UBND",
                "conclusion": "x",
                "description": ["Bổ sung báo cáo quý I"],
                "due": [""],
            },
        ),
        "cần có hạn",
    )
    _ok(
        _post(
            leader,
            f"{path}/ket-luan",
            {
                "number": "15/TB-UBND",
                "conclusion": "Văn phòng bổ sung các báo cáo còn thiếu.",
                "description": ["Bổ sung báo cáo quý I", "", ""],
                "due": ["2026-12-15", "", ""],
            },
        ),
        "Đã ban hành Thông báo kết luận số 15/TB-UBND; 1 việc khắc phục",
    )
    page = _get(drawer, path)
    corrective = re.search(r'<a href="/nhiem-vu/(\d+)">Nhiệm vụ 1\d{3}</a>', page)
    assert corrective and "Bổ sung báo cáo quý I" in page and "15/12/2026" in page
    assert '<tr class="state-assigned">' in page and "<td>Đã giao</td>" in page
    task = _get(_login(web, "vp.canbo"), f"/nhiem-vu/{corrective.group(1)}")
    assert "Khắc phục sau kiểm tra" in task
    assert "0/1" not in _get(drawer, "/kiem-tra?nam=2026")  # one open of one
    assert "1/1" in _get(drawer, "/kiem-tra?nam=2026")

    _refused(_post(reviewer, f"{path}/ket-thuc", {}), "Chỉ Phòng Văn hóa - Xã hội hoặc")
    _refused(_post(drawer, f"{path}/ket-thuc", {}), "còn 1 việc khắc phục chưa được nghiệm thu")
    with _rows(fresh_db_url) as session:
        work = session.get_one(TaskInstance, int(corrective.group(1)))
        work.state, work.accepted_at = TaskState.ACCEPTED.value, NOW
    _ok(_post(drawer, f"{path}/ket-thuc", {}), "Đã kết thúc cuộc kiểm tra")
    page = _get(drawer, path)
    assert "Đã hoàn thành khắc phục" in page and "Kết thúc cuộc kiểm tra</button>" not in page
    assert _get(drawer, "/kiem-tra/999999", status=404)
