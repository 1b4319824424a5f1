"""Import a plan's appendix task table (tab-separated text or .docx) into a definition file."""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, cast

import docx
from docx.table import _Row

from definitions.calendar import WorkingCalendar, load_calendar
from definitions.loader import (
    PlanDefinition,
    PlanDefinitionError,
    dump_plan_yaml,
    plan_from_data,
    plan_to_dict,
)
from definitions.products import ProductVocabulary, load_products
from definitions.text import clean_cell, name_key
from definitions.timeframe import TimeframeError, parse_timeframe
from definitions.units import UnitCatalog, UnitNameError, load_units
from definitions.yamlio import read_yaml

_REQUIRED_COLUMNS = frozenset({"number", "content", "lead", "timeframe"})
_TASK_NUMBER = re.compile(r"(\d+)\.?")
# A section row: a roman numeral, then its title in the same cell or in the content cell.
_SECTION = re.compile(r"(?P<number>[IVXLC]+)(?:\s*[.):-]\s*(?P<title>.*))?")
_CELL_LABELS = {
    "content": "Nội dung nhiệm vụ",
    "lead": "Cơ quan chủ trì",
    "coordinators": "Cơ quan phối hợp",
    "timeframe": "Thời gian thực hiện",
    "products": "Sản phẩm",
}


def default_base_path() -> Path:
    """Return the base file of the 2026 plan of phường Trần Hưng Đạo."""
    return Path(__file__).parent / "data" / "tran-hung-dao-2026.base.yaml"


class ImportProblems(ValueError):
    """Everything in a table that the importer could not map, each with its task or row."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(
            "Không nhập được kế hoạch:\n" + "\n".join(f"- {problem}" for problem in self.problems)
        )


@dataclass(frozen=True)
class RawRow:
    """One row of the task table with its cells by meaning; `location` says where it was."""

    location: str
    number: str
    content: str
    lead: str
    coordinators: str
    timeframe: str
    products: str


_CELLS = tuple(field.name for field in fields(RawRow) if field.name != "location")


def _column_of(header: str) -> str | None:
    key = name_key(header)
    if key in {"tt", "stt", "số tt", "số thứ tự"}:
        return "number"
    if key.startswith(("nội dung", "nhiệm vụ", "tên nhiệm vụ")):
        return "content"
    if "chủ trì" in key:
        return "lead"
    if "phối hợp" in key:
        return "coordinators"
    if key.startswith(("thời gian", "thời hạn", "tiến độ")):
        return "timeframe"
    if "sản phẩm" in key or key.startswith("kết quả"):
        return "products"
    return None


def _header_columns(cells: Sequence[str]) -> dict[str, int] | None:
    """Return the column of each cell meaning if `cells` is a header row, else None."""
    columns: dict[str, int] = {}
    for index, cell in enumerate(cells):
        column = _column_of(cell)
        if column is not None and column not in columns:
            columns[column] = index
    return columns if columns.keys() >= _REQUIRED_COLUMNS else None


def _raw_row(cells: Sequence[str], columns: Mapping[str, int], location: str) -> RawRow:
    def cell(name: str) -> str:
        index = columns.get(name)
        return clean_cell(cells[index]) if index is not None and index < len(cells) else ""

    return RawRow(location, *(cell(name) for name in _CELLS))


def _rows_under_headers(
    table: Sequence[tuple[str, Sequence[str]]],
) -> tuple[list[RawRow], bool]:
    """Read rows after a header row; later header rows (page breaks) are dropped."""
    rows: list[RawRow] = []
    columns: dict[str, int] | None = None
    found = False
    for location, cells in table:
        header = _header_columns(cells)
        if header is not None:
            columns, found = header, True
        elif columns is not None and any(cell.strip() for cell in cells):
            rows.append(_raw_row(cells, columns, location))
    return rows, found


def read_appendix_tsv(path: str | Path) -> list[RawRow]:
    """Read the task table of a text file whose table rows are tab-separated.

    The table starts at its header row (TT, Nội dung, Cơ quan chủ trì, Thời gian ...); lines
    without a tab (page numbers, prose) are not rows.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    table = [
        (f"dòng {number}", line.split("\t"))
        for number, line in enumerate(lines, start=1)
        if "\t" in line
    ]
    rows, found = _rows_under_headers(table)
    if not found:
        raise ImportProblems([f"{path.name}: không tìm thấy hàng tiêu đề của bảng nhiệm vụ"])
    return rows


