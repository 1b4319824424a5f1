"""Reports as of a date (workflow.reports) on the demo ward with known work, against counts
computed by hand from the plan: 116 instances; section I has 13, III has 77; VHXH leads 39,
TTPVHCC 29, VP 23, KTHTDT 21, CAP 3, TTDVSNC 1; 18 instances (the first quarter of tasks
19–28) are due Wednesday 04/03/2026, task 1 on 14/01, task 2's first quarter on 09/03."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from definitions.calendar import load_calendar
from definitions.loader import default_plan_path, load_plan
from workflow.clock import WARD_TZ
from workflow.models import TaskInstance
from workflow.reports import (
    NATIONAL_STATUSES,
    current_plan,
    kpi_targets,
    overview,
    percent,
    period_labels,
    plan_definition,
    review_queue,
    work_list,
)

from .conftest import Ward

CAL = load_calendar()
SECTIONS = load_plan(default_plan_path()).sections
AS_OF = date(2026, 3, 10)  # Tuesday


def _vn(day: date, hour: int = 9, minute: int = 0) -> datetime:
    """`hour:minute` in Hà Nội on `day`, as UTC."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=WARD_TZ).astimezone(UTC)


def _accept(inst: TaskInstance, when: datetime) -> None:
    inst.state = "accepted"
    inst.accepted_at = when


def _known_work(ward: Ward, accepted_c: datetime | None = None) -> dict[str, TaskInstance]:
    """The fixture's work, set directly on the rows (the engine's own tests cover how it gets
    there): see each line for what it counts as on 10/03/2026."""
    w = {
        "A": ward.instance(1, "VHXH"),  # due 14/01, accepted 13/01: completed on time
        "B": ward.instance(2, "VHXH", 0),  # due 09/03, accepted 10/03: completed late
        "C": ward.instance(19, "TTPVHCC", 0),  # due 04/03, accepted 23:30 that day: on time
        "D": ward.instance(20, "VP", 0),  # due 04/03, accepted 11/03: open and late on 10/03
        "E": ward.instance(24, "KTHTDT", 0),  # cancelled: counted nowhere
        "F": ward.instance(3, "VHXH"),  # due 31/12, accepted 05/03: completed on time
        "G": ward.instance(11, "VP"),  # due 31/12, submitted: open, within its time
    }
    assert w["B"].due_date == date(2026, 3, 9) and w["C"].due_date == date(2026, 3, 4)
    _accept(w["A"], _vn(date(2026, 1, 13)))
    _accept(w["B"], _vn(date(2026, 3, 10)))
    _accept(w["C"], accepted_c or _vn(date(2026, 3, 4), 23, 30))
    _accept(w["D"], _vn(date(2026, 3, 11)))
    w["E"].state = "cancelled"
    _accept(w["F"], _vn(date(2026, 3, 5)))
    w["G"].state = "evidence_submitted"
    ward.session.flush()
    return w


def test_percent_rounds_half_up_with_one_decimal() -> None:
    assert percent(6, 7) == Decimal("85.7")
    assert percent(3, 13) == Decimal("23.1")
    assert percent(1, 16) == Decimal("6.3")  # 6.25, half up
    assert percent(1, 8) == Decimal("12.5")
    assert percent(2, 3) == Decimal("66.7")
    assert percent(7, 7) == Decimal("100.0")
    assert percent(0, 5) == Decimal("0.0")
    assert percent(0, 0) is None


