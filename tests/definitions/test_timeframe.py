"""Tests of the timeframe parser: every phrase of the seed, other localities' phrasings, errors."""

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from definitions.calendar import WorkingCalendar, load_calendar
from definitions.timeframe import Period, Schedule, TimeframeError, parse_timeframe

CALENDAR = load_calendar()
ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}

Row = tuple[str, str, str]  # label, start, due (ISO; "" for no due date)


def _periods(schedule: Schedule) -> list[Row]:
    return [
        (period.label, period.start.isoformat(), period.due.isoformat() if period.due else "")
        for period in schedule.periods
    ]


# Due dates worked out by hand on the 2026 calendar (weekday of each limit in the comment).
SEED_PHRASES: list[tuple[str, str, list[Row]]] = [
    # 15/01 is a Thursday: strictly before it is Wednesday 14/01.
    (
        "Trước ngày 15/01/2026",
        "deadline",
        [("Trước ngày 15/01/2026", "2026-01-01", "2026-01-14")],
    ),
    # Before the 10th of March (Tue), June (Wed), September (Thu), December (Thu).
    (
        "Trước ngày 10 của tháng cuối quý",
        "recurring",
        [
            ("Quý I/2026", "2026-01-01", "2026-03-09"),
            ("Quý II/2026", "2026-04-01", "2026-06-09"),
            ("Quý III/2026", "2026-07-01", "2026-09-09"),
            ("Quý IV/2026", "2026-10-01", "2026-12-09"),
        ],
    ),
    # 31/12/2026 is a Thursday.
    ("Cả năm 2026", "deadline", [("Năm 2026", "2026-01-01", "2026-12-31")]),
    ("Năm 2026", "deadline", [("Năm 2026", "2026-01-01", "2026-12-31")]),
    (
        "Theo thời gian đánh giá hàng năm của Bộ Y tế",
        "on_event",
        [("Năm 2026", "2026-01-01", "")],
    ),
    ("Khi thành phố triển khai KH tổ chức", "on_event", [("Năm 2026", "2026-01-01", "")]),
    # 31/03/2026 is a Tuesday.
    ("Quý I năm 2026", "deadline", [("Quý I/2026", "2026-01-01", "2026-03-31")]),
    ("Quý I/2026", "deadline", [("Quý I/2026", "2026-01-01", "2026-03-31")]),
    # Before the 5th of March (Thu), June (Fri), September (Sat), December (Sat).
    (
        "Thường xuyên",
        "ongoing",
        [
            ("Quý I/2026", "2026-01-01", "2026-03-04"),
            ("Quý II/2026", "2026-04-01", "2026-06-04"),
            ("Quý III/2026", "2026-07-01", "2026-09-04"),
            ("Quý IV/2026", "2026-10-01", "2026-12-04"),
        ],
    ),
    # Quarter ends: Tue 31/03, Tue 30/06, Wed 30/09, Thu 31/12.
    (
        "Hàng quý",
        "recurring",
        [
            ("Quý I/2026", "2026-01-01", "2026-03-31"),
            ("Quý II/2026", "2026-04-01", "2026-06-30"),
            ("Quý III/2026", "2026-07-01", "2026-09-30"),
            ("Quý IV/2026", "2026-10-01", "2026-12-31"),
        ],
    ),
    # 31/05/2026 is a Sunday: Friday 29/05.
    (
        "Tháng 01/2026 đến tháng 5 năm 2026",
        "window",
        [("Tháng 01–05/2026", "2026-01-01", "2026-05-29")],
    ),
    # 31/10/2026 is a Saturday: Friday 30/10.
    ("Tháng 10/2026", "window", [("Tháng 10/2026", "2026-10-01", "2026-10-30")]),
    # 30/09/2026 is a Wednesday.
    ("Tháng 8-9/2026", "window", [("Tháng 08–09/2026", "2026-08-01", "2026-09-30")]),
]

