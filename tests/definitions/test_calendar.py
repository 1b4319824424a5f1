"""Tests of the working calendar: every 2026 day off and make-up day of DOMAIN.md is pinned."""

from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from definitions.calendar import (
    CalendarError,
    WorkingCalendar,
    default_overrides_path,
    load_calendar,
    load_overrides,
)

# Weekdays off in 2026, as announced (DOMAIN.md).
DAYS_OFF_2026 = {
    date(2026, 1, 1): "Tết Dương lịch",
    date(2026, 1, 2): "Nghỉ Tết Dương lịch (hoán đổi, làm bù thứ Bảy 10/01/2026)",
    date(2026, 2, 16): "Giao thừa Tết Nguyên Đán",
    date(2026, 2, 17): "Tết Nguyên Đán",
    date(2026, 2, 18): "Mùng hai Tết Nguyên Đán",
    date(2026, 2, 19): "Mùng ba Tết Nguyên Đán",
    date(2026, 2, 20): "Mùng bốn Tết Nguyên Đán",
    date(2026, 4, 27): "Ngày Giỗ Tổ Hùng Vương (nghỉ bù)",
    date(2026, 4, 30): "Ngày Chiến thắng",
    date(2026, 5, 1): "Ngày Quốc tế Lao động",
    date(2026, 8, 31): "Ngày nghỉ (thay cho ngày 22/08/2026)",
    date(2026, 9, 1): "Quốc khánh",
    date(2026, 9, 2): "Quốc khánh",
}
MAKE_UP_SATURDAYS_2026 = {date(2026, 1, 10), date(2026, 8, 22)}

# Hypothesis tests share one calendar: function-scoped fixtures do not mix with @given.
CALENDAR = load_calendar()
days = st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31))


def _year(year: int) -> list[date]:
    first = date(year, 1, 1)
    return [first + timedelta(days=offset) for offset in range((date(year + 1, 1, 1) - first).days)]


def test_the_weekdays_off_in_2026_are_exactly_the_announced_ones(calendar: WorkingCalendar) -> None:
    weekdays_off = {
        day for day in _year(2026) if day.weekday() < 5 and not calendar.is_working_day(day)
    }
    assert weekdays_off == set(DAYS_OFF_2026)


def test_the_working_weekend_days_in_2026_are_exactly_the_make_up_saturdays(
    calendar: WorkingCalendar,
) -> None:
    working_weekend = {
        day for day in _year(2026) if day.weekday() >= 5 and calendar.is_working_day(day)
    }
    assert working_weekend == MAKE_UP_SATURDAYS_2026


@pytest.mark.parametrize(("day", "name"), sorted(DAYS_OFF_2026.items()))
def test_each_2026_day_off_has_its_vietnamese_name(
    calendar: WorkingCalendar, day: date, name: str
) -> None:
    assert not calendar.is_working_day(day)
    assert calendar.holiday_name(day) == name


@pytest.mark.parametrize("day", sorted(MAKE_UP_SATURDAYS_2026))
def test_make_up_saturdays_are_working_days(calendar: WorkingCalendar, day: date) -> None:
    assert day.weekday() == 5
    assert calendar.is_working_day(day)
    assert calendar.holiday_name(day) is None


def test_giỗ_tổ_on_a_sunday_is_named_and_the_monday_after_is_off(
    calendar: WorkingCalendar,
) -> None:
    assert calendar.holiday_name(date(2026, 4, 26)) == "Ngày Giỗ Tổ Hùng Vương"
    assert not calendar.is_working_day(date(2026, 4, 26))
    assert not calendar.is_working_day(date(2026, 4, 27))


def test_24_november_is_not_a_holiday(calendar: WorkingCalendar) -> None:
    assert calendar.is_working_day(date(2026, 11, 24))
    assert calendar.holiday_name(date(2026, 11, 24)) is None


@pytest.mark.parametrize(
    "day", [date(2026, 1, 3), date(2026, 1, 4), date(2026, 3, 7), date(2026, 10, 31)]
)
def test_ordinary_weekends_are_days_off_without_a_name(
    calendar: WorkingCalendar, day: date
) -> None:
    assert not calendar.is_working_day(day)
    assert calendar.holiday_name(day) is None


@pytest.mark.parametrize(
    "day", [date(2026, 1, 5), date(2026, 2, 13), date(2026, 2, 23), date(2026, 12, 31)]
)
def test_ordinary_weekdays_are_working_days(calendar: WorkingCalendar, day: date) -> None:
    assert calendar.is_working_day(day)


def test_last_working_day_before_is_strict(calendar: WorkingCalendar) -> None:
    assert calendar.last_working_day_before(date(2026, 1, 15)) == date(2026, 1, 14)
    assert calendar.last_working_day_before(date(2026, 1, 3)) == date(2025, 12, 31)
    assert calendar.last_working_day_before(date(2026, 1, 12)) == date(2026, 1, 10)


