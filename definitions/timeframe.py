"""Parse a task's timeframe phrase ("Quý I/2026", "Thường xuyên", ...) into dated periods."""

import calendar as month_calendar
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Literal

from definitions.calendar import WorkingCalendar

ScheduleKind = Literal["deadline", "window", "recurring", "ongoing", "on_event"]

# The plan's reporting regime (section IV.1.c): work that goes on all year is reported each
# quarter before the 5th of the quarter's last month, so that is when each quarter is due.
ONGOING_REPORT_DAY = 5

_ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}
_QUARTER_NUMBER = {"i": 1, "ii": 2, "iii": 3, "iv": 4}


class TimeframeError(ValueError):
    """A timeframe phrase that the parser does not understand."""

    def __init__(self, text: str) -> None:
        super().__init__(f'Không hiểu được thời hạn "{text}"')
        self.text = text


@dataclass(frozen=True)
class Period:
    """One stretch of work: its label, its first day, and its due date (None until set)."""

    label: str
    start: date
    due: date | None

    def to_json(self) -> dict[str, str | None]:
        return {
            "label": self.label,
            "start": self.start.isoformat(),
            "due": None if self.due is None else self.due.isoformat(),
        }


@dataclass(frozen=True)
class Schedule:
    """The parsed form of a timeframe phrase; `text` is the phrase verbatim."""

    kind: ScheduleKind
    periods: tuple[Period, ...]
    text: str

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "periods": [period.to_json() for period in self.periods]}


# Pieces of the patterns below, matched against the normalised phrase (see _normalise).
_Y = r"\d{4}"
_M = r"0?[1-9]|1[0-2]"
_D = r"0?[1-9]|[12]\d|3[01]"
_Q = r"iv|i{1,3}|0?[1-4]"
_RANGE = r"(?:-|, | đến | tới | và )(?:hết )?"
_IN = r"(?:trong |suốt )?"
_EVERY = r"(?:định kỳ )?(?:hàng |mỗi |từng )"


def _year_suffix(name: str) -> str:
    return rf"(?:(?:/| năm | )(?P<{name}>{_Y}))?"


def _date(name: str) -> str:
    return rf"(?P<{name}_d>{_D})[/.](?P<{name}_m>{_M})(?:[/.](?P<{name}_y>{_Y}))?"


_Builder = Callable[[re.Match[str], int, WorkingCalendar], tuple[ScheduleKind, list[Period]]]


def _normalise(text: str) -> str:
    phrase = unicodedata.normalize("NFC", text).casefold()
    phrase = re.sub(r"[\u2010-\u2015\u2212]", "-", phrase)
    phrase = re.sub(r"\s+", " ", phrase).strip().rstrip(".;").strip()
    phrase = re.sub(r"\s*([/-])\s*", r"\1", phrase)
    phrase = re.sub(r"\s*,\s*", ", ", phrase)
    phrase = phrase.replace("hằng", "hàng")
    phrase = re.sub(r"ngày (\d{1,2}) tháng (\d{1,2})(?: năm |/)(\d{4})", r"ngày \1/\2/\3", phrase)
    phrase = re.sub(r"ngày (\d{1,2}) tháng (\d{1,2})\b", r"ngày \1/\2", phrase)
    return re.sub(r"^(?:hoàn thành|thực hiện|triển khai) ", "", phrase)


def _month_end(year: int, month: int) -> date:
    return date(year, month, month_calendar.monthrange(year, month)[1])


def _quarter(token: str) -> int:
    return _QUARTER_NUMBER.get(token) or int(token)


def _year_of(match: re.Match[str], group: str, default: int) -> int:
    value = match.group(group)
    return int(value) if value else default


def _date_of(match: re.Match[str], prefix: str, default_year: int) -> date:
    return date(
        _year_of(match, f"{prefix}_y", default_year),
        int(match.group(f"{prefix}_m")),
        int(match.group(f"{prefix}_d")),
    )


def _by(calendar: WorkingCalendar, limit: date) -> date:
    return calendar.last_working_day_on_or_before(limit)


