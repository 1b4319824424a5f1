"""Tests of the plan loader: the checked-in 2026 plan, its round trip, and every refusal."""

import json
import unicodedata
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from definitions.loader import (
    PlanDefinition,
    PlanDefinitionError,
    default_plan_path,
    dump_plan_yaml,
    load_plan,
    plan_to_dict,
    validate_plan,
)

FILE_NAME = "tran-hung-dao-2026.yaml"

Change = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def plan() -> PlanDefinition:
    return load_plan(default_plan_path())


def _seed_tasks(seed: Path) -> dict[int, list[str]]:
    """The appendix rows of the seed by task number, read as plainly as possible."""
    lines = seed.read_text(encoding="utf-8").split("Phụ lục", 1)[1].splitlines()
    tasks: dict[int, list[str]] = {}
    last = 0
    for line in lines:
        cells = [cell.strip() for cell in line.split("\t")]
        if len(cells) < 6:
            continue
        if cells[0].isdigit():
            last = int(cells[0])
            tasks[last] = cells[1:6]
        elif not cells[0] and cells[1]:
            tasks[last][0] += " " + cells[1]
    return tasks


def test_the_plan_has_48_tasks_in_7_sections(plan: PlanDefinition) -> None:
    assert [task.number for task in plan.tasks] == list(range(1, 49))
    assert [(section.number, section.title) for section in plan.sections] == [
        ("I", "Chỉ đạo điều hành, kiểm tra và tuyên truyền"),
        ("II", "Cải cách thể chế"),
        ("III", "Cải cách thủ tục hành chính"),
        ("IV", "Cải cách tổ chức bộ máy"),
        ("V", "Cải cách chế độ công vụ"),
        ("VI", "Cải cách tài chính công"),
        ("VII", "Xây dựng Chính quyền điện tử, Chính quyền số"),
    ]
    first_of_section = {"I": 1, "II": 11, "III": 18, "IV": 30, "V": 32, "VI": 37, "VII": 41}
    for task in plan.tasks:
        later = [number for number in first_of_section.values() if number <= task.number]
        assert first_of_section[task.section or ""] == max(later)


def test_the_plan_metadata(plan: PlanDefinition) -> None:
    assert plan.code == "tran-hung-dao-2026"
    assert plan.issuer == "Ủy ban nhân dân phường Trần Hưng Đạo"
    assert (plan.organization, plan.city, plan.year) == ("tran-hung-dao", "Hải Phòng", 2026)
    assert (plan.signer.name, plan.signer.title) == ("Nguyễn Văn Hà", "Chủ tịch")
    assert [(basis.number, basis.date) for basis in plan.legal_bases] == [
        ("76/NQ-CP", date(2021, 7, 15)),
        ("5256/QĐ-UBND", date(2025, 12, 26)),
    ]
    assert plan.policy.submit_requires_head
    assert plan.policy.outstanding_contributions in ("block", "explain")


def test_the_reporting_regime_keeps_due_dates_and_cut_offs_apart(plan: PlanDefinition) -> None:
    regime = plan.reporting
    assert (regime.recipient, regime.via) == ("Ủy ban nhân dân phường", "VHXH")
    reports = {report.code: report for report in regime.reports}
    quarter = reports["quarter"].periods
    assert [period.due_before for period in quarter] == [
        date(2026, 3, 5),
        date(2026, 6, 5),
        date(2026, 9, 5),
        date(2026, 12, 5),
    ]
    assert [period.due for period in quarter] == [
        date(2026, 3, 4),
        date(2026, 6, 4),
        date(2026, 9, 4),
        date(2026, 12, 4),
    ]
    assert (quarter[0].cutoff_start, quarter[0].cutoff_end) == (
        date(2025, 12, 15),
        date(2026, 3, 14),
    )
    assert (quarter[3].cutoff_start, quarter[3].cutoff_end) == (
        date(2026, 9, 15),
        date(2026, 12, 14),
    )
    (half_year,) = reports["half-year"].periods
    assert half_year.due_before == date(2026, 6, 5)
    (year,) = reports["year"].periods
    assert (year.due_before, year.cutoff_start, year.cutoff_end) == (
        date(2026, 12, 5),
        date(2025, 12, 15),
        date(2026, 12, 14),
    )
    (budget,) = reports["budget-estimate"].periods
    assert (budget.due_before, budget.due) == (date(2026, 1, 25), date(2026, 1, 23))


def test_the_kpis_of_section_i2(plan: PlanDefinition) -> None:
    assert {(kpi.code, kpi.comparator, kpi.threshold, kpi.task) for kpi in plan.kpis} == {
        ("sipas_satisfaction", ">=", Decimal(95), 3),
        ("health_satisfaction", ">=", Decimal(90), 4),
        ("education_satisfaction", ">=", Decimal(90), 5),
        ("online_payment", ">=", Decimal(90), 22),
        ("public_investment_disbursement", ">=", Decimal(95), 40),
        ("procedures_published", ">=", Decimal(100), 19),
        ("units_self_inspecting", ">=", Decimal(100), None),
        ("units_inspected", ">=", Decimal(20), 6),
    }
    assert all(kpi.unit == "%" for kpi in plan.kpis)


