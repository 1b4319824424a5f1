"""Issue 7: the periodic report's .docx and .xlsx read back and checked against the evaluation
at the same date, their layout (Nghị định 30/2020), reproducible bytes, the audit entry, who
may generate, PDF through LibreOffice, and report deadlines in the daily check."""

from __future__ import annotations

import hashlib
import subprocess
import unicodedata
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from docx.shared import Pt
from sqlalchemy import func, select

from audit.ledger import Ledger
from workflow.deadlines import NATIONAL_STATUS_LABELS, tick
from workflow.documents import pdf as pdf_module
from workflow.documents import render
from workflow.documents.word import QUOC_HIEU, TIEU_NGU
from workflow.engine import person_of
from workflow.errors import DomainError
from workflow.evaluation import evaluate
from workflow.models import Notification, ReportAlert
from workflow.periodic import (
    GeneratedReport,
    build_report,
    date_line,
    generate_report,
    report_deadlines,
)
from workflow.permissions import report_refusal
from workflow.reports import current_plan, plan_definition
from workflow.trail import AuditTrail

from .conftest import (
    CAL,
    RUBRIC,
    Ward,
    at,
    docx_of,
    need_tools,
    percent_text,
    table_rows,
    xlsx_of,
)

Q1_AS_OF = date(2026, 3, 14)
TODAY = date(2026, 3, 20)
DIFFICULTIES = "Một số đơn vị nộp sản phẩm chậm.\nĐề nghị UBND thành phố tổ chức tập huấn."


def _generate(
    ward: Ward,
    fmt: str,
    *,
    kind: str = "quarter",
    quarter: int | None = 1,
    user: str = "vhxh.canbo",
) -> GeneratedReport:
    return generate_report(
        ward.session,
        ward.org,
        ward.user(user),
        kind=kind,
        year=2026,
        quarter=quarter,
        fmt=fmt,
        as_of=None,
        today=TODAY,
        now=at(20, 3, 9),
        difficulties=DIFFICULTIES,
        calendar=CAL,
        rubric=RUBRIC,
        trail=AuditTrail(),
        render=render,
    )


def _evaluation_json(ward: Ward, as_of: date) -> dict[str, Any]:
    result = evaluate(ward.session, ward.org, year=2026, as_of=as_of, calendar=CAL, rubric=RUBRIC)
    return result.as_json(instances=True)


def _figure_cells(f: dict[str, Any]) -> list[str]:
    return [
        str(f["led"]),
        str(f["accepted_on_time"]),
        str(f["accepted_late"]),
        str(f["open_on_time"]),
        str(f["open_overdue"]),
        percent_text(f["completion_rate"]),
        percent_text(f["on_time_rate"]),
    ]


def _table(doc: Any, *headers: str) -> list[list[str]]:
    for table in doc.tables:
        rows = table_rows(table)
        if rows and rows[0][: len(headers)] == list(headers):
            return rows
    raise AssertionError(f"no table headed {headers!r}")


def _all_text(doc: Any) -> str:
    parts = [p.text for p in doc.paragraphs]
    for table in doc.tables:
        parts += [c.text for row in table.rows for c in row.cells]
    return "\n".join(parts)


# --- the .docx --------------------------------------------------------------------------------


