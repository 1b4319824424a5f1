"""Deadline statuses on the 2026 calendar, national statuses, and the daily deadline check."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import event, func, select

from definitions.calendar import WorkingCalendar, load_calendar
from workflow import signals
from workflow.deadlines import (
    DEADLINE_STATUS_LABELS,
    DIGEST_LISTED,
    NATIONAL_STATUS_LABELS,
    TickReport,
    _Candidate,
    _digest_message,
    deadline_status,
    national_status,
    tick,
    tick_tasks,
    working_days_late,
)
from workflow.models import DeadlineAlert, Notification, TaskInstance, User
from workflow.trail import AuditTrail

from .conftest import Ward

CAL = load_calendar()


def _instance(
    due: date | None,
    state: str = "in_progress",
    accepted_at: datetime | None = None,
) -> TaskInstance:
    """A transient instance: the status functions only read state, due_date and accepted_at."""
    return TaskInstance(state=state, due_date=due, accepted_at=accepted_at)


def _vn(day: date, hour: int = 9) -> datetime:
    """`hour` o'clock in Hà Nội on `day`, as UTC."""
    return datetime(day.year, day.month, day.day, hour - 7, tzinfo=UTC)


D14 = date(2026, 1, 14)  # Wednesday: task 1 is due "before 15/01/2026"


# --- deadline status ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2026, 1, 5), "on_time"),  # Mon: 6, 7, 8, 9, 10 (Sat, make-up), 12, 13, 14
        # Fri 09/01: 10 (make-up Saturday), 12, 13, 14 = 4 working days, more than 3
        (date(2026, 1, 9), "on_time"),
        (date(2026, 1, 10), "due_soon"),  # the make-up Saturday: 12, 13, 14
        (date(2026, 1, 11), "due_soon"),  # Sunday: 12, 13, 14
        (date(2026, 1, 12), "due_soon"),
        (D14, "due_soon"),  # the due day itself is still on time, and due soon
        (date(2026, 1, 15), "overdue"),
    ],
)
def test_deadline_status_around_task_1(today: date, expected: str) -> None:
    assert deadline_status(_instance(D14), today, CAL, due_soon_days=3) == expected


def test_the_make_up_saturday_moves_due_soon() -> None:
    """Without the announced make-up Saturday 10/01 (package calendar only) the same check on
    Friday 09/01 is due soon: the override is what makes it 4 working days away."""
    package_only = WorkingCalendar()
    assert deadline_status(_instance(D14), date(2026, 1, 9), package_only, 3) == "due_soon"
    assert deadline_status(_instance(D14), date(2026, 1, 9), CAL, 3) == "on_time"
    assert deadline_status(_instance(D14), date(2026, 1, 9), CAL, 4) == "due_soon"


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2026, 2, 6), "on_time"),  # 9, 10, 11, 12, 13, 23: six working days
        (date(2026, 2, 10), "on_time"),  # 11, 12, 13, 23
        (date(2026, 2, 11), "due_soon"),  # 12, 13, 23: twelve calendar days, 3 working days
        (date(2026, 2, 13), "due_soon"),  # Tết 16–20/02 off: only Monday 23/02 remains
        (date(2026, 2, 18), "due_soon"),  # during Tết
        (date(2026, 2, 23), "due_soon"),
        (date(2026, 2, 24), "overdue"),
    ],
)
def test_deadline_status_across_tet(today: date, expected: str) -> None:
    assert deadline_status(_instance(date(2026, 2, 23)), today, CAL, 3) == expected


def test_deadline_status_other_cases() -> None:
    today = date(2026, 3, 2)
    assert deadline_status(_instance(None, "awaiting_schedule"), today, CAL) == "no_due_date"
    assert deadline_status(_instance(D14, "cancelled"), today, CAL) == "cancelled"
    accepted = _instance(D14, "accepted", _vn(date(2026, 1, 20)))
    assert deadline_status(accepted, today, CAL) == "done"
    # as of a date before the acceptance it was still open, and overdue
    assert deadline_status(accepted, date(2026, 1, 19), CAL) == "overdue"
    # due_soon_days=0: due soon only on the due day
    assert deadline_status(_instance(D14), date(2026, 1, 13), CAL, 0) == "on_time"
    assert deadline_status(_instance(D14), D14, CAL, 0) == "due_soon"
    with pytest.raises(ValueError, match="negative"):
        deadline_status(_instance(D14), D14, CAL, -1)


