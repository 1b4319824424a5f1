"""Tests of the importer: the seed reproduces the checked-in plan, from text and from .docx."""

from pathlib import Path

import docx
import pytest
import yaml

from definitions.calendar import WorkingCalendar
from definitions.importer import (
    ImportProblems,
    RawRow,
    build_plan,
    default_base_path,
    import_plan,
    read_appendix_docx,
    read_appendix_tsv,
)
from definitions.loader import default_plan_path, load_plan
from definitions.products import ProductVocabulary
from definitions.units import UnitCatalog

HEADER = "TT\tNội dung nhiệm vụ\tCơ quan chủ trì\tCơ quan phối hợp\tThời gian hoàn thành\tSản phẩm"


def _appendix_lines(seed: Path) -> list[list[str]]:
    """The seed's appendix table as rows of cells, from its first header row on."""
    lines = seed.read_text(encoding="utf-8").splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("TT\t"))
    return [line.split("\t") for line in lines[start:] if "\t" in line]


def _write_docx(path: Path, rows: list[list[str]]) -> None:
    """Write rows as Word tables, a new table at each header row as on a new page; a section
    row is one cell merged across the table."""
    document = docx.Document()
    document.add_paragraph("Phụ lục")
    table = None
    for cells in rows:
        if cells[0] == "TT" or table is None:
            table = document.add_table(rows=0, cols=6)
        row = table.add_row()
        if cells[0] and not any(cells[1:]):
            merged = row.cells[0].merge(row.cells[5])
            merged.text = cells[0]
            continue
        for cell, text in zip(row.cells, cells, strict=False):
            cell.text = text
    document.save(str(path))