@pytest.mark.db
def test_docx_figures_equal_the_evaluation(known: Ward) -> None:
    made = _generate(known, "docx")
    assert made.report.as_of == Q1_AS_OF  # the cut-off end, earlier than today
    doc = docx_of(made.data)
    data = _evaluation_json(known, Q1_AS_OF)
    assert data["overall"]["accepted_late"] == 1 and data["overall"]["accepted_on_time"] == 2

    sections = _table(doc, "Lĩnh vực")
    body = {row[0].split(".")[0]: row[1:] for row in sections[1:]}
    for key, figures in data["by_section"].items():
        assert body[key] == _figure_cells(figures), key
    assert body["Tổng cộng"] == _figure_cells(data["overall"])

    units = _table(doc, "Đơn vị")
    by_unit = {row[0].split(" - ")[0]: row[1:] for row in units[1:]}
    expected = {k: _figure_cells(f) for k, f in data["by_unit"].items() if f["led"] > 0}
    assert by_unit == expected

    overdue = _table(
        doc, "TT", "Nội dung nhiệm vụ", "Đơn vị chủ trì", "Kỳ", "Hạn", "Số ngày quá hạn"
    )
    late = [i for i in data["instances"] if i["national_status"] == "chua_hoan_thanh_qua_han"]
    assert len(overdue) - 1 == len(late) == data["overall"]["open_overdue"] > 0
    assert {(r[0], r[2].split(" - ")[0], r[5]) for r in overdue[1:]} == {
        (str(i["number"]), i["unit"], str(i["working_days_late"])) for i in late
    }

    kpis = _table(doc, "TT", "Chỉ tiêu", "Mục tiêu")
    assert len(kpis) - 1 == len(data["kpis"])
    payment = next(r for r in kpis if r[1].startswith("Tỷ lệ thanh toán trực tuyến"))
    assert payment[2:] == [">= 90%", "92,5%", "02/03/2026", "Đạt"]
    unmeasured = next(r for r in kpis if r[1].startswith("Mức độ hài lòng của người dân, tổ"))
    assert unmeasured[3:] == ["—", "—", "Chưa có số liệu"]

    tasks = _table(doc, "TT", "Nội dung nhiệm vụ", "Đơn vị chủ trì", "Kỳ", "Hạn", "Trạng thái")
    assert len(tasks) - 1 == len(data["instances"]) == data["overall"]["led"]
    labels = [NATIONAL_STATUS_LABELS[i["national_status"]] for i in data["instances"]]
    assert [r[6] for r in tasks[1:]] == labels
    assert [r[2] for r in tasks[1:]] == [i["unit"] for i in data["instances"]]

    text = _all_text(doc)
    assert "Một số đơn vị nộp sản phẩm chậm." in text
    assert "0/5 đơn vị đã gửi báo cáo tự kiểm tra" in text
    assert "Chưa tiến hành kiểm tra đơn vị nào trong năm." in text
    assert unicodedata.is_normalized("NFC", text)
    assert len(doc.inline_shapes) == 2  # progress by area and by unit


@pytest.mark.db
def test_docx_layout_follows_the_decree(known: Ward) -> None:
    doc = docx_of(_generate(known, "docx").data)
    section = doc.sections[0]

    def mm(length: Any) -> float:
        return round(length.mm, 1)

    assert (mm(section.page_width), mm(section.page_height)) == (210, 297)  # A4
    assert mm(section.top_margin) == mm(section.bottom_margin) == 20
    assert (mm(section.left_margin), mm(section.right_margin)) == (30, 15)
    normal = doc.styles["Normal"].font
    assert normal.name == "Times New Roman" and normal.size == Pt(14)
    fonts = {r.font.name for p in doc.paragraphs for r in p.runs if r.text}
    assert fonts == {"Times New Roman"}

    heading = doc.tables[0]
    left, right = (c.paragraphs for c in heading.rows[0].cells)
    assert [p.text for p in left if p.text] == [
        "ỦY BAN NHÂN DÂN",
        "PHƯỜNG TRẦN HƯNG ĐẠO",
        "Số:      /BC-UBND",
    ]
    texts = [p.text for p in right if p.text]
    assert (
        texts[:2]
        == [QUOC_HIEU, TIEU_NGU]
        == [
            "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
            "Độc lập - Tự do - Hạnh phúc",
        ]
    )
    date_para = next(p for p in right if p.text.startswith("Trần Hưng Đạo, ngày"))
    assert date_para.text == "Trần Hưng Đạo, ngày 14 tháng 3 năm 2026"
    assert all(r.font.italic for r in date_para.runs)
    assert all(r.font.bold for p in right[:2] for r in p.runs)

    title_at = next(i for i, p in enumerate(doc.paragraphs) if p.text == "BÁO CÁO")
    assert all(r.font.bold for r in doc.paragraphs[title_at].runs)
    assert doc.paragraphs[title_at + 1].text == (
        "Kết quả thực hiện công tác cải cách hành chính quý I năm 2026"
    )

    signature = next(t for t in doc.tables if t.rows[0].cells[0].text.startswith("Nơi nhận:"))
    recipients = [p.text for p in signature.rows[0].cells[0].paragraphs if p.text]
    assert recipients[0] == "Nơi nhận:" and recipients[-1] == "- Lưu: VT, VHXH."
    signer = [p.text for p in signature.rows[0].cells[1].paragraphs if p.text]
    assert signer == ["TM. ỦY BAN NHÂN DÂN", "CHỦ TỊCH", "Nguyễn Văn Hà"]
    assert doc.core_properties.modified == datetime(2026, 3, 14, tzinfo=UTC)