@pytest.mark.db
def test_overview_on_the_known_work(ward: Ward) -> None:
    _known_work(ward)
    report = overview(ward.session, ward.org, as_of=AS_OF, calendar=CAL, sections=SECTIONS)
    assert report.cancelled == 1 and report.instances == 115
    assert report.national == {
        "hoan_thanh_dung_han": 3,  # A, C, F
        "hoan_thanh_qua_han": 1,  # B
        "chua_hoan_thanh_trong_han": 95,  # 115 - 3 - 1 - 16
        "chua_hoan_thanh_qua_han": 16,  # the 18 due 04/03, less C (done) and E (cancelled)
    }
    assert list(report.national) == list(NATIONAL_STATUSES)
    assert report.accepted == 4 and report.completion == Decimal("3.5")  # 4/115

    sections = {p.key: p for p in report.by_section}
    assert [p.key for p in report.by_section] == ["I", "II", "III", "IV", "V", "VI", "VII"]
    assert sections["I"].title == "Chỉ đạo điều hành, kiểm tra và tuyên truyền"
    assert (sections["I"].instances, sections["I"].accepted, sections["I"].overdue) == (13, 3, 0)
    assert sections["I"].completion == Decimal("23.1")
    assert (sections["III"].instances, sections["III"].accepted) == (76, 1)
    assert sections["III"].overdue == 16 and sections["III"].completion == Decimal("1.3")
    assert sum(p.instances for p in report.by_section) == 115

    units = {p.key: (p.instances, p.accepted, p.overdue) for p in report.by_unit}
    assert units == {
        "CAP": (3, 0, 0),
        "KTHTDT": (20, 0, 3),
        "TTDVSNC": (1, 0, 0),
        "TTPVHCC": (29, 1, 5),
        "VHXH": (39, 3, 4),
        "VP": (23, 0, 4),
    }
    by_unit = {p.key: p for p in report.by_unit}
    assert by_unit["VHXH"].completion == Decimal("7.7")  # 3/39
    assert by_unit["TTPVHCC"].title == "Trung tâm PVHCC"

    # 05, 06, 09 and 10/03 are working days past 04/03; D is late until it is accepted
    assert len(report.overdue) == 16
    assert {o.working_days_late for o in report.overdue} == {4}
    assert [(o.number, o.unit) for o in report.overdue[:4]] == [
        (20, "KTHTDT"),
        (20, "VHXH"),
        (20, "VP"),
        (21, "TTPVHCC"),
    ]
    assert all(o.due == date(2026, 3, 4) for o in report.overdue)


@pytest.mark.db
def test_an_earlier_day_does_not_count_a_later_acceptance(ward: Ward) -> None:
    _known_work(ward)
    day_before = overview(ward.session, ward.org, as_of=date(2026, 3, 9), calendar=CAL)
    assert day_before.national == {
        "hoan_thanh_dung_han": 3,
        "hoan_thanh_qua_han": 0,
        "chua_hoan_thanh_trong_han": 96,  # B is due that day and not yet accepted
        "chua_hoan_thanh_qua_han": 16,
    }
    assert {o.working_days_late for o in day_before.overdue} == {3}  # 05, 06, 09/03
    on_the_first_due_date = overview(ward.session, ward.org, as_of=date(2026, 1, 14), calendar=CAL)
    assert on_the_first_due_date.national == {
        "hoan_thanh_dung_han": 1,
        "hoan_thanh_qua_han": 0,
        "chua_hoan_thanh_trong_han": 114,
        "chua_hoan_thanh_qua_han": 0,
    }
    assert on_the_first_due_date.overdue == ()
    # without the plan's sections the sections found are listed, in order
    assert [p.key for p in on_the_first_due_date.by_section] == [
        "I",
        "II",
        "III",
        "IV",
        "V",
        "VI",
        "VII",
    ]


@pytest.mark.db
@pytest.mark.parametrize(
    ("accepted_at", "national"),
    [
        (datetime(2026, 3, 4, 16, 59, tzinfo=UTC), "hoan_thanh_dung_han"),  # 23:59 on 04/03
        (datetime(2026, 3, 4, 17, 0, tzinfo=UTC), "hoan_thanh_qua_han"),  # 00:00 on 05/03
    ],
)
def test_acceptance_is_judged_on_the_vietnamese_date(
    ward: Ward, accepted_at: datetime, national: str
) -> None:
    _known_work(ward, accepted_c=accepted_at)
    report = overview(ward.session, ward.org, as_of=AS_OF, calendar=CAL)
    expected_on_time = 3 if national == "hoan_thanh_dung_han" else 2
    assert report.national["hoan_thanh_dung_han"] == expected_on_time
    assert report.national["hoan_thanh_qua_han"] == 4 - expected_on_time


