"""Deadlines: a task instance's status as of a date, its national status, and the daily check.

Everything here takes "today" (or "as of") as a parameter and never reads the wall clock
(invariant 6), so a status or a report can be reproduced for any past date.

Definitions, all in Vietnamese calendar dates and working days of a `WorkingCalendar`:

- An instance is *done* as of a date when it was accepted on or before that date (the
  acceptance date is `ward_date(accepted_at)`); an instance accepted later counts as not
  done as of an earlier date.
- *Overdue*: not done and `today` is after the due date (the due date itself is still on
  time).
- *Due soon*: not done, not overdue, and the due date is within the next N working days,
  counting the due day: `working_days_between(today, due) <= N`, i.e. the working days in
  (today, due] number at most N. On the due date itself it is 0, so an instance is always
  due soon on its last day. Example on the 2026 calendar with N = 3: a task due Wednesday
  14/01 is *not* due soon on Friday 09/01, because the make-up Saturday 10/01 is a working
  day (10, 12, 13, 14 = 4 working days); it is due soon from Monday 12/01. A task due Monday
  23/02 is due soon on Friday 13/02 already: Tết (16–20/02) leaves 1 working day between.
- A cancelled instance has no deadline status beyond "cancelled" and no national status.
  (There is no cancellation date on the row, so cancellation is not judged "as of".)

`tick` is the daily check (`cchc tick`): it alerts once per instance, kind and due date,
recorded in `deadline_alert`, so running it twice sends nothing twice and a changed due date
alerts again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from definitions.calendar import WorkingCalendar
from workflow import signals
from workflow.clock import ward_date
from workflow.models import (
    DeadlineAlert,
    Notification,
    Organization,
    PlanTask,
    TaskInstance,
    Unit,
    User,
    UserRole,
)
from workflow.states import Role, TaskState
from workflow.trail import SYSTEM, AuditTrail

DEFAULT_DUE_SOON_DAYS = 3

# Deadline status, as of a date.
DONE = "done"
CANCELLED = "cancelled"
NO_DUE_DATE = "no_due_date"
OVERDUE = "overdue"
DUE_SOON = "due_soon"
ON_TIME = "on_time"

DEADLINE_STATUS_LABELS: dict[str, str] = {
    DONE: "Đã hoàn thành",
    CANCELLED: "Đã hủy",
    NO_DUE_DATE: "Chưa có thời hạn",
    OVERDUE: "Quá hạn",
    DUE_SOON: "Sắp đến hạn",
    ON_TIME: "Trong hạn",
}

# National task-tracking statuses (model of QĐ 42/2014/QĐ-TTg); stored and exported as these
# stable codes, shown with the labels.
COMPLETED_ON_TIME = "hoan_thanh_dung_han"
COMPLETED_LATE = "hoan_thanh_qua_han"
OPEN_ON_TIME = "chua_hoan_thanh_trong_han"
OPEN_LATE = "chua_hoan_thanh_qua_han"

NATIONAL_STATUS_LABELS: dict[str, str] = {
    COMPLETED_ON_TIME: "Hoàn thành đúng hạn",
    COMPLETED_LATE: "Hoàn thành quá hạn",
    OPEN_ON_TIME: "Chưa hoàn thành trong hạn",
    OPEN_LATE: "Chưa hoàn thành quá hạn",
}

# Alert kinds (the deadline_alert.kind values) with their audit actions.
ALERT_DUE_SOON = "due_soon"
ALERT_OVERDUE = "overdue"
ALERT_ACTIONS: dict[str, str] = {
    ALERT_DUE_SOON: "deadline.approaching",
    ALERT_OVERDUE: "deadline.overdue",
}

_CLOSED = (TaskState.ACCEPTED.value, TaskState.CANCELLED.value)


def accepted_on(instance: TaskInstance) -> date | None:
    """The Vietnamese date on which the instance was accepted, or None."""
    if instance.state != TaskState.ACCEPTED or instance.accepted_at is None:
        return None
    return ward_date(instance.accepted_at)


def _done_as_of(instance: TaskInstance, day: date) -> date | None:
    """The acceptance date if the instance was accepted on or before `day`, else None."""
    accepted = accepted_on(instance)
    return accepted if accepted is not None and accepted <= day else None


def _check_days(due_soon_days: int) -> None:
    if due_soon_days < 0:
        raise ValueError("due_soon_days must not be negative")


def _open_status(due: date, today: date, calendar: WorkingCalendar, due_soon_days: int) -> str:
    if today > due:
        return OVERDUE
    if calendar.working_days_between(today, due) <= due_soon_days:
        return DUE_SOON
    return ON_TIME


def deadline_status(
    instance: TaskInstance,
    today: date,
    calendar: WorkingCalendar,
    due_soon_days: int = DEFAULT_DUE_SOON_DAYS,
) -> str:
    """The instance's deadline status as of `today` (see the module's definitions):
    one of done, cancelled, no_due_date, overdue, due_soon, on_time."""
    _check_days(due_soon_days)
    if instance.state == TaskState.CANCELLED:
        return CANCELLED
    if _done_as_of(instance, today) is not None:
        return DONE
    if instance.due_date is None:
        return NO_DUE_DATE
    return _open_status(instance.due_date, today, calendar, due_soon_days)


def national_status(instance: TaskInstance, as_of: date) -> str | None:
    """The national status as of a date (QĐ 42/2014 model), or None for a cancelled instance.

    Completed means accepted on or before `as_of`; it is on time when accepted on or before
    the due date (or when there is no due date). Not completed is late once `as_of` is past
    the due date; without a due date it is within its time.
    """
    if instance.state == TaskState.CANCELLED:
        return None
    due = instance.due_date
    accepted = _done_as_of(instance, as_of)
    if accepted is not None:
        return COMPLETED_ON_TIME if due is None or accepted <= due else COMPLETED_LATE
    return OPEN_ON_TIME if due is None or as_of <= due else OPEN_LATE


def working_days_late(instance: TaskInstance, as_of: date, calendar: WorkingCalendar) -> int:
    """Working days past the due date: up to the acceptance date when accepted by `as_of`,
    else up to `as_of`. 0 when on time, without a due date, or cancelled."""
    due = instance.due_date
    if due is None or instance.state == TaskState.CANCELLED:
        return 0
    end = _done_as_of(instance, as_of) or as_of
    return calendar.working_days_between(due, end)


# --- the daily check ------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """One alert the check raised: the instance, its kind and the due date it is about."""

    instance_id: int
    kind: str
    due_date: date
    working_days: int  # left until the due date (due_soon) or past it (overdue)
    recipients: int  # of its own notification; approvers told in a digest are not counted


@dataclass(frozen=True)
class TickReport:
    """What one run of the deadline check did (nothing is committed yet)."""

    today: date
    alerts: tuple[Alert, ...] = ()
    notifications: int = 0  # the task alerts' outbox rows, the approvers' digests included
    digests: int = 0  # of those, the approvers' digests of several overdue tasks (no instance)
    audit_entries: int = 0
    checked: int = 0  # open instances close enough to their due date to be looked at
    already_alerted: tuple[int, ...] = ()  # of those, alerted before (same kind and due date)
    # Periodic report deadlines alerted (workflow.periodic.ReportAlertSent); their
    # notifications and audit entries are not in the counts above, which are about tasks.
    reports: tuple[Any, ...] = ()

    @property
    def due_soon(self) -> tuple[int, ...]:
        return tuple(a.instance_id for a in self.alerts if a.kind == ALERT_DUE_SOON)

    @property
    def overdue(self) -> tuple[int, ...]:
        return tuple(a.instance_id for a in self.alerts if a.kind == ALERT_OVERDUE)

    def as_json(self) -> dict[str, Any]:
        return {
            "today": self.today.isoformat(),
            "due_soon": list(self.due_soon),
            "overdue": list(self.overdue),
            "notifications": self.notifications,
            "digests": self.digests,
            "audit_entries": self.audit_entries,
            "checked": self.checked,
            "already_alerted": list(self.already_alerted),
            **({"reports": [r.as_json() for r in self.reports]} if self.reports else {}),
        }


@dataclass(frozen=True)
class _Candidate:
    instance_id: int
    state: str
    unit_id: int
    unit_code: str
    period_label: str
    due_date: date
    task_number: int


def add_alert_notifications(
    session: Session,
    recipients: Sequence[int],
    kind: str,
    *,
    instance_id: int | None,
    message: str,
    payload: dict[str, Any],
    now: datetime,
) -> int:
    """One outbox row per recipient for a deadline alert (a task's or a report's); how many."""
    session.add_all(
        Notification(
            recipient_id=user_id,
            event=ALERT_ACTIONS[kind],
            instance_id=instance_id,
            message=message,
            payload=payload,
            created_at=now,
        )
        for user_id in recipients
    )
    return len(recipients)


def _message(c: _Candidate, kind: str, days: int) -> str:
    name = f"Nhiệm vụ {c.task_number} ({c.unit_code}, {c.period_label})"
    due = f"{c.due_date:%d/%m/%Y}"
    if kind == ALERT_OVERDUE:
        if days == 0:  # past the due date, but no working day yet (a weekend, a holiday)
            return f"{name} đã quá hạn: hạn hoàn thành {due}."
        return f"{name} đã quá hạn: hạn hoàn thành {due}, đã quá {days} ngày làm việc."
    if days == 0:
        return f"{name} đến hạn hôm nay: hạn hoàn thành {due}."
    return f"{name} sắp đến hạn: hạn hoàn thành {due}, còn {days} ngày làm việc."


def _task_fields(c: _Candidate, days: int) -> dict[str, Any]:
    """What an alert's payload says of its task (a task's own alert, an entry of a digest)."""
    return {
        "task": c.task_number,
        "unit": c.unit_code,
        "period": c.period_label,
        "due_date": c.due_date.isoformat(),
        "working_days": days,
    }


DIGEST_LISTED = 10  # tasks named in a digest's message; all of them are in its payload


def _digest_message(tasks: Sequence[tuple[_Candidate, int]], today: date) -> str:
    """One line for an approver about several tasks found overdue by one check: how many, the
    first DIGEST_LISTED of `tasks` by name, how many more, and where the whole list is (the
    dashboard's list of overdue tasks)."""
    named = "; ".join(
        f"Nhiệm vụ {c.task_number} ({c.unit_code}, {c.period_label}, hạn {c.due_date:%d/%m/%Y})"
        for c, _ in tasks[:DIGEST_LISTED]
    )
    head = (
        f"Tính đến ngày {today:%d/%m/%Y}, có {len(tasks)} nhiệm vụ do đơn vị khác chủ trì "
        "đã quá hạn"
    )
    more = len(tasks) - DIGEST_LISTED
    if more > 0:
        return (
            f"{head}, quá hạn lâu nhất là: {named}; và {more} nhiệm vụ khác. "
            "Xem danh sách đầy đủ tại trang Điều hành."
        )
    return f"{head}, gồm: {named}. Xem danh sách tại trang Điều hành."


def tick(
    session: Session,
    org: Organization,
    *,
    today: date,
    now: datetime,
    calendar: WorkingCalendar,
    trail: AuditTrail,
    due_soon_days: int = DEFAULT_DUE_SOON_DAYS,
) -> TickReport:
    """The daily check: task deadlines (`tick_tasks`), then the periodic reports' deadlines
    (workflow.periodic.report_alerts: VHXH's staff are alerted once per report period, kind
    and due date while the period's report has not been generated)."""
    from workflow.periodic import report_alerts  # it imports this module

    report = tick_tasks(
        session,
        org,
        today=today,
        now=now,
        calendar=calendar,
        trail=trail,
        due_soon_days=due_soon_days,
    )
    sent = report_alerts(
        session,
        org,
        today=today,
        now=now,
        calendar=calendar,
        trail=trail,
        due_soon_days=due_soon_days,
    )
    return replace(report, reports=sent) if sent else report


def tick_tasks(
    session: Session,
    org: Organization,
    *,
    today: date,
    now: datetime,
    calendar: WorkingCalendar,
    trail: AuditTrail,
    due_soon_days: int = DEFAULT_DUE_SOON_DAYS,
) -> TickReport:
    """Alert every open instance of the ward that is due soon or overdue as of `today`, once per
    instance, kind and due date. `now` (timezone-aware) stamps the rows and audit entries.

    For each new alert: a deadline_alert row, one outbox notification per active member of the
    lead unit, one audit entry (deadline.approaching / deadline.overdue, actor "system") and the
    signal deadline-approaching / task-overdue queued for after commit. An overdue instance gets
    only the overdue alert. The active approvers (the head of VHXH, who urges the units on) hear
    of the newly overdue tasks of other units too: of one, by its own notification; of several,
    by one digest each that lists them (no instance), so that a first check after a long pause
    does not fill their list with one line per task. Never commits: the caller commits
    everything together or nothing. A second check running concurrently for the same ward fails
    on the unique (instance, kind, due date) constraint when it flushes, so it cannot alert
    twice.

    Queries: one for the candidates, one for earlier alerts, one for recipients, then the
    inserts and one audit append per alert.
    """
    _check_days(due_soon_days)
    # Due soon ⇔ working_days_between(today, due) <= N ⇔ due is before the (N+1)-th working
    # day after today; anything due later is on time and need not be read.
    horizon = calendar.add_working_days(today, due_soon_days + 1)
    rows = session.execute(
        select(
            TaskInstance.id,
            TaskInstance.state,
            TaskInstance.unit_id,
            Unit.code,
            TaskInstance.period_label,
            TaskInstance.due_date,
            PlanTask.number,
        )
        .join(Unit, TaskInstance.unit_id == Unit.id)
        .join(PlanTask, TaskInstance.plan_task_id == PlanTask.id)
        .where(
            Unit.organization_id == org.id,
            TaskInstance.state.not_in(_CLOSED),
            TaskInstance.due_date.is_not(None),
            TaskInstance.due_date < horizon,
        )
        .order_by(TaskInstance.due_date, TaskInstance.id)
    ).all()
    candidates = [
        _Candidate(row[0], row[1], row[2], row[3], row[4], row[5], row[6])
        for row in rows
        if row[5] is not None
    ]
    if not candidates:
        return TickReport(today=today)

    wanted: dict[tuple[int, str, date], tuple[_Candidate, int]] = {}
    for c in candidates:
        if today > c.due_date:
            wanted[(c.instance_id, ALERT_OVERDUE, c.due_date)] = (
                c,
                calendar.working_days_between(c.due_date, today),
            )
        else:
            wanted[(c.instance_id, ALERT_DUE_SOON, c.due_date)] = (
                c,
                calendar.working_days_between(today, c.due_date),
            )

    # Earlier alerts about the current due dates of this ward's open instances.
    sent = {
        (row[0], row[1], row[2])
        for row in session.execute(
            select(DeadlineAlert.instance_id, DeadlineAlert.kind, DeadlineAlert.due_date)
            .join(TaskInstance, DeadlineAlert.instance_id == TaskInstance.id)
            .join(Unit, TaskInstance.unit_id == Unit.id)
            .where(
                Unit.organization_id == org.id,
                TaskInstance.state.not_in(_CLOSED),
                DeadlineAlert.due_date == TaskInstance.due_date,
                TaskInstance.due_date < horizon,
            )
        )
    }
    new = [(key, value) for key, value in wanted.items() if key not in sent]
    already = tuple(key[0] for key in wanted if key in sent)
    if not new:
        return TickReport(today=today, checked=len(candidates), already_alerted=already)

    unit_ids = sorted({c.unit_id for _, (c, _) in new})
    # The lead units' active members; for an overdue task also the approvers (the head of
    # VHXH), since VHXH urges the units on (đôn đốc) for the ward (the plan's section on
    # implementation). One query for both.
    approver = (
        select(UserRole.user_id)
        .where(UserRole.user_id == User.id, UserRole.role == Role.APPROVER.value)
        .exists()
    )
    urged = any(key[1] == ALERT_OVERDUE for key, _ in new)
    members: dict[int, list[int]] = defaultdict(list)
    approvers: list[int] = []
    for user_id, unit_id, is_approver in session.execute(
        select(User.id, User.unit_id, approver)
        .where(
            User.organization_id == org.id,
            User.active.is_(True),
            or_(User.unit_id.in_(unit_ids), approver) if urged else User.unit_id.in_(unit_ids),
        )
        .order_by(User.id)
    ):
        if unit_id in unit_ids:
            members[unit_id].append(user_id)
        if is_approver:
            approvers.append(user_id)

    # The alert rows first: a concurrent check conflicts here, before anything else is written.
    session.add_all(
        DeadlineAlert(instance_id=key[0], kind=key[1], due_date=key[2], created_at=now)
        for key, _ in new
    )
    session.flush()

    alerts: list[Alert] = []
    notifications = 0
    # The newly overdue tasks each approver is to hear of (those of units that are not
    # theirs): one by its own notification, several by a digest.
    told = {
        a: [
            (c, days)
            for key, (c, days) in new
            if key[1] == ALERT_OVERDUE and a not in members.get(c.unit_id, [])
        ]
        for a in approvers
    }
    for (instance_id, kind, due), (c, days) in new:
        message = _message(c, kind, days)
        payload = {"kind": kind, **_task_fields(c, days), "today": today.isoformat()}
        recipients = members.get(c.unit_id, [])
        if kind == ALERT_OVERDUE:
            recipients = recipients + [
                a for a, tasks in told.items() if len(tasks) == 1 and tasks[0][0] is c
            ]
        notifications += add_alert_notifications(
            session,
            recipients,
            kind,
            instance_id=instance_id,
            message=message,
            payload=payload,
            now=now,
        )
        details: dict[str, Any] = {"kind": kind, "due": due.isoformat(), "today": today.isoformat()}
        details["working_days_late" if kind == ALERT_OVERDUE else "working_days_left"] = days
        trail.record(
            session,
            org,
            now=now,
            actor=SYSTEM,
            action=ALERT_ACTIONS[kind],
            object_type="task_instance",
            object_id=instance_id,
            details=details,
        )
        signals.send_after_commit(
            session,
            signals.task_overdue if kind == ALERT_OVERDUE else signals.deadline_approaching,
            instance_id,
            event=kind,
            actor=SYSTEM.user,
            state=c.state,
            due_date=due,
        )
        alerts.append(Alert(instance_id, kind, due, days, len(recipients)))
    digests = {a: tasks for a, tasks in told.items() if len(tasks) > 1}
    for approver_id, unordered in digests.items():
        # The longest overdue (the earliest due) first, in the message and the payload alike.
        tasks = sorted(
            unordered,
            key=lambda t: (t[0].due_date, t[0].task_number, t[0].unit_code, t[0].period_label),
        )
        add_alert_notifications(
            session,
            [approver_id],
            ALERT_OVERDUE,
            instance_id=None,
            message=_digest_message(tasks, today),
            payload={
                "kind": ALERT_OVERDUE,
                "digest": True,
                "today": today.isoformat(),
                "tasks": [
                    {"instance_id": c.instance_id, **_task_fields(c, days)} for c, days in tasks
                ],
            },
            now=now,
        )
    session.flush()
    return TickReport(
        today=today,
        alerts=tuple(alerts),
        notifications=notifications + len(digests),
        digests=len(digests),
        audit_entries=len(alerts),
        checked=len(candidates),
        already_alerted=already,
    )