def test_the_date_line_leading_zeros() -> None:
    assert (
        date_line("Trần Hưng Đạo", date(2026, 1, 5)) == "Trần Hưng Đạo, ngày 05 tháng 01 năm 2026"
    )
    assert (
        date_line("Trần Hưng Đạo", date(2026, 2, 28)) == "Trần Hưng Đạo, ngày 28 tháng 02 năm 2026"
    )
    assert (
        date_line("Trần Hưng Đạo", date(2026, 11, 5)) == "Trần Hưng Đạo, ngày 05 tháng 11 năm 2026"
    )


# --- the .xlsx --------------------------------------------------------------------------------


@pytest.mark.db
def test_xlsx_rows_equal_the_evaluation(known: Ward) -> None:
    made = _generate(known, "xlsx")
    book = xlsx_of(made.data)
    data = _evaluation_json(known, Q1_AS_OF)
    ws = book["Nhiệm vụ"]
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:O{len(data['instances']) + 1}"
    header = [c.value for c in ws[1]]
    assert header[:4] == ["TT", "Lĩnh vực", "Tên lĩnh vực", "Nội dung nhiệm vụ"]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert len(rows) == len(data["instances"])
    for row, fact in zip(rows, data["instances"], strict=True):
        assert row[0] == fact["number"] and row[4] == fact["unit"] and row[6] == fact["period"]
        due = row[7]
        assert (due.date().isoformat() if due else None) == fact["due"]
        assert due is None or isinstance(due, datetime)
        assert row[9] == NATIONAL_STATUS_LABELS[fact["national_status"]]
        accepted = row[10]
        assert (accepted.date().isoformat() if accepted else None) == fact["accepted_on"]
        assert (row[11], row[12], row[13], row[14]) == (
            fact["working_days_late"],
            fact["returns"],
            len(fact["evidence"]),
            fact["id"],
        )
    dated = [r for r in ws.iter_rows(min_row=2, min_col=8, max_col=8) if r[0].value]
    assert dated and all(c[0].number_format == "dd/mm/yyyy" and c[0].is_date for c in dated)
    assert any(r[12] == 1 for r in rows)  # the instance returned once

    sections = {r[0]: r for r in book["Theo lĩnh vực"].iter_rows(min_row=2, values_only=True)}
    for key, f in data["by_section"].items():
        row = sections[key]
        assert list(row[2:7]) == [
            f["led"],
            f["accepted_on_time"],
            f["accepted_late"],
            f["open_on_time"],
            f["open_overdue"],
        ]
        rate, expected = row[7], f["completion_rate"]
        assert (rate is None and expected is None) or Decimal(str(rate)) == Decimal(expected)
    kpi_rows = list(book["Chỉ tiêu"].iter_rows(min_row=2, values_only=True))
    assert [r[0] for r in kpi_rows] == [k["code"] for k in data["kpis"]]
    about = dict(book["Thông tin"].iter_rows(values_only=True))
    # Computed before its own audit entry was appended: the tree one entry shorter.
    assert about["Số mục nhật ký khi tính"] == data["audit"]["tree_size"] - 1 == made.audit_seq
    assert about["Gốc cây Merkle khi tính"] == made.report.evaluation.audit.root