def test_labels_are_vietnamese_nfc() -> None:
    assert set(DEADLINE_STATUS_LABELS) == {
        "done",
        "cancelled",
        "no_due_date",
        "overdue",
        "due_soon",
        "on_time",
    }
    assert NATIONAL_STATUS_LABELS == {
        "hoan_thanh_dung_han": "Hoàn thành đúng hạn",
        "hoan_thanh_qua_han": "Hoàn thành quá hạn",
        "chua_hoan_thanh_trong_han": "Chưa hoàn thành trong hạn",
        "chua_hoan_thanh_qua_han": "Chưa hoàn thành quá hạn",
    }
    for label in [*DEADLINE_STATUS_LABELS.values(), *NATIONAL_STATUS_LABELS.values()]:
        assert unicodedata.is_normalized("NFC", label)


# --- national status (QĐ 42/2014 model) ----------------------------------------------------


def test_national_status_four_cases() -> None:
    on_time = _instance(D14, "accepted", _vn(date(2026, 1, 13)))
    late = _instance(D14, "accepted", _vn(date(2026, 1, 16)))
    open_ = _instance(D14, "reviewed")
    as_of = date(2026, 1, 31)
    assert national_status(on_time, as_of) == "hoan_thanh_dung_han"
    assert national_status(late, as_of) == "hoan_thanh_qua_han"
    assert national_status(open_, D14) == "chua_hoan_thanh_trong_han"
    assert national_status(open_, as_of) == "chua_hoan_thanh_qua_han"


def test_national_status_as_of_before_acceptance() -> None:
    late = _instance(D14, "accepted", _vn(date(2026, 1, 16)))
    assert national_status(late, date(2026, 1, 10)) == "chua_hoan_thanh_trong_han"
    assert national_status(late, date(2026, 1, 15)) == "chua_hoan_thanh_qua_han"
    assert national_status(late, date(2026, 1, 16)) == "hoan_thanh_qua_han"


def test_acceptance_date_is_the_vietnamese_date() -> None:
    # 14/01 18:30 UTC is already 15/01 01:30 in Hà Nội: accepted a day late
    accepted = _instance(D14, "accepted", datetime(2026, 1, 14, 18, 30, tzinfo=UTC))
    assert national_status(accepted, date(2026, 2, 1)) == "hoan_thanh_qua_han"
    in_time = _instance(D14, "accepted", datetime(2026, 1, 14, 16, 59, tzinfo=UTC))
    assert national_status(in_time, date(2026, 2, 1)) == "hoan_thanh_dung_han"


def test_national_status_without_due_date_and_cancelled() -> None:
    assert national_status(_instance(None, "awaiting_schedule"), date(2026, 12, 31)) == (
        "chua_hoan_thanh_trong_han"
    )
    done = _instance(None, "accepted", _vn(date(2026, 5, 4)))
    assert national_status(done, date(2026, 12, 31)) == "hoan_thanh_dung_han"
    assert national_status(_instance(D14, "cancelled"), date(2026, 12, 31)) is None


def test_working_days_late() -> None:
    open_ = _instance(D14, "in_progress")
    assert working_days_late(open_, date(2026, 1, 13), CAL) == 0
    assert working_days_late(open_, D14, CAL) == 0
    assert working_days_late(open_, date(2026, 1, 19), CAL) == 3  # 15, 16, 19
    accepted = _instance(D14, "accepted", _vn(date(2026, 1, 16)))
    assert working_days_late(accepted, date(2026, 3, 1), CAL) == 2  # 15, 16
    assert working_days_late(accepted, date(2026, 1, 15), CAL) == 1  # not yet accepted then
    tet = _instance(date(2026, 2, 13), "in_progress")
    assert working_days_late(tet, date(2026, 2, 23), CAL) == 1  # Tết and a weekend between
    assert working_days_late(_instance(None, "assigned"), date(2026, 12, 31), CAL) == 0
    assert working_days_late(_instance(D14, "cancelled"), date(2026, 12, 31), CAL) == 0