def _before(calendar: WorkingCalendar, limit: date) -> date:
    return calendar.last_working_day_before(limit)


def _quarter_label(year: int, quarter: int) -> str:
    return f"Quý {_ROMAN[quarter]}/{year}"


def _quarter_start(year: int, quarter: int) -> date:
    return date(year, 3 * quarter - 2, 1)


def _deadline(label: str, start: date, due: date) -> list[Period]:
    # A deadline early in January can fall before the year starts; a period never ends
    # before it begins.
    return [Period(label, min(start, due), due)]


def _build_on_event(
    _match: re.Match[str], year: int, _calendar: WorkingCalendar
) -> tuple[ScheduleKind, list[Period]]:
    return "on_event", [Period(f"Năm {year}", date(year, 1, 1), None)]


def _build_before_date(
    match: re.Match[str], year: int, calendar: WorkingCalendar
) -> tuple[ScheduleKind, list[Period]]:
    limit = _date_of(match, "a", year)
    label = f"Trước ngày {limit:%d/%m/%Y}"
    return "deadline", _deadline(label, date(year, 1, 1), _before(calendar, limit))


def _build_by_date(
    match: re.Match[str], year: int, calendar: WorkingCalendar
) -> tuple[ScheduleKind, list[Period]]:
    limit = _date_of(match, "a", year)
    label = f"Đến ngày {limit:%d/%m/%Y}"
    return "deadline", _deadline(label, date(year, 1, 1), _by(calendar, limit))


def _build_date_window(
    match: re.Match[str], year: int, calendar: WorkingCalendar
) -> tuple[ScheduleKind, list[Period]]:
    end = _date_of(match, "b", year)
    start = _date_of(match, "a", end.year)
    if not match.group("a_y") and start > end:
        start = start.replace(year=end.year - 1)
    if start > end:
        raise ValueError("window ends before it starts")
    label = f"Từ {start:%d/%m/%Y} đến {end:%d/%m/%Y}"
    return "window", [Period(label, start, _by(calendar, end))]


def _each_quarter(year: int, due: Callable[[int], date]) -> list[Period]:
    return [
        Period(_quarter_label(year, quarter), _quarter_start(year, quarter), due(quarter))
        for quarter in range(1, 5)
    ]


def _each_month(year: int, due: Callable[[int], date]) -> list[Period]:
    return [
        Period(f"Tháng {month:02d}/{year}", date(year, month, 1), due(month))
        for month in range(1, 13)
    ]


def _build_before_day_of_quarter_end(
    match: re.Match[str], year: int, calendar: WorkingCalendar
) -> tuple[ScheduleKind, list[Period]]:
    day, year = int(match.group("day")), _year_of(match, "y", year)
    return "recurring", _each_quarter(
        year, lambda quarter: _before(calendar, date(year, 3 * quarter, day))
    )


def _build_before_day_of_month(
    match: re.Match[str], year: int, calendar: WorkingCalendar
) -> tuple[ScheduleKind, list[Period]]:
    day, year = int(match.group("day")), _year_of(match, "y", year)
    return "recurring", _each_month(year, lambda month: _before(calendar, date(year, month, day)))


def _build_before_day_of_year(
    match: re.Match[str], year: int, calendar: WorkingCalendar
) -> tuple[ScheduleKind, list[Period]]:
    limit = date(year, int(match.group("month")), int(match.group("day")))
    return "recurring", _deadline(f"Năm {year}", date(year, 1, 1), _before(calendar, limit))


def _build_ongoing(
    match: re.Match[str], year: int, calendar: WorkingCalendar
) -> tuple[ScheduleKind, list[Period]]:
    year = _year_of(match, "y", year)
    return "ongoing", _each_quarter(
        year, lambda quarter: _before(calendar, date(year, 3 * quarter, ONGOING_REPORT_DAY))
    )


def _build_every_month(
    match: re.Match[str], year: int, calendar: WorkingCalendar
) -> tuple[ScheduleKind, list[Period]]:
    year = _year_of(match, "y", year)
    return "recurring", _each_month(year, lambda month: _by(calendar, _month_end(year, month)))