def test_last_working_day_on_or_before_keeps_a_working_day(calendar: WorkingCalendar) -> None:
    assert calendar.last_working_day_on_or_before(date(2026, 12, 31)) == date(2026, 12, 31)
    assert calendar.last_working_day_on_or_before(date(2026, 2, 22)) == date(2026, 2, 13)
    assert calendar.last_working_day_on_or_before(date(2026, 8, 31)) == date(2026, 8, 28)


def test_add_working_days_skips_tết(calendar: WorkingCalendar) -> None:
    assert calendar.add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 23)
    assert calendar.add_working_days(date(2026, 2, 23), -1) == date(2026, 2, 13)
    assert calendar.add_working_days(date(2026, 2, 14), 0) == date(2026, 2, 14)


def test_working_days_between_counts_the_half_open_interval(calendar: WorkingCalendar) -> None:
    assert calendar.working_days_between(date(2026, 2, 13), date(2026, 2, 23)) == 1
    assert calendar.working_days_between(date(2026, 1, 9), date(2026, 1, 12)) == 2
    assert calendar.working_days_between(date(2026, 3, 2), date(2026, 3, 2)) == 0
    assert calendar.working_days_between(date(2026, 3, 9), date(2026, 3, 2)) == 0


@settings(deadline=None)  # the first call of a year builds it from the package
@given(day=days, count=st.integers(min_value=0, max_value=60))
def test_adding_working_days_and_counting_them_agree(day: date, count: int) -> None:
    calendar = CALENDAR
    later = calendar.add_working_days(day, count)
    assert calendar.working_days_between(day, later) == count
    if count:
        assert calendar.is_working_day(later)
        assert calendar.add_working_days(later, -count) <= day


@settings(deadline=None)  # the first call of a year builds it from the package
@given(day=days)
def test_the_last_working_day_before_leaves_no_working_day_in_between(day: date) -> None:
    calendar = CALENDAR
    before = calendar.last_working_day_before(day)
    assert before < day
    assert calendar.is_working_day(before)
    assert calendar.working_days_between(before, day - timedelta(days=1)) == 0


def test_every_override_row_names_its_document() -> None:
    overrides = load_overrides(default_overrides_path())
    assert {(row.day, row.change) for row in overrides} == {
        (date(2026, 1, 2), "day_off"),
        (date(2026, 1, 10), "working_day"),
        (date(2026, 11, 24), "not_a_holiday"),
    }
    assert all(row.document.strip() for row in overrides)
    assert "12729/VPCP-KGVX" in overrides[0].document


def test_a_local_override_table_changes_the_calendar(tmp_path: Path) -> None:
    table = tmp_path / "overrides.yaml"
    table.write_text(
        "overrides:\n"
        "  - {date: '2026-06-01', change: day_off, name: Nghỉ thử, document: Văn bản thử}\n",
        encoding="utf-8",
    )
    calendar = load_calendar(table)
    assert not calendar.is_working_day(date(2026, 6, 1))
    assert calendar.holiday_name(date(2026, 6, 1)) == "Nghỉ thử"
    # Without the default table, the package's 24/11 and missing 02/01 come back.
    assert calendar.is_working_day(date(2026, 1, 2))
    assert not calendar.is_working_day(date(2026, 11, 24))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("  - {date: '2026-06-01', change: holiday, name: X, document: Y}\n", "holiday"),
        ("  - {date: '2026-13-01', change: day_off, name: X, document: Y}\n", "2026-13-01"),
        ("  - {date: '2026-06-01', change: day_off, name: X}\n", "document"),
        (
            "  - {date: '2026-06-01', change: day_off, name: X, document: Y}\n"
            "  - {date: '2026-06-01', change: working_day, name: X, document: Y}\n",
            "01/06/2026",
        ),
    ],
)
def test_a_malformed_override_table_is_refused(tmp_path: Path, rows: str, message: str) -> None:
    table = tmp_path / "overrides.yaml"
    table.write_text("overrides:\n" + rows, encoding="utf-8")
    with pytest.raises(CalendarError, match=message):
        load_overrides(table)


@settings(max_examples=300, deadline=None)
@given(
    start=st.dates(min_value=date(2024, 12, 1), max_value=date(2028, 2, 1)),
    span=st.integers(min_value=-40, max_value=900),
)
def test_working_days_between_equals_counting_day_by_day(start: date, span: int) -> None:
    """The constant-time count (running totals per year) agrees with the definition: the
    working days in (start, end], across year boundaries and backwards intervals."""
    calendar = load_calendar()
    end = start + timedelta(days=span)
    naive = sum(
        calendar.is_working_day(start + timedelta(days=k)) for k in range(1, (end - start).days + 1)
    )
    assert calendar.working_days_between(start, end) == naive