def _docx_cells(row: _Row) -> list[str]:
    """Return a row's text per grid column; a merged cell's text sits in its first column."""
    values = [""] * row.grid_cols_before
    cells = row.cells
    index = 0
    while index < len(cells):
        cell = cells[index]
        span = max(cell.grid_span, 1)
        texts = (paragraph.text.strip() for paragraph in cell.paragraphs)
        values.append(" ".join(text for text in texts if text))
        values.extend([""] * (span - 1))
        index += span
    return values


def read_appendix_docx(path: str | Path) -> list[RawRow]:
    """Read the task table(s) of a .docx: every table with a TT / Nội dung / chủ trì header."""
    path = Path(path)
    document = docx.Document(str(path))
    rows: list[RawRow] = []
    found = False
    for table_number, table in enumerate(document.tables, start=1):
        table_rows, has_header = _rows_under_headers(
            [
                (f"bảng {table_number}, hàng {row_number}", _docx_cells(row))
                for row_number, row in enumerate(table.rows, start=1)
            ]
        )
        rows.extend(table_rows)
        found = found or has_header
    if not found:
        raise ImportProblems([f"{path.name}: không có bảng nào có tiêu đề của bảng nhiệm vụ"])
    return rows


def _section_of(row: RawRow) -> tuple[str, str] | None:
    match = _SECTION.fullmatch(row.number)
    if match is not None:
        return match["number"], (match["title"] or row.content).strip()
    only_content = not (row.lead or row.coordinators or row.timeframe or row.products)
    match = _SECTION.fullmatch(row.content) if not row.number and only_content else None
    if match is not None and match["title"]:
        return match["number"], match["title"].strip()
    return None


def _join(task: RawRow, continuation: RawRow) -> RawRow:
    """Append a continuation row's cells (a task cut by a page break) to its task's cells."""
    joined = {}
    for name in _CELLS:
        head, tail = getattr(task, name), getattr(continuation, name)
        joined[name] = f"{head} {tail}" if head and tail else head or tail
    return replace(task, **joined)


@dataclass(frozen=True)
class _TableTask:
    number: int
    section: str | None
    row: RawRow


def _group_rows(
    rows: Sequence[RawRow], problems: list[str]
) -> tuple[list[dict[str, str]], list[_TableTask]]:
    """Sort rows into sections and tasks, joining continuation rows to the task before them."""
    sections: list[dict[str, str]] = []
    tasks: list[_TableTask] = []
    current: str | None = None
    for row in rows:
        section = _section_of(row)
        number = _TASK_NUMBER.fullmatch(row.number)
        if section is not None:
            current = section[0]
            sections.append({"number": section[0], "title": section[1]})
        elif number is not None:
            tasks.append(_TableTask(int(number[1]), current, row))
        elif row.number:
            problems.append(f'{row.location}: không hiểu số thứ tự "{row.number}"')
        elif tasks:
            tasks[-1] = replace(tasks[-1], row=_join(tasks[-1].row, row))
        else:
            problems.append(f"{row.location}: dòng tiếp nối không có nhiệm vụ nào trước nó")
    return sections, tasks