@pytest.mark.db
def test_the_same_data_gives_the_same_bytes(known: Ward) -> None:
    """Nothing of the wall clock gets into the files: the same report renders to the same bytes
    (generating records an audit entry, so a second generation sees a longer log)."""

    def build() -> Any:
        return build_report(
            known.session,
            known.org,
            kind="quarter",
            year=2026,
            quarter=1,
            as_of=None,
            today=TODAY,
            difficulties=DIFFICULTIES,
            calendar=CAL,
            rubric=RUBRIC,
        )

    first, second = build(), build()
    for fmt in ("docx", "xlsx"):
        assert render(first, fmt) == render(second, fmt), fmt


# --- the audit entry and permissions ----------------------------------------------------------


@pytest.mark.db
def test_every_generated_report_is_an_audit_entry(known: Ward) -> None:
    made = _generate(known, "docx", kind="year", quarter=None, user="lanhdao")
    assert made.report.as_of == TODAY  # earlier than the year's cut-off end (14/12)
    ledger = Ledger(known.org.audit_origin)
    entry = ledger.entry(known.session, made.audit_seq).content()
    assert entry["action"] == "report.generated"
    assert entry["object"] == {"type": "report", "id": "2026/year"}
    assert entry["actor"]["user"] == "lanhdao"
    details = entry["details"]
    assert details["sha256"] == hashlib.sha256(made.data).hexdigest() == made.sha256
    assert details["size"] == len(made.data)
    assert (details["kind"], details["format"], details["as_of"]) == ("year", "docx", "2026-03-20")
    assert details["difficulties"] == DIFFICULTIES
    audit = details["evaluation_audit"]
    assert audit == made.report.evaluation.audit.as_json()
    # The evaluation was computed at the tree just before this entry: recompute and compare.
    assert audit["tree_size"] == made.audit_seq
    assert ledger.root(known.session, audit["tree_size"]).hex() == audit["root"]


@pytest.mark.db
def test_who_may_generate_and_read(ward: Ward) -> None:
    for username in ("vp.canbo", "vp.truong", "kiemtoan"):
        with pytest.raises(DomainError) as info:
            _generate(ward, "xlsx", user=username)
        assert info.value.code == "not_permitted"
    for username in ("vhxh.canbo", "vhxh.truong", "vhxh.thamdinh1", "lanhdao"):
        assert _generate(ward, "xlsx", user=username).size > 0
    org = ward.org.id
    assert report_refusal("read_reports", person_of(ward.user("kiemtoan")), org) is None
    assert report_refusal("read_reports", person_of(ward.user("vp.canbo")), org) is not None
    assert report_refusal("read_reports", person_of(ward.user("lanhdao")), org + 1) is not None


@pytest.mark.db
def test_periods_and_their_default_dates(ward: Ward) -> None:
    def as_of(kind: str, quarter: int | None, today: date) -> date:
        report = build_report(
            ward.session,
            ward.org,
            kind=kind,
            year=2026,
            quarter=quarter,
            as_of=None,
            today=today,
            difficulties="",
            calendar=CAL,
            rubric=RUBRIC,
        )
        return report.as_of

    assert as_of("quarter", 1, date(2026, 3, 1)) == date(2026, 3, 1)
    assert as_of("quarter", 2, date(2026, 12, 1)) == date(2026, 6, 14)
    assert as_of("half-year", None, date(2026, 12, 1)) == date(2026, 6, 14)
    assert as_of("year", None, date(2027, 1, 10)) == date(2026, 12, 14)
    for kind, quarter, code in (
        ("quarter", None, "invalid_period"),
        ("quarter", 5, "invalid_period"),
        ("year", 2, "invalid_period"),
        ("month", None, "invalid_report_kind"),
    ):
        with pytest.raises(DomainError) as info:
            as_of(kind, quarter, TODAY)
        assert info.value.code == code