def _base_without_kpis(tmp_path: Path) -> Path:
    """A base for another locality: the seed's metadata without its KPIs (they name tasks)."""
    base = yaml.safe_load(default_base_path().read_text(encoding="utf-8"))
    base.update(code="le-chan-2026", kpis=[])
    path = tmp_path / "le-chan-2026.base.yaml"
    path.write_text(yaml.safe_dump(base, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_importing_the_seed_reproduces_the_checked_in_plan(seed_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.yaml"
    plan = import_plan(seed_path, out)
    assert out.read_bytes() == default_plan_path().read_bytes()
    assert len(plan.tasks) == 48


def test_the_seed_table_drops_repeated_headers_and_joins_the_continuation(seed_path: Path) -> None:
    rows = read_appendix_tsv(seed_path)
    assert not any(row.number == "TT" for row in rows)
    continuation = [row for row in rows if not row.number]
    assert [row.content for row in continuation] == ["Hưng Đạo theo Nghị quyết số 53/2025/NQ-HĐND."]
    assert sum(row.number.isdigit() for row in rows) == 48


def test_a_docx_of_the_same_table_imports_to_the_same_plan(seed_path: Path, tmp_path: Path) -> None:
    source = tmp_path / "ke-hoach.docx"
    lines = _appendix_lines(seed_path)
    assert sum(cells[0] == "TT" for cells in lines) > 1
    _write_docx(source, lines)
    out = tmp_path / "plan.yaml"
    import_plan(source, out)
    assert out.read_bytes() == default_plan_path().read_bytes()


def test_docx_merged_cells_keep_their_text_in_their_first_column(tmp_path: Path) -> None:
    document = docx.Document()
    table = document.add_table(rows=4, cols=6)
    for cell, text in zip(table.rows[0].cells, HEADER.split("\t"), strict=True):
        cell.text = text
    table.cell(1, 0).merge(table.cell(1, 5)).text = "I. Cải cách thể chế"
    for row, number in ((2, "1"), (3, "2")):
        table.cell(row, 0).text = number
        table.cell(row, 1).text = f"Việc {number}"
        table.cell(row, 4).text = "Cả năm 2026"
        table.cell(row, 5).text = "Báo cáo"
    # One lead cell for both tasks, merged down the column as Word plans often do.
    table.cell(2, 2).merge(table.cell(3, 2)).text = "Công an phường"
    path = tmp_path / "bang.docx"
    document.save(str(path))
    rows = read_appendix_docx(path)
    assert [(row.number, row.content, row.lead) for row in rows] == [
        ("I. Cải cách thể chế", "", ""),
        ("1", "Việc 1", "Công an phường"),
        ("2", "Việc 2", "Công an phường"),
    ]


def test_unknown_names_and_phrases_are_reported_never_guessed(
    tmp_path: Path, units: UnitCatalog
) -> None:
    source = tmp_path / "bang.txt"
    source.write_text(
        "\n".join(
            [
                HEADER,
                "I. Cải cách thể chế\t\t\t\t\t",
                "1\tViệc A\tPhòng Tư pháp\tCác phòng, ban, đơn vị có liên quan\tQuý I/2026"
                "\tBáo cáo",
                "2\tViệc B\tPhòng Văn hóa - Xã hội\tPhòng Nội vụ; Công an phường\tSớm"
                "\tBảng tổng hợp",
                "3\t\tCông an phường\t\tNăm 2026\tBáo cáo",
            ]
        ),
        encoding="utf-8",
    )
    with pytest.raises(ImportProblems) as caught:
        import_plan(source, tmp_path / "out.yaml")
    assert caught.value.problems == (
        'nhiệm vụ 1, cột "Cơ quan chủ trì": Không nhận ra đơn vị: "Phòng Tư pháp"',
        'nhiệm vụ 2, cột "Cơ quan phối hợp": Không nhận ra đơn vị: "Phòng Nội vụ"',
        'nhiệm vụ 2, cột "Thời gian thực hiện": Không hiểu được thời hạn "Sớm"',
        'nhiệm vụ 2, cột "Sản phẩm": không nhận ra loại sản phẩm "Bảng tổng hợp"',
        'nhiệm vụ 3: cột "Nội dung nhiệm vụ" để trống',
    )
    assert not (tmp_path / "out.yaml").exists()


def test_a_table_with_extra_columns_and_no_sections_imports(tmp_path: Path) -> None:
    source = tmp_path / "bang.txt"
    source.write_text(
        "Kế hoạch của phường Lê Chân\n\n"
        "STT\tNhiệm vụ\tĐơn vị chủ trì\tĐơn vị phối hợp\tKinh phí\tThời hạn hoàn thành"
        "\tKết quả/sản phẩm\tGhi chú\n"
        "1\tRà soát TTHC\tTrung tâm Phục vụ hành chính công\tCác phòng, ban, đơn vị có liên quan"
        "\t50\tHằng quý\tBáo cáo\t\n"
        "2\tTập huấn CCHC\tPhòng Văn hoá - Xã hội\t\t20\tTháng 6/2026\tLớp tập huấn\tkhông\n",
        encoding="utf-8",
    )
    out = tmp_path / "le-chan-2026.yaml"
    plan = import_plan(source, out, _base_without_kpis(tmp_path))
    assert plan.sections == ()
    assert [(task.section, task.leads, task.coordinators) for task in plan.tasks] == [
        (None, ("TTPVHCC",), ("related_units",)),
        (None, ("VHXH",), ()),
    ]
    assert plan.tasks[1].schedule.periods[0].label == "Tháng 06/2026"
    assert [product.kind for product in plan.tasks[1].products] == ["lop_tap_huan"]
    assert load_plan(out) == plan


def test_continuation_rows_join_every_cell(
    units: UnitCatalog, calendar: WorkingCalendar, products: ProductVocabulary
) -> None:
    rows = [
        RawRow("dòng 1", "1", "Xây dựng cơ chế", "Phòng Văn hóa -", "", "Cả năm", "Văn bản"),
        RawRow("dòng 2", "", "thu hút nhân tài", "Xã hội", "", "2026", "triển khai"),
    ]
    data = build_plan(rows, {"year": 2026}, units, calendar=calendar, products=products)
    (task,) = data["tasks"]
    assert (task["content"], task["lead_text"], task["timeframe"]) == (
        "Xây dựng cơ chế thu hút nhân tài",
        "Phòng Văn hóa - Xã hội",
        "Cả năm 2026",
    )
    assert task["products"] == [{"name": "Văn bản triển khai", "kind": "van_ban"}]
    assert task["section"] is None


def test_rows_that_are_not_tasks_are_reported(
    units: UnitCatalog, calendar: WorkingCalendar, products: ProductVocabulary
) -> None:
    rows = [
        RawRow("dòng 5", "", "dòng lạc", "", "", "", ""),
        RawRow("dòng 6", "a)", "Việc a", "Công an phường", "", "Năm 2026", "Báo cáo"),
        RawRow("dòng 7", "2", "Việc 2", "Công an phường", "", "Năm 2026", "Báo cáo"),
        RawRow("dòng 8", "2", "Việc 2", "Công an phường", "", "Năm 2026", "Báo cáo"),
    ]
    with pytest.raises(ImportProblems) as caught:
        build_plan(rows, {"year": 2026}, units, calendar=calendar, products=products)
    assert caught.value.problems == (
        "dòng 5: dòng tiếp nối không có nhiệm vụ nào trước nó",
        'dòng 6: không hiểu số thứ tự "a)"',
        "nhiệm vụ 2: số thứ tự bị trùng",
        "nhiệm vụ 1: không có trong bảng (số thứ tự phải liên tục từ 1)",
    )


def test_a_file_without_the_table_header_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "van-ban.txt"
    source.write_text("Kế hoạch\n1\tViệc A\n", encoding="utf-8")
    with pytest.raises(ImportProblems, match="không tìm thấy hàng tiêu đề"):
        read_appendix_tsv(source)
    document = tmp_path / "van-ban.docx"
    docx.Document().save(str(document))
    with pytest.raises(ImportProblems, match="không có bảng nào"):
        read_appendix_docx(document)