@pytest.mark.db
def test_national_status_through_the_engine(ward: Ward) -> None:
    """Accepted through the engine on Monday 02/02/2026 (the ward clock): task 11 of VP is due
    31/12/2026, so on time; as of the day before it was not yet completed."""
    e, u = ward.engine, ward.user
    inst = ward.instance(11, "VP")
    e.fire(inst.id, "start", u("vp.canbo"))
    ward.fill_evidence(inst, "vp.canbo")
    e.fire(inst.id, "submit", u("vp.truong"))
    e.fire(inst.id, "review", u("vhxh.thamdinh1"), findings="Đạt", recommendation="accept")
    e.fire(inst.id, "accept", u("vhxh.truong"), assessment="Hoàn thành")
    assert national_status(inst, date(2026, 2, 2)) == "hoan_thanh_dung_han"
    assert national_status(inst, date(2026, 2, 1)) == "chua_hoan_thanh_trong_han"
    assert deadline_status(inst, date(2026, 2, 2), CAL) == "done"


# --- the daily check -------------------------------------------------------------------------


def _now(day: date) -> datetime:
    return _vn(day, 7)


def _tick(ward: Ward, day: date, **kwargs: Any) -> TickReport:
    return tick(
        ward.session,
        ward.org,
        today=day,
        now=_now(day),
        calendar=CAL,
        trail=AuditTrail(),
        **kwargs,
    )


def _count(ward: Ward, model: type[Any], **where: Any) -> int:
    stmt = select(func.count()).select_from(model).filter_by(**where)
    return int(ward.session.scalar(stmt) or 0)


def _history(ward: Ward, instance_id: int) -> list[dict[str, Any]]:
    ledger = AuditTrail().ledger(ward.org)
    return [e.content() for e in ledger.history(ward.session, "task_instance", instance_id)]


@pytest.fixture
def received() -> Iterator[list[tuple[str, Any, dict[str, Any]]]]:
    calls: list[tuple[str, Any, dict[str, Any]]] = []

    def on_approaching(sender: Any, **kwargs: Any) -> None:
        calls.append(("deadline-approaching", sender, kwargs))

    def on_overdue(sender: Any, **kwargs: Any) -> None:
        calls.append(("task-overdue", sender, kwargs))

    signals.deadline_approaching.connect(on_approaching)
    signals.task_overdue.connect(on_overdue)
    try:
        yield calls
    finally:
        signals.deadline_approaching.disconnect(on_approaching)
        signals.task_overdue.disconnect(on_overdue)


@pytest.mark.db
def test_tick_alerts_once_per_threshold(ward: Ward) -> None:
    task1 = ward.instance(1, "VHXH")  # due 14/01/2026; VHXH has four active members
    size0 = ward.log_size()

    first = _tick(ward, date(2026, 1, 12))
    assert first.due_soon == (task1.id,) and first.overdue == ()
    assert first.notifications == 4 and first.audit_entries == 1
    assert ward.log_size() == size0 + 1
    notes = ward.session.scalars(
        select(Notification).where(Notification.instance_id == task1.id)
    ).all()
    assert sorted(n.recipient_id for n in notes) == sorted(
        ward.user(name).id
        for name in ("vhxh.canbo", "vhxh.truong", "vhxh.thamdinh1", "vhxh.thamdinh2")
    )
    assert {n.event for n in notes} == {"deadline.approaching"}
    assert notes[0].message == (
        "Nhiệm vụ 1 (VHXH, Trước ngày 15/01/2026) sắp đến hạn: hạn hoàn thành 14/01/2026, "
        "còn 2 ngày làm việc."
    )
    assert unicodedata.is_normalized("NFC", notes[0].message)
    assert notes[0].payload["due_date"] == "2026-01-14"

    # the same day again, and the next day: nothing twice
    for day in (date(2026, 1, 12), date(2026, 1, 13)):
        again = _tick(ward, day)
        assert again.alerts == () and again.notifications == 0 and again.audit_entries == 0
        assert again.already_alerted == (task1.id,)
    assert ward.log_size() == size0 + 1
    assert _count(ward, Notification, instance_id=task1.id) == 4

    # on the due day it is still only due soon: already alerted
    assert _tick(ward, D14).alerts == ()

    overdue = _tick(ward, date(2026, 1, 15))
    assert overdue.overdue == (task1.id,) and overdue.due_soon == ()
    assert overdue.alerts[0].working_days == 1
    assert _tick(ward, date(2026, 1, 16)).alerts == ()
    assert ward.log_size() == size0 + 2
    assert _count(ward, Notification, instance_id=task1.id, event="deadline.overdue") == 4

    history = _history(ward, task1.id)
    assert [entry["action"] for entry in history[-2:]] == [
        "deadline.approaching",
        "deadline.overdue",
    ]
    assert history[-1]["actor"] == {"user": "system", "unit": None, "role": "system"}
    assert history[-1]["details"] == {
        "kind": "overdue",
        "due": "2026-01-14",
        "today": "2026-01-15",
        "working_days_late": 1,
    }