OTHER_PHRASES: list[tuple[str, str, list[Row]]] = [
    ("Hằng quý", "recurring", SEED_PHRASES[9][2]),
    ("Quý II/2026", "deadline", [("Quý II/2026", "2026-04-01", "2026-06-30")]),
    ("Quý 3/2026", "deadline", [("Quý III/2026", "2026-07-01", "2026-09-30")]),
    ("Quý IV năm 2026", "deadline", [("Quý IV/2026", "2026-10-01", "2026-12-31")]),
    ("Trong quý I", "deadline", [("Quý I/2026", "2026-01-01", "2026-03-31")]),
    ("Cả năm", "deadline", [("Năm 2026", "2026-01-01", "2026-12-31")]),
    # 30/11 is a Monday: before it, past the weekend, Friday 27/11.
    ("Trước 30/11/2026", "deadline", [("Trước ngày 30/11/2026", "2026-01-01", "2026-11-27")]),
    # 03/01 is a Saturday; 02/01 and 01/01 are off: 31/12/2025.
    ("Trước ngày 3/1/2026", "deadline", [("Trước ngày 03/01/2026", "2025-12-31", "2025-12-31")]),
    # Monday 12/01: the Saturday before, 10/01, is a make-up working day.
    ("Trước ngày 12/1/2026", "deadline", [("Trước ngày 12/01/2026", "2026-01-01", "2026-01-10")]),
    # Tuesday 24/11 is a working day, not a holiday.
    ("Trước ngày 25/11/2026", "deadline", [("Trước ngày 25/11/2026", "2026-01-01", "2026-11-24")]),
    # "Chậm nhất" includes the day; 15/03/2026 is a Sunday: Friday 13/03.
    (
        "Chậm nhất ngày 15 tháng 3 năm 2026",
        "deadline",
        [("Đến ngày 15/03/2026", "2026-01-01", "2026-03-13")],
    ),
    ("6 tháng đầu năm", "window", [("6 tháng đầu năm 2026", "2026-01-01", "2026-06-30")]),
    ("6 tháng cuối năm 2026", "window", [("6 tháng cuối năm 2026", "2026-07-01", "2026-12-31")]),
    # 30/04 is a holiday: Wednesday 29/04.
    ("Tháng 4/2026", "window", [("Tháng 04/2026", "2026-04-01", "2026-04-29")]),
    ("Tháng 8, 9/2026", "window", [("Tháng 08–09/2026", "2026-08-01", "2026-09-30")]),
    ("Tháng 8 - 9/2026", "window", [("Tháng 08–09/2026", "2026-08-01", "2026-09-30")]),
    # 28/02/2027 is a Sunday: Friday 26/02.
    (
        "Từ tháng 11 đến tháng 2/2027",
        "window",
        [("Tháng 11/2026–02/2027", "2026-11-01", "2027-02-26")],
    ),
    ("Quý II - Quý III/2026", "window", [("Quý II–III/2026", "2026-04-01", "2026-09-30")]),
    (
        "Từ ngày 01/3/2026 đến ngày 30/6/2026",
        "window",
        [("Từ 01/03/2026 đến 30/06/2026", "2026-03-01", "2026-06-30")],
    ),
    ("Hằng năm", "recurring", [("Năm 2026", "2026-01-01", "2026-12-31")]),
    # 05/12 is a Saturday: Friday 04/12.
    ("Trước ngày 05/12 hàng năm", "recurring", [("Năm 2026", "2026-01-01", "2026-12-04")]),
    (
        "Định kỳ 6 tháng",
        "recurring",
        [
            ("6 tháng đầu năm 2026", "2026-01-01", "2026-06-30"),
            ("6 tháng cuối năm 2026", "2026-07-01", "2026-12-31"),
        ],
    ),
    ("Thường xuyên, liên tục", "ongoing", SEED_PHRASES[8][2]),
    ("Theo yêu cầu của UBND thành phố", "on_event", [("Năm 2026", "2026-01-01", "")]),
    ("Khi có chỉ đạo", "on_event", [("Năm 2026", "2026-01-01", "")]),
]


@pytest.mark.parametrize(("text", "kind", "periods"), SEED_PHRASES + OTHER_PHRASES)
def test_phrase_parses_to_its_schedule(
    calendar: WorkingCalendar, text: str, kind: str, periods: list[Row]
) -> None:
    schedule = parse_timeframe(text, 2026, calendar)
    assert schedule.kind == kind
    assert _periods(schedule) == periods
    assert schedule.text == text


def test_monthly_recurrence_is_due_at_each_month_end(calendar: WorkingCalendar) -> None:
    schedule = parse_timeframe("Hằng tháng", 2026, calendar)
    assert schedule.kind == "recurring"
    assert [period.due for period in schedule.periods] == [
        date(2026, 1, 30),  # Sat 31/01
        date(2026, 2, 27),  # Sat 28/02
        date(2026, 3, 31),
        date(2026, 4, 29),  # 30/04 holiday
        date(2026, 5, 29),  # Sun 31/05
        date(2026, 6, 30),
        date(2026, 7, 31),
        date(2026, 8, 28),  # Mon 31/08 off, then the weekend
        date(2026, 9, 30),
        date(2026, 10, 30),  # Sat 31/10
        date(2026, 11, 30),
        date(2026, 12, 31),
    ]
    assert parse_timeframe("Hàng tháng", 2026, calendar).periods == schedule.periods


def test_before_a_day_of_each_month(calendar: WorkingCalendar) -> None:
    schedule = parse_timeframe("Trước ngày 15 hằng tháng", 2026, calendar)
    assert schedule.kind == "recurring"
    assert schedule.periods[0] == Period("Tháng 01/2026", date(2026, 1, 1), date(2026, 1, 14))
    assert schedule.periods[2].due == date(2026, 3, 13)  # Sun 15/03


