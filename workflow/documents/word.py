"""The periodic report as a Word document laid out by Nghị định 30/2020/NĐ-CP, Phụ lục I: A4,
margins 20/20/30/15 mm, Times New Roman 14 pt (tables 12 pt), the issuer top left, Quốc hiệu
and Tiêu ngữ top right, "Số:    /BC-UBND", place and date in italics, BÁO CÁO and its trích
yếu, the body, "Nơi nhận:" bottom left and the signature block bottom right."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime, time

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph

from workflow.deadlines import NATIONAL_STATUS_LABELS
from workflow.documents.charts import progress_png
from workflow.documents.common import (
    FIGURE_HEADERS,
    figures_row,
    reproducible_zip,
    vn_number,
    vn_percent,
)
from workflow.periodic import PeriodicReport, state_label, vn_date

FONT = "Times New Roman"
BODY_PT = 14
TABLE_PT = 12
SMALL_PT = 11
QUOC_HIEU = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
TIEU_NGU = "Độc lập - Tự do - Hạnh phúc"
NUMBER_LINE = "Số:      /BC-UBND"  # the văn thư numbers the report when it is issued

_ALIGN = {
    "left": WD_ALIGN_PARAGRAPH.LEFT,
    "center": WD_ALIGN_PARAGRAPH.CENTER,
    "right": WD_ALIGN_PARAGRAPH.RIGHT,
    "justify": WD_ALIGN_PARAGRAPH.JUSTIFY,
}


def _run_font(run: object, size: int, *, bold: bool = False, italic: bool = False) -> None:
    font = run.font  # type: ignore[attr-defined]
    font.name = FONT
    font.size = Pt(size)
    font.bold = bold
    font.italic = italic


def _para(
    container: object,
    text: str = "",
    *,
    size: int = BODY_PT,
    bold: bool = False,
    italic: bool = False,
    align: str = "justify",
    indent: bool = False,
    before: int = 0,
    after: int = 6,
) -> Paragraph:
    paragraph: Paragraph = container.add_paragraph()  # type: ignore[attr-defined]
    paragraph.alignment = _ALIGN[align]
    fmt = paragraph.paragraph_format
    fmt.space_before = Pt(before)
    fmt.space_after = Pt(after)
    if indent:
        fmt.first_line_indent = Mm(10)
    if text:
        _run_font(paragraph.add_run(text), size, bold=bold, italic=italic)
    return paragraph


def _cell_text(
    cell: _Cell,
    text: str,
    *,
    size: int = TABLE_PT,
    bold: bool = False,
    italic: bool = False,
    align: str = "left",
) -> None:
    paragraph = cell.paragraphs[0]
    paragraph.alignment = _ALIGN[align]
    paragraph.paragraph_format.space_after = Pt(0)
    _run_font(paragraph.add_run(text), size, bold=bold, italic=italic)


def _repeat_header(table: Table) -> None:
    """The first row repeats at the top of every page the table runs onto."""
    tr_pr = table.rows[0]._tr.get_or_add_trPr()
    header = OxmlElement("w:tblHeader")
    header.set(qn("w:val"), "true")
    tr_pr.append(header)


def _grid(
    doc: object,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    widths_mm: Sequence[int],
    *,
    numeric_from: int = 1,
    size: int = TABLE_PT,
) -> Table:
    """A bordered table with a bold, repeating header row; columns from `numeric_from` on are
    centred."""
    table: Table = doc.add_table(rows=1 + len(rows), cols=len(headers))  # type: ignore[attr-defined]
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    for i, header in enumerate(headers):
        _cell_text(table.rows[0].cells[i], header, size=size, bold=True, align="center")
    for r, row in enumerate(rows, start=1):
        cells = table.rows[r].cells
        for i, value in enumerate(row):
            _cell_text(cells[i], value, size=size, align="center" if i >= numeric_from else "left")
    _widths(table, widths_mm)
    _repeat_header(table)
    return table


def _widths(table: Table, widths_mm: Sequence[int]) -> None:
    """Fixed column widths, in the grid (LibreOffice reads it) and in every cell (Word)."""
    table.autofit = False
    for i, width in enumerate(widths_mm):
        table.columns[i].width = Mm(width)
        for cell in table.columns[i].cells:
            cell.width = Mm(width)


def _borderless(doc: object, cols: int, widths_mm: Sequence[int]) -> Table:
    table: Table = doc.add_table(rows=1, cols=cols)  # type: ignore[attr-defined]
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    _widths(table, widths_mm)
    return table


def _cell_para(
    cell: _Cell,
    text: str,
    *,
    size: int = 13,
    bold: bool = False,
    italic: bool = False,
    align: str = "center",
    first: bool = False,
) -> Paragraph:
    paragraph: Paragraph = cell.paragraphs[0] if first else cell.add_paragraph()
    paragraph.alignment = _ALIGN[align]
    paragraph.paragraph_format.space_after = Pt(0)
    if text:
        _run_font(paragraph.add_run(text), size, bold=bold, italic=italic)
    return paragraph


def _setup(doc: object, report: PeriodicReport) -> None:
    section = doc.sections[0]  # type: ignore[attr-defined]
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.top_margin, section.bottom_margin = Mm(20), Mm(20)
    section.left_margin, section.right_margin = Mm(30), Mm(15)
    normal = doc.styles["Normal"]  # type: ignore[attr-defined]
    normal.font.name = FONT
    normal.font.size = Pt(BODY_PT)
    fonts = normal.element.get_or_add_rPr().get_or_add_rFonts()
    for attr in ("w:ascii", "w:hAnsi", "w:eastAsia", "w:cs"):
        fonts.set(qn(attr), FONT)
    # Core properties from the report's date, never the wall clock: same data, same bytes.
    stamp = datetime.combine(report.as_of, time(0))
    props = doc.core_properties  # type: ignore[attr-defined]
    props.author = report.issuer
    props.last_modified_by = report.issuer
    props.title = f"Báo cáo {report.title[0].lower()}{report.title[1:]}"
    props.subject = report.plan_title
    props.language = "vi-VN"
    props.revision = 1
    props.created = stamp
    props.modified = stamp
    props.last_printed = stamp
    props.comments = (
        f"Số liệu tính đến {vn_date(report.as_of)}; nhật ký kiểm toán "
        f"{report.evaluation.audit.size} mục, gốc {report.evaluation.audit.root}"
    )


def _heading_block(doc: object, report: PeriodicReport) -> None:
    table = _borderless(doc, 2, (70, 95))
    left, right = table.rows[0].cells
    issuer = report.issuer.upper()
    at = issuer.find("PHƯỜNG")
    first, second = (issuer[:at].strip(), issuer[at:].strip()) if at > 0 else (issuer, "")
    _cell_para(left, first, size=12, bold=True, first=True)
    _cell_para(left, second, size=12, bold=True)
    _cell_para(left, "")
    _cell_para(left, NUMBER_LINE)
    _cell_para(right, QUOC_HIEU, size=12, bold=True, first=True)
    _cell_para(right, TIEU_NGU, size=14, bold=True)
    _cell_para(right, "")
    _cell_para(right, report.date_line, size=14, italic=True)
    _para(doc, "BÁO CÁO", bold=True, align="center", before=12, after=0)
    _para(doc, report.title, bold=True, align="center", after=12)


def _overview(doc: object, report: PeriodicReport) -> None:
    ev = report.evaluation
    o = ev.overall
    period = report.ref.period
    cutoff = (
        f"kỳ số liệu từ {vn_date(period.cutoff_start)} đến {vn_date(period.cutoff_end)}; "
        if period.cutoff_start and period.cutoff_end
        else ""
    )
    _para(
        doc,
        f"Thực hiện {report.plan_title}, Ủy ban nhân dân phường báo cáo kết quả thực hiện công "
        f"tác cải cách hành chính {report.ref.subject} ({cutoff}số liệu lũy kế tính đến ngày "
        f"{vn_date(report.as_of)}) như sau:",
        indent=True,
    )
    _para(doc, "I. KẾT QUẢ THỰC HIỆN", bold=True, before=6)
    _para(doc, "1. Kết quả chung", bold=True)
    days = vn_number(o.average_days_late)
    _para(
        doc,
        f"Tổng số nhiệm vụ (lượt giao) được triển khai: {o.led}; trong đó hoàn thành đúng hạn "
        f"{o.accepted_on_time}, hoàn thành quá hạn {o.accepted_late}, chưa hoàn thành trong hạn "
        f"{o.open_on_time}, chưa hoàn thành quá hạn {o.open_overdue}. Tỷ lệ hoàn thành "
        f"{vn_percent(o.completion_rate)}; tỷ lệ đúng hạn {vn_percent(o.on_time_rate)}; số ngày "
        f"làm việc chậm bình quân {days}; số lần trả lại để hoàn thiện {o.returns}.",
        indent=True,
    )


def _by_section(doc: object, report: PeriodicReport) -> None:
    ev = report.evaluation
    _para(doc, "2. Kết quả theo từng lĩnh vực cải cách hành chính", bold=True)
    for section in report.sections:
        f = ev.by_section.get(section.number)
        _para(doc, f"{section.number}. {section.title}", italic=True, bold=True, after=2)
        if f is None or f.led == 0:
            _para(doc, "Chưa có nhiệm vụ được triển khai trong kỳ.", indent=True)
            continue
        _para(
            doc,
            f"Số nhiệm vụ: {f.led}; hoàn thành đúng hạn {f.accepted_on_time}, hoàn thành quá "
            f"hạn {f.accepted_late}, chưa hoàn thành trong hạn {f.open_on_time}, chưa hoàn "
            f"thành quá hạn {f.open_overdue}; tỷ lệ hoàn thành {vn_percent(f.completion_rate)}, "
            f"tỷ lệ đúng hạn {vn_percent(f.on_time_rate)}.",
            indent=True,
        )
    rows = [
        [f"{s.number}. {s.title}", *figures_row(ev.by_section[s.number])]
        for s in report.sections
        if s.number in ev.by_section
    ]
    rows += [
        [key, *figures_row(f)]
        for key, f in ev.by_section.items()
        if key not in {s.number for s in report.sections}
    ]
    rows.append(["Tổng cộng", *figures_row(ev.overall)])
    _para(doc, "Bảng 1. Kết quả theo lĩnh vực", italic=True, align="center", before=6, after=2)
    _grid(doc, ["Lĩnh vực", *FIGURE_HEADERS], rows, (44, 16, 18, 18, 18, 18, 17, 16), size=11)
    _para(doc, "", after=0)
    chart_rows = [
        (s.number, ev.by_section[s.number]) for s in report.sections if s.number in ev.by_section
    ]
    if chart_rows:
        png = progress_png("Tiến độ theo lĩnh vực cải cách hành chính", chart_rows)
        doc.add_picture(io.BytesIO(png), width=Mm(160))  # type: ignore[attr-defined]
        doc.paragraphs[-1].alignment = WD_ALIGN_PARAGRAPH.CENTER  # type: ignore[attr-defined]


def _by_unit(doc: object, report: PeriodicReport) -> None:
    ev = report.evaluation
    _para(doc, "3. Kết quả theo đơn vị chủ trì", bold=True)
    units = [(code, f) for code, f in ev.by_unit.items() if f.led > 0]
    rows = [[f"{code} - {report.unit_name(code)}", *figures_row(f)] for code, f in units]
    _para(doc, "Bảng 2. Kết quả theo đơn vị chủ trì", italic=True, align="center", after=2)
    _grid(doc, ["Đơn vị", *FIGURE_HEADERS], rows, (44, 16, 18, 18, 18, 18, 17, 16), size=11)
    _para(doc, "", after=0)
    if units:
        png = progress_png("Tiến độ theo đơn vị chủ trì", units)
        doc.add_picture(io.BytesIO(png), width=Mm(160))  # type: ignore[attr-defined]
        doc.paragraphs[-1].alignment = WD_ALIGN_PARAGRAPH.CENTER  # type: ignore[attr-defined]


def _overdue(doc: object, report: PeriodicReport) -> None:
    _para(doc, "4. Nhiệm vụ chưa hoàn thành quá hạn", bold=True)
    late = report.overdue
    if not late:
        _para(doc, "Không có nhiệm vụ chưa hoàn thành quá hạn.", indent=True)
        return
    _para(
        doc,
        f"Đến ngày {vn_date(report.as_of)} còn {len(late)} nhiệm vụ chưa hoàn thành quá hạn, "
        "cụ thể:",
        indent=True,
    )
    rows = [
        [
            str(f.number),
            f.content,
            f"{f.unit} - {report.unit_name(f.unit)}",
            f.period,
            vn_date(f.due) if f.due else "—",
            str(f.working_days_late),
        ]
        for f in late
    ]
    _grid(
        doc,
        ["TT", "Nội dung nhiệm vụ", "Đơn vị chủ trì", "Kỳ", "Hạn", "Số ngày quá hạn"],
        rows,
        (10, 62, 33, 20, 21, 19),
        numeric_from=3,
        size=SMALL_PT,
    )
    _grid_first_col_centre(doc)


def _grid_first_col_centre(doc: object) -> None:
    table = doc.tables[-1]  # type: ignore[attr-defined]
    for row in table.rows[1:]:
        row.cells[0].paragraphs[0].alignment = WD_ALIGN_PARAGRAPH.CENTER


def _kpis(doc: object, report: PeriodicReport) -> None:
    _para(doc, "5. Kết quả thực hiện các chỉ tiêu của Kế hoạch", bold=True)
    verdict = {True: "Đạt", False: "Chưa đạt", None: "Chưa có số liệu"}
    rows = [
        [
            str(i),
            k.name,
            f"{k.comparator} {vn_number(k.threshold)}{k.unit}",
            f"{vn_number(k.value)}{k.unit}" if k.value is not None else "—",
            vn_date(k.measured_on) if k.measured_on else "—",
            verdict[k.met],
        ]
        for i, k in enumerate(report.evaluation.kpis, start=1)
    ]
    _grid(
        doc,
        ["TT", "Chỉ tiêu", "Mục tiêu", "Kết quả", "Ngày đo", "Đánh giá"],
        rows,
        (10, 75, 20, 20, 22, 18),
        numeric_from=2,
        size=SMALL_PT,
    )
    _grid_first_col_centre(doc)


def _inspections(doc: object, report: PeriodicReport) -> None:
    _para(doc, "6. Công tác tự kiểm tra cải cách hành chính", bold=True, before=6)
    c = report.coverage
    missing = ", ".join(c.missing) if c.missing else "không"
    _para(
        doc,
        f"Năm {c.year}: {report.coverage_text} (đơn vị thuộc phạm vi tự kiểm tra: "
        f"{len(c.units)}; đơn vị chưa được xác nhận: {missing}).",
        indent=True,
    )
    _para(doc, "7. Công tác kiểm tra cải cách hành chính", bold=True)
    if not report.inspections:
        _para(doc, "Chưa tiến hành kiểm tra đơn vị nào trong năm.", indent=True)
        return
    rows = []
    for line in report.inspections:
        conclusion = line.conclusion_number or "—"
        if line.conclusion_text:
            conclusion = f"{conclusion}: {line.conclusion_text}"
        corrective = "; ".join(f"{a.description} ({a.state})" for a in line.corrective) or "—"
        rows.append([f"{line.unit} - {line.unit_name}", line.state, conclusion, corrective])
    _grid(
        doc,
        ["Đơn vị được kiểm tra", "Tình trạng", "Thông báo kết luận", "Biện pháp khắc phục"],
        rows,
        (40, 35, 50, 40),
        numeric_from=9,
        size=SMALL_PT,
    )


def _difficulties(doc: object, report: PeriodicReport) -> None:
    _para(doc, "II. KHÓ KHĂN, VƯỚNG MẮC VÀ ĐỀ XUẤT, KIẾN NGHỊ", bold=True, before=6)
    text = report.difficulties or "Không có."
    for line in text.splitlines():
        if line.strip():
            _para(doc, line.strip(), indent=True)
    _para(
        doc,
        f"Trên đây là báo cáo kết quả thực hiện công tác cải cách hành chính "
        f"{report.ref.subject} của Ủy ban nhân dân phường {report.place}./.",
        indent=True,
    )


def _signature(doc: object, report: PeriodicReport) -> None:
    table = _borderless(doc, 2, (85, 80))
    left, right = table.rows[0].cells
    _cell_para(left, "Nơi nhận:", size=12, bold=True, italic=True, align="left", first=True)
    for line in report.recipients:
        _cell_para(left, f"- {line}", size=SMALL_PT, align="left")
    _cell_para(right, "TM. ỦY BAN NHÂN DÂN", size=BODY_PT, bold=True, first=True)
    _cell_para(right, report.signer.title.upper(), size=BODY_PT, bold=True)
    for _ in range(4):
        _cell_para(right, "", size=BODY_PT)
    _cell_para(right, report.signer.name, size=BODY_PT, bold=True)


def _appendix(doc: object, report: PeriodicReport) -> None:
    paragraph = _para(doc, "Phụ lục", bold=True, align="center", after=0)
    paragraph.paragraph_format.page_break_before = True
    _para(
        doc,
        "DANH MỤC NHIỆM VỤ VÀ TÌNH HÌNH THỰC HIỆN",
        bold=True,
        align="center",
        after=0,
    )
    _para(
        doc,
        f"(Kèm theo Báo cáo số      /BC-UBND ngày {vn_date(report.as_of)} của Ủy ban nhân "
        f"dân phường {report.place})",
        italic=True,
        align="center",
        size=13,
    )
    rows = [
        [
            str(f.number),
            f.content,
            f.unit,
            f.period,
            vn_date(f.due) if f.due else "—",
            state_label(f.state),
            NATIONAL_STATUS_LABELS[f.status],
        ]
        for f in report.evaluation.instances
    ]
    _grid(
        doc,
        ["TT", "Nội dung nhiệm vụ", "Đơn vị chủ trì", "Kỳ", "Hạn", "Trạng thái", "Tình trạng"],
        rows,
        (10, 55, 18, 20, 20, 21, 21),
        numeric_from=2,
        size=10,
    )
    _grid_first_col_centre(doc)


def render_docx(report: PeriodicReport) -> bytes:
    """The report as .docx bytes; the same report gives the same bytes."""
    doc = Document()
    _setup(doc, report)
    _heading_block(doc, report)
    _overview(doc, report)
    _by_section(doc, report)
    _by_unit(doc, report)
    _overdue(doc, report)
    _kpis(doc, report)
    _inspections(doc, report)
    _difficulties(doc, report)
    _signature(doc, report)
    _appendix(doc, report)
    out = io.BytesIO()
    doc.save(out)
    return reproducible_zip(out.getvalue(), report.as_of)