@pytest.mark.db
def test_a_new_due_date_alerts_again(ward: Ward) -> None:
    task1 = ward.instance(1, "VHXH")
    assert _tick(ward, date(2026, 1, 15)).overdue == (task1.id,)
    task1.due_date = date(2026, 1, 21)  # e.g. an approved plan amendment moved it
    ward.session.flush()
    assert _tick(ward, date(2026, 1, 15)).alerts == ()  # 16, 19, 20, 21: on time again
    moved = _tick(ward, date(2026, 1, 16))  # 19, 20, 21
    assert moved.due_soon == (task1.id,)
    assert _count(ward, DeadlineAlert, instance_id=task1.id) == 2
    assert _tick(ward, date(2026, 1, 22)).overdue == (task1.id,)
    assert _count(ward, DeadlineAlert, instance_id=task1.id) == 3


@pytest.mark.db
def test_an_instance_found_overdue_first_gets_only_the_overdue_alert(ward: Ward) -> None:
    task1 = ward.instance(1, "VHXH")
    report = _tick(ward, date(2026, 1, 20))
    assert report.overdue == (task1.id,) and report.due_soon == ()
    assert report.alerts[0].working_days == 4  # 15, 16, 19, 20
    assert _count(ward, DeadlineAlert, instance_id=task1.id, kind="due_soon") == 0


@pytest.mark.db
def test_overdue_over_a_weekend_and_the_json_report(ward: Ward) -> None:
    task1 = ward.instance(1, "VHXH")
    task1.due_date = date(2026, 1, 16)  # a Friday
    ward.session.flush()
    report = _tick(ward, date(2026, 1, 17))  # Saturday: overdue, no working day late yet
    assert report.overdue == (task1.id,) and report.alerts[0].working_days == 0
    message = ward.session.scalars(
        select(Notification.message).where(Notification.instance_id == task1.id)
    ).first()
    assert message == (
        "Nhiệm vụ 1 (VHXH, Trước ngày 15/01/2026) đã quá hạn: hạn hoàn thành 16/01/2026."
    )
    assert report.as_json() == {
        "today": "2026-01-17",
        "due_soon": [],
        "overdue": [task1.id],
        "notifications": 4,
        "digests": 0,
        "audit_entries": 1,
        "checked": 1,
        "already_alerted": [],
    }


@pytest.mark.db
def test_closed_instances_are_not_alerted(ward: Ward) -> None:
    task1 = ward.instance(1, "VHXH")
    task1.state = "cancelled"
    ward.session.flush()
    assert _tick(ward, date(2026, 1, 15)).alerts == ()


@pytest.mark.parametrize(
    "day",
    [
        date(2026, 1, 11),  # a Sunday
        date(2026, 1, 12),
        date(2026, 2, 18),  # during Tết
        date(2026, 2, 27),
        date(2026, 3, 2),
        date(2026, 3, 5),
        date(2026, 6, 3),
        date(2026, 12, 29),  # the horizon runs into 2027
    ],
)
@pytest.mark.db
def test_tick_agrees_with_deadline_status(ward: Ward, day: date) -> None:
    """Every open instance the status calls due soon or overdue is alerted, and no other."""
    report = _tick(ward, day, due_soon_days=3)
    instances = ward.session.scalars(select(TaskInstance)).all()
    expected_soon = {i.id for i in instances if deadline_status(i, day, CAL, 3) == "due_soon"}
    expected_late = {i.id for i in instances if deadline_status(i, day, CAL, 3) == "overdue"}
    assert set(report.due_soon) == expected_soon
    assert set(report.overdue) == expected_late
    assert expected_soon or expected_late
    assert report.audit_entries == len(expected_soon) + len(expected_late)
    assert report.notifications == sum(a.recipients for a in report.alerts) + report.digests > 0