def test_group_leads_and_coordinators_are_resolved(plan: PlanDefinition) -> None:
    for number in (20, 24, 25, 26):
        assert plan.task(number).leads == ("VP", "KTHTDT", "VHXH")
    assert plan.task(42).leads == ("CAP",)
    assert plan.task(20).coordinators == ("TTPVHCC",)
    assert plan.task(4).coordinators == ("related_units", "YTE")
    assert plan.task(5).coordinators == ("related_units", "GDDT")
    assert plan.task(46).coordinators == ("related_units", "TCNSCD")
    assert all(task.leads for task in plan.tasks)


def test_the_tasks_keep_the_seed_text_verbatim(plan: PlanDefinition, seed_path: Path) -> None:
    seed = _seed_tasks(seed_path)
    for task in plan.tasks:
        content, lead, coordinators, timeframe, products = seed[task.number]
        assert task.content == content
        assert (task.lead_text, task.coordinators_text, task.timeframe) == (
            lead,
            coordinators,
            timeframe,
        )
        assert all(product.name in products for product in task.products)
    assert plan.task(33).content.endswith(
        "phường Trần Hưng Đạo theo Nghị quyết số 53/2025/NQ-HĐND."
    )


def test_the_schedules_follow_the_2026_calendar(plan: PlanDefinition) -> None:
    assert plan.task(1).schedule.periods[0].due == date(2026, 1, 14)
    assert [period.due for period in plan.task(2).schedule.periods] == [
        date(2026, 3, 9),
        date(2026, 6, 9),
        date(2026, 9, 9),
        date(2026, 12, 9),
    ]
    assert plan.task(4).schedule.kind == "on_event"
    assert plan.task(37).schedule.periods[0].due == date(2026, 5, 29)
    assert plan.task(46).schedule.periods[0].due == date(2026, 9, 30)


def test_the_checked_in_file_is_in_the_canonical_form(plan: PlanDefinition) -> None:
    text = default_plan_path().read_text(encoding="utf-8")
    assert dump_plan_yaml(plan_to_dict(plan)) == text


def test_the_plan_as_json_is_the_file_data(plan: PlanDefinition) -> None:
    data = json.loads(json.dumps(plan.to_json(), ensure_ascii=False))
    assert data == yaml.safe_load(default_plan_path().read_text(encoding="utf-8"))
    assert len(data["tasks"]) == 48
    assert len(data["sections"]) == 7


def test_the_checked_in_file_holds_no_float_and_only_nfc_text() -> None:
    def walk(value: object) -> None:
        assert not isinstance(value, float)
        if isinstance(value, str):
            assert unicodedata.is_normalized("NFC", value)
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        if isinstance(value, list):
            for item in value:
                walk(item)

    walk(yaml.safe_load(default_plan_path().read_text(encoding="utf-8")))


def test_validate_plan_finds_nothing_in_the_checked_in_file() -> None:
    assert validate_plan(default_plan_path()) == []


