"""The periodic report's Excel appendix: one row per task instance with every column a person
filters on (frozen header, autofilter, dates as real dates), the figures by area and by unit,
the KPIs, and what the figures were computed from."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from datetime import datetime, time
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.writer.excel import ExcelWriter

from workflow.deadlines import NATIONAL_STATUS_LABELS
from workflow.documents.common import reproducible_zip
from workflow.evaluation import Figures
from workflow.periodic import PeriodicReport, state_label, vn_date

DATE_FORMAT = "dd/mm/yyyy"
HEADER_FONT = Font(name="Times New Roman", bold=True, size=12)
BODY_FONT = Font(name="Times New Roman", size=12)
HEADER_FILL = PatternFill("solid", fgColor="DDE7F0")

# The instance sheet: (header, width in characters).
INSTANCE_COLUMNS: tuple[tuple[str, int], ...] = (
    ("TT", 6),
    ("Lĩnh vực", 9),
    ("Tên lĩnh vực", 30),
    ("Nội dung nhiệm vụ", 60),
    ("Đơn vị chủ trì", 12),
    ("Tên đơn vị chủ trì", 34),
    ("Kỳ", 16),
    ("Hạn hoàn thành", 14),
    ("Trạng thái", 22),
    ("Tình trạng (4 trạng thái)", 26),
    ("Ngày nghiệm thu", 14),
    ("Số ngày làm việc quá hạn", 12),
    ("Số lần trả lại", 10),
    ("Số minh chứng", 10),
    ("Mã lượt giao", 10),
)

FIGURE_COLUMNS: tuple[tuple[str, int], ...] = (
    ("Số nhiệm vụ", 11),
    ("Hoàn thành đúng hạn", 12),
    ("Hoàn thành quá hạn", 12),
    ("Chưa hoàn thành trong hạn", 13),
    ("Chưa hoàn thành quá hạn", 13),
    ("Tỷ lệ hoàn thành (%)", 12),
    ("Tỷ lệ đúng hạn (%)", 12),
    ("Số ngày làm việc chậm bình quân", 14),
    ("Số lần trả lại", 10),
)


def _header(ws: Any, columns: Sequence[tuple[str, int]]) -> None:
    for i, (title, width) in enumerate(columns, start=1):
        cell = ws.cell(row=1, column=i, value=title)
        cell.font = HEADER_FONT
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="center", horizontal="center")
        ws.column_dimensions[get_column_letter(i)].width = width
    ws.freeze_panes = "A2"
    ws.row_dimensions[1].height = 32


def _finish(ws: Any, columns: int, rows: int) -> None:
    ws.auto_filter.ref = f"A1:{get_column_letter(columns)}{rows + 1}"
    for row in ws.iter_rows(min_row=2, max_row=rows + 1):
        for cell in row:
            cell.font = BODY_FONT
            if cell.alignment is None or not cell.alignment.wrap_text:
                cell.alignment = Alignment(vertical="top")


def _figures(f: Figures) -> list[Any]:
    return [
        f.led,
        f.accepted_on_time,
        f.accepted_late,
        f.open_on_time,
        f.open_overdue,
        f.completion_rate,
        f.on_time_rate,
        f.average_days_late,
        f.returns,
    ]


def _instances(wb: Any, report: PeriodicReport) -> None:
    ws = wb.active
    ws.title = "Nhiệm vụ"
    _header(ws, INSTANCE_COLUMNS)
    facts = report.evaluation.instances
    for r, f in enumerate(facts, start=2):
        values: list[Any] = [
            f.number,
            f.section or "",
            report.section_title(f.section),
            f.content,
            f.unit,
            report.unit_name(f.unit),
            f.period,
            f.due,
            state_label(f.state),
            NATIONAL_STATUS_LABELS[f.status],
            f.accepted_on,
            f.working_days_late,
            f.returns,
            len(f.evidence),
            f.id,
        ]
        for c, value in enumerate(values, start=1):
            cell = ws.cell(row=r, column=c, value=value)
            if c in (8, 11) and value is not None:
                cell.number_format = DATE_FORMAT
    _finish(ws, len(INSTANCE_COLUMNS), len(facts))
    for row in ws.iter_rows(min_row=2, min_col=4, max_col=4):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")


def _grouped(
    wb: Any, title: str, key_columns: Sequence[tuple[str, int]], rows: list[list[Any]]
) -> None:
    ws = wb.create_sheet(title)
    columns = (*key_columns, *FIGURE_COLUMNS)
    _header(ws, columns)
    for r, values in enumerate(rows, start=2):
        for c, value in enumerate(values, start=1):
            cell = ws.cell(row=r, column=c, value=value)
            if c > len(key_columns) + 4 and value is not None:
                cell.number_format = "0.0"
    _finish(ws, len(columns), len(rows))


def _kpis(wb: Any, report: PeriodicReport) -> None:
    ws = wb.create_sheet("Chỉ tiêu")
    columns = (
        ("Mã", 26),
        ("Chỉ tiêu", 60),
        ("So sánh", 8),
        ("Mục tiêu", 10),
        ("Đơn vị tính", 10),
        ("Kết quả", 10),
        ("Ngày đo", 14),
        ("Đánh giá", 16),
        ("Nhiệm vụ", 10),
    )
    _header(ws, columns)
    verdict = {True: "Đạt", False: "Chưa đạt", None: "Chưa có số liệu"}
    for r, k in enumerate(report.evaluation.kpis, start=2):
        values: list[Any] = [
            k.code,
            k.name,
            k.comparator,
            k.threshold,
            k.unit,
            k.value,
            k.measured_on,
            verdict[k.met],
            k.task,
        ]
        for c, value in enumerate(values, start=1):
            cell = ws.cell(row=r, column=c, value=value)
            if c == 7 and value is not None:
                cell.number_format = DATE_FORMAT
    _finish(ws, len(columns), len(report.evaluation.kpis))


def _about(wb: Any, report: PeriodicReport) -> None:
    ws = wb.create_sheet("Thông tin")
    ev = report.evaluation
    rows: list[tuple[str, Any]] = [
        ("Báo cáo", f"{report.ref.name} - {report.ref.label}"),
        ("Trích yếu", report.title),
        ("Đơn vị ban hành", report.issuer),
        ("Số liệu tính đến ngày", report.as_of),
        ("Hạn gửi báo cáo", report.ref.period.due),
        ("Kế hoạch", ev.plan_code),
        ("Bộ tiêu chí chấm điểm", ev.rubric_code),
        ("Nhật ký kiểm toán", ev.audit.origin),
        ("Số mục nhật ký khi tính", ev.audit.size),
        ("Gốc cây Merkle khi tính", ev.audit.root),
        ("Tự kiểm tra", report.coverage_text),
    ]
    ws.column_dimensions["A"].width = 28
    ws.column_dimensions["B"].width = 80
    for r, (label, value) in enumerate(rows, start=1):
        ws.cell(row=r, column=1, value=label).font = HEADER_FONT
        cell = ws.cell(row=r, column=2, value=value)
        cell.font = BODY_FONT
        if hasattr(value, "year"):
            cell.number_format = DATE_FORMAT


def render_xlsx(report: PeriodicReport) -> bytes:
    """The appendix as .xlsx bytes; the same report gives the same bytes."""
    wb = Workbook()
    _instances(wb, report)
    ev = report.evaluation
    titles = {s.number: s.title for s in report.sections}
    _grouped(
        wb,
        "Theo lĩnh vực",
        (("Lĩnh vực", 9), ("Tên lĩnh vực", 40)),
        [[k, titles.get(k, k), *_figures(f)] for k, f in ev.by_section.items()]
        + [["Tổng", "Toàn kế hoạch", *_figures(ev.overall)]],
    )
    _grouped(
        wb,
        "Theo đơn vị",
        (("Đơn vị", 10), ("Tên đơn vị", 40)),
        [[k, report.unit_name(k), *_figures(f)] for k, f in ev.by_unit.items() if f.led > 0],
    )
    _kpis(wb, report)
    _about(wb, report)
    stamp = datetime.combine(report.as_of, time(0))
    props = wb.properties
    props.creator = report.issuer
    props.lastModifiedBy = report.issuer
    props.title = f"Phụ lục báo cáo CCHC {report.ref.label} ({vn_date(report.as_of)})"
    props.created = stamp
    props.modified = stamp
    out = io.BytesIO()
    # ExcelWriter directly: openpyxl's save_workbook stamps the wall clock into the file.
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(wb, archive).write_data()
    return reproducible_zip(out.getvalue(), report.as_of)