@pytest.mark.db
def test_signals_are_sent_only_after_commit(
    ward: Ward, received: list[tuple[str, Any, dict[str, Any]]]
) -> None:
    task1 = ward.instance(1, "VHXH")
    ward.session.commit()  # the ward itself (the test's outer transaction still rolls back)

    _tick(ward, date(2026, 1, 12))
    assert received == []
    ward.session.rollback()
    assert received == []
    assert _count(ward, DeadlineAlert) == 0  # rolled back with its signal

    _tick(ward, date(2026, 1, 12))
    assert received == []
    ward.session.commit()
    assert received == [
        (
            "deadline-approaching",
            task1.id,
            {"event": "due_soon", "actor": "system", "state": "assigned", "due_date": D14},
        )
    ]
    received.clear()
    _tick(ward, date(2026, 1, 15))
    ward.session.commit()
    assert [(name, sender) for name, sender, _ in received] == [("task-overdue", task1.id)]


@pytest.mark.db
def test_tick_needs_few_queries(ward: Ward) -> None:
    """The check reads candidates, earlier alerts and recipients in three queries, however many
    instances it alerts; the rest are the inserts and one audit append per alert. (The task part
    of `tick`; its report-deadline part is counted in tests/reports.)"""
    statements: list[str] = []
    connection = ward.session.connection()

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(connection, "before_cursor_execute", count)
    try:
        report = tick_tasks(
            ward.session,
            ward.org,
            today=date(2026, 3, 2),
            now=_now(date(2026, 3, 2)),
            calendar=CAL,
            trail=AuditTrail(),
        )
    finally:
        event.remove(connection, "before_cursor_execute", count)
    selects = [
        s for s in statements if s.lstrip().upper().startswith("SELECT") and "audit_" not in s
    ]
    assert len(report.alerts) > 10
    assert len(selects) == 3, selects


@pytest.mark.db
def test_an_overdue_task_is_also_announced_to_the_approver(ward: Ward) -> None:
    """VHXH urges the units on (the plan's section on implementation): an overdue task of
    another unit reaches its head too; a task due soon only the lead unit."""
    task = ward.instance(13, "VP")
    task.due_date = date(2026, 3, 10)  # a Tuesday
    ward.session.flush()

    def recipients(event: str) -> list[str]:
        notes = ward.session.scalars(
            select(Notification).where(
                Notification.instance_id == task.id, Notification.event == event
            )
        ).all()
        return sorted(ward.session.get_one(User, n.recipient_id).username for n in notes)

    soon = _tick(ward, date(2026, 3, 6))
    assert task.id in soon.due_soon
    assert recipients("deadline.approaching") == ["vp.canbo", "vp.truong"]
    late = _tick(ward, date(2026, 3, 11))
    assert task.id in late.overdue
    assert recipients("deadline.overdue") == ["vhxh.truong", "vp.canbo", "vp.truong"]
    [alert] = [a for a in late.alerts if a.instance_id == task.id]
    assert alert.recipients == 3


