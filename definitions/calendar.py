"""The Vietnamese working-day calendar: the `holidays` package (VN) under announced overrides."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal, cast, get_args

import holidays

from definitions.yamlio import read_yaml

OverrideChange = Literal["day_off", "working_day", "not_a_holiday"]
_CHANGES: tuple[str, ...] = get_args(OverrideChange)
_SATURDAY = 5
# No stretch of days off in Vietnam comes near a year; a longer search means a broken calendar.
_MAX_SEARCH_DAYS = 366


def default_overrides_path() -> Path:
    """Return the path of the checked-in override table."""
    return Path(__file__).parent / "data" / "calendar_overrides.yaml"


class CalendarError(ValueError):
    """The override table is malformed."""


@dataclass(frozen=True)
class CalendarOverride:
    """One announced change to the package calendar, with the document that announced it."""

    day: date
    change: OverrideChange
    name: str
    document: str


@dataclass(frozen=True)
class _Year:
    days_off: Mapping[date, str]
    working_weekend_days: frozenset[date]


class WorkingCalendar:
    """Working days Monday–Friday (QĐ 188/1999/QĐ-TTg) minus public holidays and days off."""

    def __init__(self, overrides: Iterable[CalendarOverride] = ()) -> None:
        self.overrides: tuple[CalendarOverride, ...] = tuple(overrides)
        self._years: dict[int, _Year] = {}
        # Per year: running[k] = working days among the year's first k days (k = 0..length).
        self._running: dict[int, tuple[int, ...]] = {}

    def _year(self, year: int) -> _Year:
        cached = self._years.get(year)
        if cached is not None:
            return cached
        package = holidays.country_holidays("VN", years=year, language="vi")
        days_off = {day: str(name) for day, name in package.items() if day.year == year}
        working = {day for day in package.weekend_workdays if day.year == year}
        for override in self.overrides:
            if override.day.year != year:
                continue
            if override.change == "day_off":
                days_off[override.day] = override.name
                working.discard(override.day)
            elif override.change == "working_day":
                days_off.pop(override.day, None)
                working.add(override.day)
            else:
                days_off.pop(override.day, None)
        built = _Year(days_off=days_off, working_weekend_days=frozenset(working))
        self._years[year] = built
        return built

    def is_working_day(self, day: date) -> bool:
        """Say whether `day` is a working day."""
        year = self._year(day.year)
        if day in year.days_off:
            return False
        return day.weekday() < _SATURDAY or day in year.working_weekend_days

    def holiday_name(self, day: date) -> str | None:
        """Return the Vietnamese name of the holiday or day off on `day`, or None."""
        return self._year(day.year).days_off.get(day)

    def last_working_day_on_or_before(self, day: date) -> date:
        """Return `day` if it is a working day, else the nearest working day before it."""
        candidate = day
        for _ in range(_MAX_SEARCH_DAYS):
            if self.is_working_day(candidate):
                return candidate
            candidate -= timedelta(days=1)
        raise CalendarError(f"Không tìm thấy ngày làm việc nào trước ngày {day:%d/%m/%Y}")

    def last_working_day_before(self, day: date) -> date:
        """Return the nearest working day strictly before `day`."""
        return self.last_working_day_on_or_before(day - timedelta(days=1))

    def add_working_days(self, day: date, count: int) -> date:
        """Return the date `count` working days after `day` (before it when `count` < 0)."""
        step = timedelta(days=1 if count > 0 else -1)
        remaining = abs(count)
        current = day
        while remaining:
            current += step
            if self.is_working_day(current):
                remaining -= 1
        return current

    def _running_counts(self, year: int) -> tuple[int, ...]:
        cached = self._running.get(year)
        if cached is not None:
            return cached
        first = date(year, 1, 1)
        length = (date(year + 1, 1, 1) - first).days
        counts = [0]
        for offset in range(length):
            counts.append(counts[-1] + self.is_working_day(first + timedelta(days=offset)))
        built = tuple(counts)
        self._running[year] = built
        return built

    def _through(self, day: date) -> int:
        """Working days from 1 January of `day`'s year through `day`."""
        return self._running_counts(day.year)[day.timetuple().tm_yday]

    def working_days_between(self, start: date, end: date) -> int:
        """Count the working days in (start, end]; 0 when `end` is not after `start`.

        Constant time once each year involved has been counted (one pass over its days)."""
        if end <= start:
            return 0
        if start.year == end.year:
            return self._through(end) - self._through(start)
        total = self._running_counts(start.year)[-1] - self._through(start)
        for year in range(start.year + 1, end.year):
            total += self._running_counts(year)[-1]
        return total + self._through(end)


def _read_override(row: object, position: int) -> CalendarOverride:
    where = f"dòng ngoại lệ thứ {position}"
    if not isinstance(row, dict):
        raise CalendarError(f"{where}: phải là một bảng khóa–giá trị")
    fields = cast(dict[str, object], row)
    missing = [key for key in ("date", "change", "name", "document") if key not in fields]
    if missing:
        raise CalendarError(f'{where}: thiếu trường "{missing[0]}"')
    raw_day, change = fields["date"], fields["change"]
    name, document = fields["name"], fields["document"]
    try:
        day = raw_day if isinstance(raw_day, date) else date.fromisoformat(str(raw_day))
    except ValueError:
        raise CalendarError(f'{where}: ngày "{raw_day}" không hợp lệ (YYYY-MM-DD)') from None
    if change not in _CHANGES:
        raise CalendarError(f'{where}: loại thay đổi "{change}" không hợp lệ')
    if not isinstance(name, str) or not isinstance(document, str) or not document.strip():
        raise CalendarError(f'{where}: "name" và "document" phải là văn bản, không để trống')
    return CalendarOverride(day, cast(OverrideChange, change), name, document)


def load_overrides(path: str | Path) -> tuple[CalendarOverride, ...]:
    """Read an override table (see calendar_overrides.yaml for its form)."""
    path = Path(path)
    data = read_yaml(path)
    rows = data.get("overrides") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise CalendarError(f'{path.name}: thiếu danh sách "overrides"')
    overrides = tuple(_read_override(row, index) for index, row in enumerate(rows, start=1))
    days = [override.day for override in overrides]
    duplicates = sorted({day for day in days if days.count(day) > 1})
    if duplicates:
        raise CalendarError(f"{path.name}: ngày {duplicates[0]:%d/%m/%Y} có hai dòng ngoại lệ")
    return overrides


def load_calendar(overrides_path: str | Path | None = None) -> WorkingCalendar:
    """Build the working calendar from the package and the override table."""
    return WorkingCalendar(load_overrides(overrides_path or default_overrides_path()))