@pytest.mark.db
def test_work_list_filters_and_statuses(ward: Ward) -> None:
    w = _known_work(ward)
    vp = work_list(ward.session, ward.org, today=AS_OF, calendar=CAL, unit="VP")
    assert len(vp) == 23
    assert [r.due for r in vp] == sorted(r.due for r in vp if r.due is not None)  # by due date
    statuses = {r.id: r.status for r in vp}
    assert statuses[w["D"].id] == "overdue"  # accepted only tomorrow
    assert statuses[w["G"].id] == "on_time"
    assert sorted(statuses.values()).count("overdue") == 4  # tasks 20, 24, 25, 26 (Q I)

    quarter = work_list(
        ward.session, ward.org, today=AS_OF, calendar=CAL, unit="VP", period="Quý I/2026"
    )
    assert [(r.number, r.period) for r in quarter] == [(n, "Quý I/2026") for n in (20, 24, 25, 26)]
    section = work_list(ward.session, ward.org, today=AS_OF, calendar=CAL, unit="VP", section="II")
    assert {r.section for r in section} == {"II"} and [r.number for r in section] == list(
        range(11, 18)
    )
    submitted = work_list(
        ward.session, ward.org, today=AS_OF, calendar=CAL, state="evidence_submitted"
    )
    assert [r.id for r in submitted] == [w["G"].id]
    overdue = work_list(ward.session, ward.org, today=AS_OF, calendar=CAL, status="overdue")
    assert len(overdue) == 16
    done = work_list(ward.session, ward.org, today=AS_OF, calendar=CAL, status="done")
    assert {r.id for r in done} == {w[k].id for k in "ABCF"}
    assert {r.unit for r in work_list(ward.session, ward.org, today=AS_OF, calendar=CAL)} == {
        "CAP",
        "KTHTDT",
        "TTDVSNC",
        "TTPVHCC",
        "VHXH",
        "VP",
    }
    by_number = work_list(ward.session, ward.org, today=AS_OF, calendar=CAL, number=20)
    assert {(r.unit, r.period) for r in by_number} >= {("VP", "Quý I/2026"), ("VHXH", "Quý I/2026")}
    # due soon: within 3 working days, the due day included; C and D are not accepted yet on
    # 02/03, E is cancelled
    soon = work_list(
        ward.session, ward.org, today=date(2026, 3, 2), calendar=CAL, status="due_soon"
    )
    assert {r.due for r in soon} == {date(2026, 3, 4)} and len(soon) == 17

    labels = period_labels(ward.session, ward.org, unit="VP")
    assert set(labels) == {"Năm 2026", "Quý I/2026", "Quý II/2026", "Quý III/2026", "Quý IV/2026"}
    assert labels.index("Quý I/2026") < labels.index("Quý II/2026") < labels.index("Quý IV/2026")


@pytest.mark.db
def test_review_queue_oldest_submission_first(ward: Ward) -> None:
    e, u, clock = ward.engine, ward.user, ward.clock
    later, earlier, started = (
        ward.instance(11, "VP"),
        ward.instance(12, "VP"),
        ward.instance(13, "VP"),
    )

    clock.advance_to(datetime(2026, 2, 2, 3, 0, tzinfo=UTC))  # Monday 02/02, 10:00
    e.fire(earlier.id, "start", u("vp.canbo"))
    ward.fill_evidence(earlier, "vp.canbo")
    e.fire(earlier.id, "submit", u("vp.truong"))
    e.fire(earlier.id, "review", u("vhxh.thamdinh1"), findings="Đạt", recommendation="accept")

    clock.advance_to(datetime(2026, 3, 2, 3, 5, tzinfo=UTC))  # Monday 02/03, 10:05
    e.fire(later.id, "start", u("vp.canbo"))
    ward.fill_evidence(later, "vp.canbo")
    e.fire(later.id, "submit", u("vp.truong"))
    e.fire(started.id, "start", u("vp.canbo"))

    queue = review_queue(ward.session, ward.org, today=date(2026, 3, 4), calendar=CAL)
    assert [q.instance.id for q in queue] == [earlier.id, later.id]
    assert [q.instance.state for q in queue] == ["reviewed", "evidence_submitted"]
    first, second = queue
    assert first.submitted_by == "Trưởng Văn phòng HĐND-UBND"
    assert first.reviewed_by == "Cán bộ thẩm định 1 (VHXH)" and second.reviewed_by is None
    # working days after the submission day up to today: Tết (16–20/02) does not count
    assert first.waiting == 4 + 5 + 5 + 3  # 03–06/02, 09–13/02, 23–27/02, 02–04/03
    assert second.waiting == 2
    # what each person may do, as the page will show it
    assert e.enabled_events(second.instance, u("vhxh.thamdinh1")) == ["review", "return_for_rework"]
    assert e.enabled_events(first.instance, u("vhxh.thamdinh1")) == []
    assert e.enabled_events(first.instance, u("vhxh.truong")) == ["return_for_rework", "accept"]


@pytest.mark.db
def test_plan_definition_and_targets(ward: Ward) -> None:
    plan = current_plan(ward.session, ward.org)
    assert plan is not None
    definition = plan_definition(plan)
    assert definition is not None and plan_definition(plan) is definition  # parsed once
    assert [s.number for s in definition.sections] == ["I", "II", "III", "IV", "V", "VI", "VII"]
    targets = {k.code: k for k in kpi_targets(definition)}
    sipas = targets["sipas_satisfaction"]
    assert (sipas.comparator, sipas.threshold, sipas.unit, sipas.task) == (">=", 95, "%", 3)
    assert targets["units_inspected"].threshold == 20
    assert kpi_targets(None) == ()