def _build_every_quarter(
    match: re.Match[str], year: int, calendar: WorkingCalendar
) -> tuple[ScheduleKind, list[Period]]:
    year = _year_of(match, "y", year)
    return "recurring", _each_quarter(
        year, lambda quarter: _by(calendar, _month_end(year, 3 * quarter))
    )


def _half_year(year: int, half: int, calendar: WorkingCalendar) -> Period:
    name = "đầu" if half == 1 else "cuối"
    return Period(
        f"6 tháng {name} năm {year}",
        date(year, 6 * half - 5, 1),
        _by(calendar, _month_end(year, 6 * half)),
    )


def _build_every_half_year(
    match: re.Match[str], year: int, calendar: WorkingCalendar
) -> tuple[ScheduleKind, list[Period]]:
    year = _year_of(match, "y", year)
    return "recurring", [_half_year(year, 1, calendar), _half_year(year, 2, calendar)]


def _build_every_year(
    match: re.Match[str], year: int, calendar: WorkingCalendar
) -> tuple[ScheduleKind, list[Period]]:
    year = _year_of(match, "y", year)
    return "recurring", [Period(f"Năm {year}", date(year, 1, 1), _by(calendar, date(year, 12, 31)))]


def _build_half_year(
    match: re.Match[str], year: int, calendar: WorkingCalendar
) -> tuple[ScheduleKind, list[Period]]:
    half = 1 if match.group("half") == "đầu" else 2
    return "window", [_half_year(_year_of(match, "y", year), half, calendar)]


def _build_year(
    match: re.Match[str], year: int, calendar: WorkingCalendar
) -> tuple[ScheduleKind, list[Period]]:
    year = _year_of(match, "y", year)
    return "deadline", [Period(f"Năm {year}", date(year, 1, 1), _by(calendar, date(year, 12, 31)))]


def _build_quarter(
    match: re.Match[str], year: int, calendar: WorkingCalendar
) -> tuple[ScheduleKind, list[Period]]:
    quarter = _quarter(match.group("q"))
    year = _year_of(match, "y", year)
    end = _month_end(year, 3 * quarter)
    label = _quarter_label(year, quarter)
    return "deadline", [Period(label, _quarter_start(year, quarter), _by(calendar, end))]


def _build_quarter_range(
    match: re.Match[str], year: int, calendar: WorkingCalendar
) -> tuple[ScheduleKind, list[Period]]:
    first, last = _quarter(match.group("q1")), _quarter(match.group("q2"))
    last_year = _year_of(match, "y2", year)
    first_year = _year_of(match, "y1", last_year if first <= last else last_year - 1)
    if (first_year, first) >= (last_year, last):
        raise ValueError("range ends before it starts")
    if first_year == last_year:
        label = f"Quý {_ROMAN[first]}–{_ROMAN[last]}/{last_year}"
    else:
        label = f"Quý {_ROMAN[first]}/{first_year}–{_ROMAN[last]}/{last_year}"
    end = _month_end(last_year, 3 * last)
    return "window", [Period(label, _quarter_start(first_year, first), _by(calendar, end))]


def _build_month(
    match: re.Match[str], year: int, calendar: WorkingCalendar
) -> tuple[ScheduleKind, list[Period]]:
    month = int(match.group("m"))
    year = _year_of(match, "y", year)
    end = _month_end(year, month)
    return "window", [Period(f"Tháng {month:02d}/{year}", date(year, month, 1), _by(calendar, end))]


def _build_month_range(
    match: re.Match[str], year: int, calendar: WorkingCalendar
) -> tuple[ScheduleKind, list[Period]]:
    first, last = int(match.group("m1")), int(match.group("m2"))
    last_year = _year_of(match, "y2", year)
    first_year = _year_of(match, "y1", last_year if first <= last else last_year - 1)
    if (first_year, first) >= (last_year, last):
        raise ValueError("range ends before it starts")
    if first_year == last_year:
        label = f"Tháng {first:02d}–{last:02d}/{last_year}"
    else:
        label = f"Tháng {first:02d}/{first_year}–{last:02d}/{last_year}"
    end = _month_end(last_year, last)
    return "window", [Period(label, date(first_year, first, 1), _by(calendar, end))]