def test_to_json_gives_iso_dates_and_null_due(calendar: WorkingCalendar) -> None:
    assert parse_timeframe("Quý I/2026", 2026, calendar).to_json() == {
        "kind": "deadline",
        "periods": [{"label": "Quý I/2026", "start": "2026-01-01", "due": "2026-03-31"}],
    }
    assert parse_timeframe("Khi có yêu cầu", 2026, calendar).to_json() == {
        "kind": "on_event",
        "periods": [{"label": "Năm 2026", "start": "2026-01-01", "due": None}],
    }


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Sớm",
        "Theo quy định",
        "Trước ngày 31/02/2026",
        "Quý 5/2026",
        "Tháng 13/2026",
        "Tháng 8-8/2026",
        "Tháng 3, 6, 9, 12",
        "Trước ngày 10 của tháng đầu quý",
    ],
)
def test_an_unknown_phrase_is_an_error_naming_it(calendar: WorkingCalendar, text: str) -> None:
    with pytest.raises(TimeframeError) as caught:
        parse_timeframe(text, 2026, calendar)
    assert str(caught.value) == f'Không hiểu được thời hạn "{text}"'
    assert caught.value.text == text
    assert isinstance(caught.value, ValueError)


def _no_working_day_in(calendar: WorkingCalendar, after: date, until: date) -> bool:
    return calendar.working_days_between(after, until) == 0


@settings(deadline=None)  # the first call of a year builds it from the package
@given(limit=st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31)))
def test_before_a_date_is_the_last_working_day_strictly_before_it(limit: date) -> None:
    schedule = parse_timeframe(f"Trước ngày {limit.day}/{limit.month}/{limit.year}", 2026, CALENDAR)
    padded = parse_timeframe(f"Trước ngày {limit:%d/%m/%Y}", 2026, CALENDAR)
    (period,) = schedule.periods
    assert period.due is not None
    assert CALENDAR.is_working_day(period.due)
    assert period.due < limit
    assert _no_working_day_in(CALENDAR, period.due, limit - timedelta(days=1))
    assert period.start <= period.due
    assert padded.periods == schedule.periods


@settings(deadline=None)  # the first call of a year builds it from the package
@given(
    year=st.integers(min_value=2025, max_value=2027),
    month=st.integers(min_value=1, max_value=12),
)
def test_a_month_is_due_on_its_last_working_day(year: int, month: int) -> None:
    (period,) = parse_timeframe(f"Tháng {month}/{year}", 2026, CALENDAR).periods
    month_end = (date(year, month, 28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    assert period.start == date(year, month, 1)
    assert period.due is not None
    assert CALENDAR.is_working_day(period.due)
    assert period.start <= period.due <= month_end
    assert _no_working_day_in(CALENDAR, period.due, month_end)


@settings(deadline=None)  # the first call of a year builds it from the package
@given(
    year=st.integers(min_value=2025, max_value=2027),
    quarter=st.integers(min_value=1, max_value=4),
)
def test_every_spelling_of_a_quarter_gives_the_same_deadline(year: int, quarter: int) -> None:
    spellings = [
        f"Quý {ROMAN[quarter]}/{year}",
        f"Quý {ROMAN[quarter]} năm {year}",
        f"Quý {quarter}/{year}",
        f"quý {ROMAN[quarter].lower()} năm {year}",
    ]
    schedules = [parse_timeframe(text, 2026, CALENDAR) for text in spellings]
    assert {schedule.periods for schedule in schedules} == {schedules[0].periods}
    (period,) = schedules[0].periods
    quarter_end = date(year, 3 * quarter, 30 if quarter in (2, 3) else 31)
    assert period.due is not None
    assert period.due <= quarter_end
    assert CALENDAR.is_working_day(period.due)
    assert _no_working_day_in(CALENDAR, period.due, quarter_end)


@settings(deadline=None)  # the first call of a year builds it from the package
@given(text=st.text(max_size=40))
def test_any_text_parses_or_raises_a_timeframe_error(text: str) -> None:
    try:
        schedule = parse_timeframe(text, 2026, CALENDAR)
    except TimeframeError as error:
        assert error.text == text
    else:
        for period in schedule.periods:
            assert period.due is None or CALENDAR.is_working_day(period.due)


@settings(deadline=None)  # the first call of a year builds it from the package
@given(
    words=st.lists(
        st.sampled_from(
            [
                "Trước",
                "ngày",
                "tháng",
                "quý",
                "năm",
                "10",
                "5",
                "2026",
                "/",
                "-",
                "I",
                "IV",
                "cuối",
                "hàng",
                "của",
                "đến",
                "6",
                "đầu",
                "Thường xuyên",
                "Khi",
                "Theo",
            ]
        ),
        max_size=8,
    )
)
def test_phrases_made_of_timeframe_words_parse_or_raise_a_timeframe_error(
    words: list[str],
) -> None:
    text = " ".join(words)
    try:
        schedule = parse_timeframe(text, 2026, CALENDAR)
    except TimeframeError:
        return
    for period in schedule.periods:
        assert period.due is None or CALENDAR.is_working_day(period.due)
        assert period.due is None or period.start <= period.due