class _TaskBuilder:
    """Turns table tasks into task entries, noting every cell it cannot map."""

    def __init__(
        self,
        year: int,
        units: UnitCatalog,
        calendar: WorkingCalendar,
        products: ProductVocabulary,
    ) -> None:
        self.year = year
        self.units = units
        self.calendar = calendar
        self.products = products
        self.problems: list[str] = []

    def _note(self, number: int, column: str, detail: object) -> None:
        self.problems.append(f'nhiệm vụ {number}, cột "{_CELL_LABELS[column]}": {detail}')

    def build(self, task: _TableTask) -> dict[str, Any]:
        row, number = task.row, task.number
        if not row.content:
            self.problems.append(f'nhiệm vụ {number}: cột "{_CELL_LABELS["content"]}" để trống')
        leads: tuple[str, ...] = ()
        coordinators: tuple[str, ...] = ()
        schedule: dict[str, object] = {}
        try:
            leads = self.units.resolve_lead(row.lead)
        except UnitNameError as error:
            self._note(number, "lead", error)
        try:
            coordinators = self.units.resolve_coordinators(row.coordinators)
        except UnitNameError as error:
            self._note(number, "coordinators", error)
        try:
            schedule = parse_timeframe(row.timeframe, self.year, self.calendar).to_json()
        except TimeframeError as error:
            self._note(number, "timeframe", error)
        products = []
        for name in self.products.split(row.products):
            kind = self.products.classify(name)
            if kind is None:
                self._note(number, "products", f'không nhận ra loại sản phẩm "{name}"')
            products.append({"name": name, "kind": kind})
        return {
            "number": number,
            "section": task.section,
            "content": row.content,
            "lead_text": row.lead,
            "leads": list(leads),
            "coordinators_text": row.coordinators,
            "coordinators": list(coordinators),
            "timeframe": row.timeframe,
            "schedule": schedule,
            "products": products,
        }


def build_plan(
    rows: Sequence[RawRow],
    metadata: Mapping[str, Any],
    units: UnitCatalog,
    *,
    calendar: WorkingCalendar | None = None,
    products: ProductVocabulary | None = None,
) -> dict[str, Any]:
    """Build a plan document from table rows and the base metadata (everything but the table).

    Raises ImportProblems listing every cell it cannot map (unknown unit names, timeframes,
    product kinds) and every row it cannot place; nothing is guessed.
    """
    year = metadata.get("year")
    if not isinstance(year, int) or isinstance(year, bool):
        raise ImportProblems(['tệp cơ sở: thiếu năm của kế hoạch ("year")'])
    builder = _TaskBuilder(year, units, calendar or load_calendar(), products or load_products())
    sections, table_tasks = _group_rows(rows, builder.problems)
    tasks = [builder.build(task) for task in table_tasks]
    numbers = [task.number for task in table_tasks]
    for number in sorted({n for n in numbers if numbers.count(n) > 1}):
        builder.problems.append(f"nhiệm vụ {number}: số thứ tự bị trùng")
    for number in sorted(set(range(1, max(numbers, default=0) + 1)) - set(numbers)):
        builder.problems.append(
            f"nhiệm vụ {number}: không có trong bảng (số thứ tự phải liên tục từ 1)"
        )
    if builder.problems:
        raise ImportProblems(builder.problems)
    plan = {key: value for key, value in metadata.items() if key not in ("sections", "tasks")}
    return {**plan, "sections": sections, "tasks": tasks}


def _read_base(path: Path) -> dict[str, Any]:
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise PlanDefinitionError(path, "tệp cơ sở phải là một bảng khóa–giá trị")
    return cast(dict[str, Any], data)


def import_plan(
    path: str | Path,
    out_path: str | Path,
    base: str | Path | None = None,
    *,
    units: UnitCatalog | None = None,
) -> PlanDefinition:
    """Import the task table of `path` (.docx, else tab-separated text) into `out_path`.

    `base` holds what the table does not (metadata, reporting regime, KPIs, policy); by default
    the base of the 2026 plan of phường Trần Hưng Đạo. The written file is checked like any
    definition file before it is written.
    """
    path, out_path = Path(path), Path(out_path)
    rows = read_appendix_docx(path) if path.suffix.lower() == ".docx" else read_appendix_tsv(path)
    units = units or load_units()
    calendar, products = load_calendar(), load_products()
    data = build_plan(
        rows,
        _read_base(Path(base) if base else default_base_path()),
        units,
        calendar=calendar,
        products=products,
    )
    plan = plan_from_data(data, out_path, units=units, calendar=calendar, products=products)
    out_path.write_text(dump_plan_yaml(plan_to_dict(plan)), encoding="utf-8")
    return plan