@pytest.mark.db
def test_several_overdue_tasks_reach_the_approver_as_one_digest(ward: Ward) -> None:
    """A first check after a long pause finds many tasks overdue: each lead unit hears of its
    own, one notification a task as before, but the head of VHXH gets one digest listing the
    other units' tasks (all in its payload, the ten longest overdue by name), not one line a
    task; of a VHXH task the head hears as a member of VHXH. Nothing is sent twice."""
    head = ward.user("vhxh.truong")
    day = date(2026, 7, 1)
    report = _tick(ward, day)
    late = set(report.overdue)
    assert len(late) > DIGEST_LISTED + 1
    units = {
        i.id: i.unit.code
        for i in ward.session.scalars(select(TaskInstance).where(TaskInstance.id.in_(late)))
    }
    others = {i for i, code in units.items() if code != "VHXH"}
    assert others and others != late  # VHXH leads some of them too

    notes = ward.session.scalars(
        select(Notification).where(
            Notification.recipient_id == head.id, Notification.event == "deadline.overdue"
        )
    ).all()
    # (the periodic reports' own alerts carry no instance either, and no digest flag)
    [digest] = [n for n in notes if n.instance_id is None and n.payload.get("digest")]
    assert {n.instance_id for n in notes if n.instance_id is not None} == late - others
    assert len([n for n in notes if n.instance_id is not None]) == len(late - others)
    assert digest.payload["digest"] is True and digest.payload["today"] == "2026-07-01"
    tasks = digest.payload["tasks"]
    assert {t["instance_id"] for t in tasks} == others and len(tasks) == len(others)
    # the longest overdue first, and the message names the payload's first ten in its order
    assert [t["working_days"] for t in tasks] == sorted(
        (t["working_days"] for t in tasks), reverse=True
    )
    named = "; ".join(
        f"Nhiệm vụ {t['task']} ({t['unit']}, {t['period']}, hạn "
        f"{date.fromisoformat(t['due_date']):%d/%m/%Y})"
        for t in tasks[:DIGEST_LISTED]
    )
    assert digest.message == (
        f"Tính đến ngày 01/07/2026, có {len(others)} nhiệm vụ do đơn vị khác chủ trì đã quá "
        f"hạn, quá hạn lâu nhất là: {named}; và {len(others) - DIGEST_LISTED} nhiệm vụ khác. "
        "Xem danh sách đầy đủ tại trang Điều hành."
    )
    assert unicodedata.is_normalized("NFC", digest.message)
    assert report.digests == 1
    assert report.notifications == sum(a.recipients for a in report.alerts) + 1
    # every lead unit still hears of each of its own tasks
    vp_task = next(i for i, code in units.items() if code == "VP")
    assert _count(ward, Notification, instance_id=vp_task, recipient_id=ward.user("vp.canbo").id)

    again = _tick(ward, day)
    assert again.alerts == () and again.notifications == 0 and again.digests == 0


@pytest.mark.db
def test_two_overdue_tasks_make_a_digest_that_names_both(ward: Ward) -> None:
    """Early in the year, when nothing else is late: two VP tasks overdue in one check make one
    digest for the head of VHXH naming both, the longest overdue first, and nothing more."""
    # task 16 is due first, though it comes after 13 by number and by id
    first, second = ward.instance(13, "VP"), ward.instance(16, "VP")
    first.due_date, second.due_date = date(2026, 1, 7), date(2026, 1, 5)
    ward.session.flush()
    day = date(2026, 1, 8)
    report = tick_tasks(
        ward.session, ward.org, today=day, now=_now(day), calendar=CAL, trail=AuditTrail()
    )
    assert set(report.overdue) == {first.id, second.id} and report.digests == 1
    [digest] = ward.session.scalars(
        select(Notification).where(
            Notification.recipient_id == ward.user("vhxh.truong").id,
            Notification.event == "deadline.overdue",
        )
    ).all()
    assert digest.instance_id is None and digest.payload["digest"] is True
    assert [t["instance_id"] for t in digest.payload["tasks"]] == [second.id, first.id]
    assert digest.message == (
        "Tính đến ngày 08/01/2026, có 2 nhiệm vụ do đơn vị khác chủ trì đã quá hạn, gồm: "
        f"Nhiệm vụ 16 (VP, {second.period_label}, hạn 05/01/2026); "
        f"Nhiệm vụ 13 (VP, {first.period_label}, hạn 07/01/2026). "
        "Xem danh sách tại trang Điều hành."
    )


@pytest.mark.parametrize("count", [DIGEST_LISTED, DIGEST_LISTED + 1])
def test_a_digest_names_ten_tasks_and_counts_the_rest(count: int) -> None:
    tasks = [
        (_Candidate(i, "in_progress", 1, "VP", "Năm 2026", date(2026, 1, 5), i + 1), 3)
        for i in range(count)
    ]
    message = _digest_message(tasks, date(2026, 1, 8))
    assert message.count("Nhiệm vụ ") == DIGEST_LISTED
    assert f"Nhiệm vụ {DIGEST_LISTED} (VP" in message
    if count == DIGEST_LISTED:
        assert message.endswith(
            "(VP, Năm 2026, hạn 05/01/2026). Xem danh sách tại trang Điều hành."
        )
    else:
        assert message.endswith("; và 1 nhiệm vụ khác. Xem danh sách đầy đủ tại trang Điều hành.")