def _write(tmp_path: Path, change: Change) -> Path:
    data = yaml.safe_load(default_plan_path().read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / FILE_NAME
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _task(number: int, key: str, value: object) -> Change:
    def change(data: dict[str, Any]) -> None:
        data["tasks"][number - 1][key] = value

    return change


def _drop_task_field(number: int, key: str) -> Change:
    def change(data: dict[str, Any]) -> None:
        del data["tasks"][number - 1][key]

    return change


def _drop_task(number: int) -> Change:
    def change(data: dict[str, Any]) -> None:
        del data["tasks"][number - 1]

    return change


def _first_product_kind(kind: str) -> Change:
    def change(data: dict[str, Any]) -> None:
        data["tasks"][0]["products"][0]["kind"] = kind

    return change


def _first_due(due: str) -> Change:
    def change(data: dict[str, Any]) -> None:
        data["tasks"][0]["schedule"]["periods"][0]["due"] = due

    return change


def _kpi(index: int, key: str, value: object) -> Change:
    def change(data: dict[str, Any]) -> None:
        data["kpis"][index][key] = value

    return change


def _drop_top(key: str) -> Change:
    def change(data: dict[str, Any]) -> None:
        del data[key]

    return change


def _first_report_due(due: str) -> Change:
    def change(data: dict[str, Any]) -> None:
        data["reporting"]["reports"][0]["periods"][0]["due"] = due

    return change


REFUSALS: list[tuple[str, Change, int | None, str, str]] = [
    ("unknown lead unit", _task(12, "leads", ["XYZ"]), 12, "leads", 'không có đơn vị mã "XYZ"'),
    ("unit that cannot lead", _task(1, "leads", ["YTE"]), 1, "leads", "không được chủ trì"),
    (
        "unknown coordinator",
        _task(5, "coordinators", ["related_units", "ABC"]),
        5,
        "coordinators",
        'không có đơn vị hoặc nhóm mã "ABC"',
    ),
    ("duplicate number", _task(13, "number", 12), 12, "number", "số thứ tự bị trùng"),
    ("missing number", _drop_task(7), 7, "number", "thiếu nhiệm vụ số 7"),
    ("empty content", _task(3, "content", "  "), 3, "content", "không được để trống"),
    (
        "unparseable timeframe",
        _task(9, "timeframe", "Sớm nhất có thể"),
        9,
        "timeframe",
        'Không hiểu được thời hạn "Sớm nhất có thể"',
    ),
    (
        "unknown product kind",
        _first_product_kind("bai_tho"),
        1,
        "products",
        'không có loại sản phẩm "bai_tho"',
    ),
    ("missing field", _drop_task_field(4, "lead_text"), 4, "lead_text", "thiếu trường bắt buộc"),
    ("wrong type of list", _task(6, "leads", "VHXH"), 6, "leads", "phải là một danh sách"),
    ("wrong type of text", _task(6, "timeframe", 2026), 6, "timeframe", "phải là văn bản"),
    ("schedule differs", _first_due("2026-01-15"), 1, "schedule", "khác với kết quả phân tích"),
    ("unknown field", _task(1, "owner", "VHXH"), 1, "owner", "không có trong lược đồ"),
    ("unknown section", _task(1, "section", "IX"), 1, "section", 'không có phần "IX"'),
    ("float threshold", _kpi(0, "threshold", 95.0), None, "kpis", "không dùng số thực"),
    ("kpi of no task", _kpi(3, "task", 99), None, "kpis", "không có nhiệm vụ số 99"),
    ("missing plan field", _drop_top("year"), None, "year", "thiếu trường bắt buộc"),
    ("report due wrong", _first_report_due("2026-03-05"), None, "reporting", "04/03/2026"),
]


@pytest.mark.parametrize(
    ("change", "task_number", "field", "detail"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
def test_a_bad_file_is_refused_naming_file_task_and_field(
    tmp_path: Path, change: Change, task_number: int | None, field: str, detail: str
) -> None:
    path = _write(tmp_path, change)
    with pytest.raises(PlanDefinitionError) as caught:
        load_plan(path)
    error = caught.value
    assert (error.path, error.task_number, error.field) == (path, task_number, field)
    message = str(error)
    assert message.startswith(f"{FILE_NAME}: ")
    if task_number is not None:
        assert f"nhiệm vụ {task_number}, " in message
    assert f'trường "{field}"' in message
    assert detail in message
    assert validate_plan(path)


def test_the_message_reads_as_documented(tmp_path: Path) -> None:
    with pytest.raises(PlanDefinitionError) as caught:
        load_plan(_write(tmp_path, _task(12, "leads", ["XYZ"])))
    assert str(caught.value) == (
        'tran-hung-dao-2026.yaml: nhiệm vụ 12, trường "leads": không có đơn vị mã "XYZ"'
    )


def test_a_task_whose_number_is_unreadable_is_named_by_position(tmp_path: Path) -> None:
    with pytest.raises(PlanDefinitionError) as caught:
        load_plan(_write(tmp_path, _task(2, "number", "hai")))
    assert str(caught.value) == (
        'tran-hung-dao-2026.yaml: nhiệm vụ thứ 2 trong danh sách, trường "number": '
        "phải là số nguyên"
    )


def test_validate_plan_lists_every_problem(tmp_path: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        _task(12, "leads", ["XYZ"])(data)
        _task(30, "timeframe", "Sớm")(data)
        _drop_task(48)(data)
        _drop_task(40)(data)

    problems = validate_plan(_write(tmp_path, change))
    assert problems == [
        'tran-hung-dao-2026.yaml: nhiệm vụ 12, trường "leads": không có đơn vị mã "XYZ"',
        'tran-hung-dao-2026.yaml: nhiệm vụ 30, trường "timeframe": Không hiểu được thời hạn "Sớm"',
        'tran-hung-dao-2026.yaml: nhiệm vụ 40, trường "number": '
        "thiếu nhiệm vụ số 40: các nhiệm vụ phải được đánh số liên tục từ 1",
        'tran-hung-dao-2026.yaml: trường "kpis": '
        "public_investment_disbursement: không có nhiệm vụ số 40",
    ]


def test_a_file_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    path.write_text("tasks: [\n", encoding="utf-8")
    with pytest.raises(PlanDefinitionError, match=f"^{FILE_NAME}: không đọc được YAML") as caught:
        load_plan(path)
    assert (caught.value.task_number, caught.value.field) == (None, None)
    assert validate_plan(tmp_path / "missing.yaml") == [
        "missing.yaml: không mở được tệp (No such file or directory)"
    ]