# --- PDF --------------------------------------------------------------------------------------


def test_pdf_unavailable_without_libreoffice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf_module.shutil, "which", lambda _name: None)
    with pytest.raises(DomainError) as info:
        pdf_module.docx_to_pdf(b"PK")
    assert info.value.code == "pdf_unavailable" and "LibreOffice" in info.value.message


@pytest.mark.db
@pytest.mark.slow
def test_pdf_converts_and_page_one_renders(known: Ward, tmp_path: Path) -> None:
    need_tools("soffice", "pdftoppm", "pdftotext")
    made = _generate(known, "pdf")
    assert made.data.startswith(b"%PDF") and made.filename.endswith(".pdf")
    pdf = tmp_path / made.filename
    pdf.write_bytes(made.data)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
        check=True,
        timeout=60,
    )
    (png,) = tmp_path.glob("page*.png")
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 5000
    text = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"],
        check=True,
        capture_output=True,
        timeout=60,
        text=True,
    ).stdout
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in unicodedata.normalize("NFC", text)
    assert "BÁO CÁO" in text
    info = subprocess.run(
        ["pdfinfo", str(pdf)], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    assert "A4" in info


# --- report deadlines in the daily check ------------------------------------------------------


def _tick(ward: Ward, day: date) -> Any:
    return tick(
        ward.session,
        ward.org,
        today=day,
        now=datetime(day.year, day.month, day.day, 0, tzinfo=UTC),
        calendar=CAL,
        trail=AuditTrail(),
    )


def _report_notifications(ward: Ward) -> int:
    """The reports' alerts: notifications about no task that name a report period (the
    approvers' digests of overdue tasks have no task either)."""
    notes = ward.session.scalars(select(Notification).where(Notification.instance_id.is_(None)))
    return sum(1 for n in notes if "report" in n.payload)


@pytest.mark.db
def test_tick_alerts_report_deadlines_once(ward: Ward) -> None:
    assert _tick(ward, date(2026, 2, 23)).reports == ()  # Q1 due 04/03: not yet due soon
    soon = _tick(ward, date(2026, 3, 2))  # 03, 04: two working days left
    assert [(a.key, a.kind, a.working_days) for a in soon.reports] == [
        ("2026/quarter/1", "due_soon", 2)
    ]
    vhxh = soon.reports[0].recipients
    assert vhxh == 4  # VHXH's member, head and two reviewers
    assert soon.as_json()["reports"][0]["report"] == "2026/quarter/1"
    assert _tick(ward, date(2026, 3, 3)).reports == ()  # once per period and kind
    late = _tick(ward, date(2026, 3, 6))
    assert [(a.key, a.kind, a.working_days) for a in late.reports] == [
        ("2026/quarter/1", "overdue", 2)
    ]
    assert _report_notifications(ward) == 2 * vhxh
    history = Ledger(ward.org.audit_origin).history(ward.session, "report_period", "2026/quarter/1")
    assert [e.action for e in history] == ["deadline.approaching", "deadline.overdue"]
    assert ward.session.scalar(select(func.count()).select_from(ReportAlert)) == 2


@pytest.mark.db
def test_a_generated_report_is_not_alerted_and_shows_done(ward: Ward) -> None:
    _generate(ward, "xlsx")  # the Q1 report, recorded 20/03
    assert _tick(ward, date(2026, 3, 23)).reports == ()
    plan = current_plan(ward.session, ward.org)
    assert plan is not None
    definition = plan_definition(plan)
    rows = report_deadlines(
        ward.session, ward.org, definition, today=date(2026, 3, 23), calendar=CAL
    )
    status = {r.ref.key: r.status for r in rows}
    assert status["2026/quarter/1"] == "done"
    assert status["2026/quarter/2"] == "on_time"
    assert status["2026/year"] == "on_time"