_RULES: tuple[tuple[re.Pattern[str], _Builder], ...] = tuple(
    (re.compile(pattern), builder)
    for pattern, builder in (
        # A date set later by someone else: "Khi thành phố triển khai ...", "Theo ... của Bộ Y tế".
        (r"(?:sau khi|ngay khi|khi) \S.*", _build_on_event),
        (r"theo (?:yêu cầu|chỉ đạo|hướng dẫn)(?: .*)?|theo .+ của .+", _build_on_event),
        (rf"trước(?: ngày)? {_date('a')}", _build_before_date),
        (
            rf"(?:chậm nhất|muộn nhất|hạn chót|hạn cuối|đến hết|đến|vào|trong)(?: là)?"
            rf"(?: ngày)? {_date('a')}",
            _build_by_date,
        ),
        (rf"ngày {_date('a')}", _build_by_date),
        (rf"(?:từ )?(?:ngày )?{_date('a')}{_RANGE}(?:ngày )?{_date('b')}", _build_date_window),
        (
            rf"trước ngày (?P<day>{_D}) (?:của |trong )?tháng cuối (?:của )?(?:mỗi |hàng |các )?"
            rf"quý{_year_suffix('y')}",
            _build_before_day_of_quarter_end,
        ),
        (
            rf"trước ngày (?P<day>{_D}) (?:của )?(?:hàng|mỗi|các) tháng{_year_suffix('y')}",
            _build_before_day_of_month,
        ),
        (rf"trước ngày (?P<day>{_D})/(?P<month>{_M}) (?:hàng|mỗi) năm", _build_before_day_of_year),
        (
            rf"thường xuyên(?:, liên tục| liên tục)?(?: trong năm| hàng năm)?{_year_suffix('y')}",
            _build_ongoing,
        ),
        (rf"{_EVERY}tháng{_year_suffix('y')}", _build_every_month),
        (rf"{_EVERY}quý{_year_suffix('y')}", _build_every_quarter),
        (
            rf"(?:{_EVERY}|định kỳ )6 tháng(?: một lần)?{_year_suffix('y')}",
            _build_every_half_year,
        ),
        (rf"{_EVERY}năm{_year_suffix('y')}", _build_every_year),
        (rf"{_IN}(?:6|sáu) tháng (?P<half>đầu|cuối) năm{_year_suffix('y')}", _build_half_year),
        (rf"{_IN}(?:cả |trong cả )?năm{_year_suffix('y')}", _build_year),
        (rf"{_IN}quý (?P<q>{_Q}){_year_suffix('y')}", _build_quarter),
        (
            rf"(?:từ )?quý (?P<q1>{_Q}){_year_suffix('y1')}{_RANGE}(?:quý )?(?P<q2>{_Q})"
            rf"{_year_suffix('y2')}",
            _build_quarter_range,
        ),
        (rf"{_IN}tháng (?P<m>{_M}){_year_suffix('y')}", _build_month),
        (
            rf"(?:từ )?tháng (?P<m1>{_M}){_year_suffix('y1')}{_RANGE}(?:tháng )?(?P<m2>{_M})"
            rf"{_year_suffix('y2')}",
            _build_month_range,
        ),
    )
)


def parse_timeframe(text: str, year: int, calendar: WorkingCalendar) -> Schedule:
    """Parse a timeframe phrase for a plan of `year`; due dates are working days of `calendar`.

    The due date is the last working day that satisfies the phrase: "Trước ngày D" is strictly
    before D, and the last day of a month, quarter, half-year, year or window is inside it.
    Raises TimeframeError for a phrase it does not understand, never guessing a default.
    """
    phrase = _normalise(text)
    for pattern, build in _RULES:
        match = pattern.fullmatch(phrase)
        if match is None:
            continue
        try:
            kind, periods = build(match, year, calendar)
        except ValueError:
            # An impossible date such as 31/02, or a range that ends before it starts.
            raise TimeframeError(text) from None
        return Schedule(kind, tuple(periods), text)
    raise TimeframeError(text)
