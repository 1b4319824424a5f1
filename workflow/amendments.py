"""Plan amendments: VHXH proposes to add, change or cancel a task during the year, the ward
leader approves or rejects, and an approved change reaches open work and future periods
without rewriting history.

History stays as it was. Accepted and cancelled instances keep their unit, period, due date
and state, and the audit log only grows. What an approval changes is the task's current
definition (its PlanTask row) and its open instances (neither accepted nor cancelled):

- A new timeframe re-dates the open instances whose period still exists: the same period
  label, or, when the task has a single period before and after (a deadline moved), that one
  period under its new label. Open instances of periods that no longer exist are cancelled.
- A lead change moves each removed lead's open instances not yet submitted to the lead that
  replaces it (removed and added leads paired in the order given). With no replacement they
  are cancelled. Submitted work stays with the unit that submitted it, to be decided there.
- Leads and periods without an instance get one (assigned, or awaiting_schedule when the date
  comes from an outside event), except periods already past due on the approval day: those
  are not future periods, and an instance would be born overdue. A replacing lead does not
  get a period the unit it replaces still holds.
- Cancelling a task cancels its open instances and marks the task inactive; a new task gets
  its PlanTask and instances like a task of the imported plan.

Every step is audited in the ward's log, inside the caller's transaction (never committed
here): the proposal, the decision (with the task's definition before and after), and one
entry per instance created, changed or cancelled. A refusal raises DomainError before
anything changes.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from functools import cache
from typing import Any, cast

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from definitions.calendar import WorkingCalendar, load_calendar
from definitions.products import ProductVocabulary, load_products
from definitions.timeframe import Period, Schedule, TimeframeError, parse_timeframe
from definitions.units import UnitCatalog, UnitNameError, load_units
from workflow.clock import ward_date
from workflow.db import hold_ward
from workflow.engine import person_of
from workflow.errors import DomainError
from workflow.models import (
    Organization,
    Plan,
    PlanAmendment,
    PlanTask,
    Remark,
    TaskInstance,
    Unit,
    User,
)
from workflow.permissions import Person, plan_refusal
from workflow.states import RemarkKind, Role, TaskState
from workflow.trail import Actor, AuditTrail


class AmendmentKind(StrEnum):
    """What an amendment does (stored names, kept in the CHECK constraint of plan_amendment)."""

    ADD_TASK = "add_task"
    CHANGE_TASK = "change_task"
    CANCEL_TASK = "cancel_task"


class AmendmentState(StrEnum):
    """proposed → approved | rejected (stored names, kept in plan_amendment's CHECK)."""

    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"


KIND_LABELS: dict[AmendmentKind, str] = {
    AmendmentKind.ADD_TASK: "Bổ sung nhiệm vụ",
    AmendmentKind.CHANGE_TASK: "Điều chỉnh nhiệm vụ",
    AmendmentKind.CANCEL_TASK: "Hủy nhiệm vụ",
}

STATE_LABELS: dict[AmendmentState, str] = {
    AmendmentState.PROPOSED: "Chờ phê duyệt",
    AmendmentState.APPROVED: "Đã phê duyệt",
    AmendmentState.REJECTED: "Đã từ chối",
}

# The fields a change may set, in the order they are checked and stored. "lead" is accepted
# as another spelling of "leads".
CHANGE_FIELDS = ("content", "leads", "coordinators", "timeframe", "products")
NEW_TASK_FIELDS = ("number", "section", *CHANGE_FIELDS)
_ALIASES = {"lead": "leads"}
_FIELD_LABELS = {
    "number": "số thứ tự",
    "section": "phần",
    "content": "nội dung",
    "leads": "đơn vị chủ trì",
    "coordinators": "đơn vị phối hợp",
    "timeframe": "thời gian thực hiện",
    "products": "sản phẩm",
}

_CLOSED = frozenset({TaskState.ACCEPTED.value, TaskState.CANCELLED.value})
_TIMEFRAME_EXAMPLES = "“Quý II/2026”, “Trước ngày 30/06/2026”, “Hàng quý”, “Thường xuyên”"


@dataclass(frozen=True)
class Definitions:
    """What a proposal is checked against: the unit catalogue (names and groups), the working
    calendar (due dates) and the product vocabulary (kinds)."""

    units: UnitCatalog
    calendar: WorkingCalendar
    products: ProductVocabulary


@cache
def default_definitions() -> Definitions:
    """The checked-in catalogue, calendar and vocabulary, the ones the plan was loaded with."""
    return Definitions(units=load_units(), calendar=load_calendar(), products=load_products())


# --- proposing ------------------------------------------------------------------------------


def propose_amendment(
    session: Session,
    org: Organization,
    plan: Plan,
    proposer: User,
    *,
    kind: str,
    task_number: int | None = None,
    changes: Mapping[str, Any] | None = None,
    reason: str,
    now: datetime,
    trail: AuditTrail,
    definitions: Definitions | None = None,
) -> PlanAmendment:
    """Record VHXH's proposal to change the plan; nothing else changes until it is approved.

    kind "change_task" needs `task_number` and sets any of content, leads (unit codes or
    names), coordinators, timeframe (a phrase of the plan's kind) and products (names; their
    kinds are classified). "add_task" needs section, content, leads, timeframe and products;
    number (the next free one) and coordinators are optional. "cancel_task" needs
    `task_number` and no changes. The caller commits.
    """
    person = person_of(proposer)
    refused = plan_refusal("propose_amendment", person, org.id)
    if refused is not None:
        raise refused
    if plan.organization_id != org.id:
        raise DomainError("not_found", f"Phường không có kế hoạch “{plan.code}”.")
    amendment_kind = _kind(kind)
    why = _text(reason)
    if not why:
        raise DomainError("reason_required", "Cần nêu lý do đề xuất điều chỉnh kế hoạch.")
    defs = definitions or default_definitions()
    given = dict(changes or {})

    task: PlanTask | None = None
    current: dict[str, Any] | None = None
    if amendment_kind is AmendmentKind.ADD_TASK:
        normalised = _new_task(session, org, plan, given, task_number, defs)
        number = int(normalised["number"])
    else:
        task = _open_task(session, plan, task_number)
        number = task.number
        if amendment_kind is AmendmentKind.CANCEL_TASK:
            if given:
                raise DomainError(
                    "invalid_change", "Đề xuất hủy nhiệm vụ không kèm nội dung điều chỉnh."
                )
            normalised = {}
        else:
            normalised = _task_changes(session, org, plan, task, given, defs)
            definition = _definition(task)
            current = {name: definition[name] for name in normalised}

    amendment = PlanAmendment(
        plan_id=plan.id,
        kind=amendment_kind.value,
        task_number=number,
        plan_task_id=task.id if task is not None else None,
        changes=normalised,
        reason=why,
        state=AmendmentState.PROPOSED.value,
        proposed_by_id=proposer.id,
        proposed_at=now,
    )
    session.add(amendment)
    session.flush()
    details: dict[str, Any] = {"plan": plan.code, "reason": why}
    if current is not None:
        details["current"] = current
    trail.record(
        session,
        org,
        now=now,
        actor=Actor(proposer.username, person.unit, _proposer_role(person)),
        action="plan.amendment_proposed",
        object_type="plan_amendment",
        object_id=amendment.id,
        after={
            "state": amendment.state,
            "kind": amendment.kind,
            "task": number,
            "changes": normalised,
        },
        details=details,
    )
    return amendment


def _proposer_role(person: Person) -> str:
    for role in (Role.HEAD, Role.APPROVER, Role.REVIEWER):
        if person.has(role):
            return role.value
    return Role.MEMBER.value


def _kind(kind: str) -> AmendmentKind:
    try:
        return AmendmentKind(kind)
    except ValueError:
        kinds = ", ".join(f"{label} ({k.value})" for k, label in KIND_LABELS.items())
        raise DomainError(
            "unknown_kind", f"Không có loại điều chỉnh “{kind}”. Các loại: {kinds}."
        ) from None


def _text(value: object) -> str:
    return unicodedata.normalize("NFC", value).strip() if isinstance(value, str) else ""


def _task(session: Session, plan: Plan, number: object, *, lock: bool = False) -> PlanTask:
    if not isinstance(number, int) or isinstance(number, bool):
        raise DomainError("unknown_task", "Cần chọn nhiệm vụ cần điều chỉnh (số thứ tự).")
    stmt = select(PlanTask).where(PlanTask.plan_id == plan.id, PlanTask.number == number)
    if lock:
        stmt = stmt.with_for_update(key_share=True)
    task = session.scalars(stmt).one_or_none()
    if task is None:
        raise DomainError("unknown_task", f"Kế hoạch không có nhiệm vụ số {number}.")
    return task


def _open_task(session: Session, plan: Plan, number: object, *, lock: bool = False) -> PlanTask:
    task = _task(session, plan, number, lock=lock)
    if not task.active:
        raise DomainError(
            "task_cancelled", f"Nhiệm vụ số {task.number} đã bị hủy, không điều chỉnh được nữa."
        )
    return task


def _fields(given: Mapping[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    """The given fields under their canonical names; refuses names it does not know."""
    fields: dict[str, Any] = {}
    for key, value in given.items():
        name = _ALIASES.get(key, key)
        if name not in allowed:
            names = ", ".join(allowed)
            raise DomainError(
                "invalid_change", f"Không điều chỉnh được trường “{key}”. Các trường: {names}."
            )
        if name in fields:
            raise DomainError("invalid_change", f"Trường “{name}” được nêu hai lần.")
        fields[name] = value
    return fields


def _task_changes(
    session: Session,
    org: Organization,
    plan: Plan,
    task: PlanTask,
    given: Mapping[str, Any],
    defs: Definitions,
) -> dict[str, Any]:
    fields = _fields(given, CHANGE_FIELDS)
    units = _ward_units(session, org)
    checked = {
        name: _field_value(name, fields[name], plan, units, defs)
        for name in CHANGE_FIELDS
        if name in fields
    }
    definition = _definition(task)
    changed = {name: value for name, value in checked.items() if value != definition[name]}
    if not changed:
        raise DomainError(
            "no_change", f"Đề xuất không thay đổi gì so với nhiệm vụ số {task.number} hiện hành."
        )
    return changed


def _new_task(
    session: Session,
    org: Organization,
    plan: Plan,
    given: Mapping[str, Any],
    task_number: int | None,
    defs: Definitions,
) -> dict[str, Any]:
    fields = _fields(given, NEW_TASK_FIELDS)
    if task_number is not None:
        if "number" in fields and fields["number"] != task_number:
            raise DomainError("invalid_number", "Số thứ tự của nhiệm vụ mới được nêu khác nhau.")
        fields["number"] = task_number
    fields.setdefault("coordinators", [])
    missing = [n for n in NEW_TASK_FIELDS if n not in fields and n != "number"]
    if missing:
        raise DomainError(
            "invalid_change",
            "Nhiệm vụ mới còn thiếu: " + ", ".join(_FIELD_LABELS[n] for n in missing) + ".",
        )
    free = _next_number(session, plan)
    number = fields.get("number", free)
    if not isinstance(number, int) or isinstance(number, bool) or number != free:
        raise DomainError(
            "invalid_number", f"Nhiệm vụ mới phải mang số thứ tự tiếp theo của kế hoạch: {free}."
        )
    units = _ward_units(session, org)
    checked: dict[str, Any] = {
        "number": number,
        "section": _section(fields["section"], plan, session),
    }
    for name in CHANGE_FIELDS:
        checked[name] = _field_value(name, fields[name], plan, units, defs)
    return checked


def _next_number(session: Session, plan: Plan) -> int:
    highest = session.scalar(select(func.max(PlanTask.number)).where(PlanTask.plan_id == plan.id))
    return int(highest or 0) + 1


def _section(value: object, plan: Plan, session: Session) -> str:
    sections = _sections(plan, session)
    section = _text(value)
    if section not in sections:
        raise DomainError(
            "unknown_section",
            f"Kế hoạch không có phần “{section}”. Các phần: {', '.join(sections)}.",
        )
    return section


def _sections(plan: Plan, session: Session) -> list[str]:
    """The plan's sections: those of its definition, else those its tasks belong to."""
    document = yaml.safe_load(plan.definition_text) if plan.definition_text else None
    rows = document.get("sections") if isinstance(document, dict) else None
    if isinstance(rows, list):
        numbers = [str(row["number"]) for row in rows if isinstance(row, dict) and "number" in row]
        if numbers:
            return numbers
    found = session.scalars(
        select(PlanTask.section).where(PlanTask.plan_id == plan.id).distinct()
    ).all()
    return sorted(s for s in found if s)


def _ward_units(session: Session, org: Organization) -> dict[str, Unit]:
    rows = session.scalars(select(Unit).where(Unit.organization_id == org.id)).all()
    return {unit.code: unit for unit in rows}


def _field_value(
    name: str, value: object, plan: Plan, units: Mapping[str, Unit], defs: Definitions
) -> Any:
    if name == "content":
        content = _text(value)
        if not content:
            raise DomainError("invalid_change", "Cần nhập nội dung nhiệm vụ.")
        return content
    if name == "leads":
        return _leads(value, units, defs.units)
    if name == "coordinators":
        return _coordinators(value, units, defs.units)
    if name == "timeframe":
        return _timeframe(value, plan.year, defs.calendar).text
    return _products(value, defs.products)


def _names(value: object, what: str) -> list[str]:
    """A list of names, or one cell of text that the catalogue splits."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise DomainError("invalid_change", f"Cần nêu {what} là danh sách tên hoặc mã.")
    return [text for text in (_text(item) for item in cast(list[str], items)) if text]


def _unknown_unit(name: str) -> DomainError:
    return DomainError("unknown_unit", f"Không nhận ra đơn vị “{name}” trong danh mục của phường.")


def _leads(value: object, units: Mapping[str, Unit], catalog: UnitCatalog) -> list[str]:
    codes: list[str] = []
    for name in _names(value, "đơn vị chủ trì"):
        if name in units:
            codes.append(name)
            continue
        named = catalog.match_unit_name(name)
        if named is not None:
            codes.append(named)
            continue
        try:
            codes.extend(catalog.resolve_lead(name))
        except UnitNameError:
            raise _unknown_unit(name) from None
    for code in codes:
        unit = units.get(code)
        if unit is None or not unit.active:
            raise _unknown_unit(code)
        if not unit.can_lead:
            raise DomainError("cannot_lead", f"{unit.name} không được chủ trì nhiệm vụ.")
    if not codes:
        raise DomainError("invalid_change", "Cần ít nhất một đơn vị chủ trì.")
    return list(dict.fromkeys(codes))


def _coordinators(value: object, units: Mapping[str, Unit], catalog: UnitCatalog) -> list[str]:
    codes: list[str] = []
    for name in _names(value, "đơn vị phối hợp"):
        if name in units or catalog.is_coordinator(name):
            codes.append(name)
            continue
        named = catalog.match_unit_name(name)
        if named is not None:
            codes.append(named)
            continue
        try:
            codes.extend(catalog.resolve_coordinators(name))
        except UnitNameError:
            raise _unknown_unit(name) from None
    for code in codes:
        # A symbolic group (e.g. related_units) stands for the ward's units when a task runs.
        if code not in catalog.groups and (code not in units or not units[code].active):
            raise _unknown_unit(code)
    return list(dict.fromkeys(codes))


def _timeframe(value: object, year: int, calendar: WorkingCalendar) -> Schedule:
    text = _text(value)
    if not text:
        raise DomainError("invalid_timeframe", "Cần nhập thời gian thực hiện nhiệm vụ.")
    try:
        return parse_timeframe(text, year, calendar)
    except TimeframeError:
        raise DomainError(
            "invalid_timeframe",
            f"Không hiểu được thời gian thực hiện “{text}”. Hãy ghi như trong kế hoạch, "
            f"ví dụ: {_TIMEFRAME_EXAMPLES}.",
        ) from None


def _products(value: object, vocabulary: ProductVocabulary) -> list[dict[str, str]]:
    if isinstance(value, str):
        names = vocabulary.split(value)
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        names = [_text(item) for item in cast(list[str], value)]
    else:
        raise DomainError("invalid_change", "Cần nêu sản phẩm là danh sách tên sản phẩm.")
    products: list[dict[str, str]] = []
    for name in dict.fromkeys(n for n in names if n):
        kind = vocabulary.classify(name)
        if kind is None:
            raise DomainError(
                "unknown_product_kind",
                f"Không xác định được loại của sản phẩm “{name}”: tên sản phẩm cần bắt đầu "
                "bằng loại sản phẩm, ví dụ “Báo cáo …”, “Kế hoạch …”, “Quyết định …”.",
            )
        products.append({"name": name, "kind": kind})
    if not products:
        raise DomainError("invalid_change", "Cần ít nhất một sản phẩm.")
    return products


def _definition(task: PlanTask) -> dict[str, Any]:
    """The task's current definition as the log records it."""
    return {
        "number": task.number,
        "section": task.section,
        "content": task.content,
        "leads": list(task.leads),
        "coordinators": list(task.coordinators),
        "timeframe": task.timeframe,
        "products": [{"name": p["name"], "kind": p["kind"]} for p in task.products],
        "active": task.active,
    }


# --- deciding -------------------------------------------------------------------------------


def decide_amendment(
    session: Session,
    org: Organization,
    amendment_id: int,
    decider: User,
    *,
    approve: bool,
    reason: str,
    now: datetime,
    trail: AuditTrail,
    today: date,
    definitions: Definitions | None = None,
) -> PlanAmendment:
    """The ward leader approves or rejects a proposed amendment; approval applies it.

    A rejection needs a reason; an approval may carry a note. `today` (the approval day, a
    Vietnamese date) decides which periods are still to come. The caller commits.
    """
    person = person_of(decider)
    amendment = _load(session, org, amendment_id)
    refused = plan_refusal("decide_amendment", person, org.id)
    if refused is not None:
        raise refused
    if amendment.state != AmendmentState.PROPOSED:
        verb = "phê duyệt" if amendment.state == AmendmentState.APPROVED else "từ chối"
        when = f" ngày {ward_date(amendment.decided_at):%d/%m/%Y}" if amendment.decided_at else ""
        raise DomainError(
            "already_decided", f"Đề xuất điều chỉnh số {amendment.id} đã được {verb}{when}."
        )
    if amendment.proposed_by_id == decider.id:
        raise DomainError(
            "self_review",
            "Bạn đã đề xuất điều chỉnh này nên không được tự phê duyệt hoặc từ chối.",
        )
    note = _text(reason)
    if not approve and not note:
        raise DomainError("reason_required", "Cần nêu lý do từ chối đề xuất điều chỉnh.")

    actor = Actor(decider.username, person.unit, Role.WARD_LEADER.value)
    application: _Application | None = None
    if approve:
        # Checked again: since the proposal a task may have been cancelled, a unit closed or
        # the number taken. Everything is checked before anything changes.
        application = _Application.prepare(
            session, org, amendment, decider, now, today, definitions or default_definitions()
        )
        application.apply()

    amendment.state = (AmendmentState.APPROVED if approve else AmendmentState.REJECTED).value
    amendment.decided_by_id = decider.id
    amendment.decided_at = now
    amendment.decision_reason = note
    _flush(session)

    before: dict[str, Any] = {"state": AmendmentState.PROPOSED.value}
    after: dict[str, Any] = {"state": amendment.state}
    if application is not None:
        before["task"] = application.definition_before
        after["task"] = _definition(application.task)
    trail.record(
        session,
        org,
        now=now,
        actor=actor,
        action=f"plan.amendment_{amendment.state}",
        object_type="plan_amendment",
        object_id=amendment.id,
        before=before,
        after=after,
        details={
            "kind": amendment.kind,
            "task": amendment.task_number,
            "reason": note,
            "instances": len(application.steps) if application is not None else 0,
        },
    )
    if application is not None:
        application.record(trail, actor)
    return amendment


def _load(session: Session, org: Organization, amendment_id: int) -> PlanAmendment:
    # PostgreSQL serialises two decisions on one amendment on its row: the second sees the
    # first one's state and is refused as already decided.
    amendment = session.scalars(
        select(PlanAmendment)
        .join(Plan, PlanAmendment.plan_id == Plan.id)
        .where(PlanAmendment.id == amendment_id, Plan.organization_id == org.id)
        .with_for_update(of=PlanAmendment, key_share=True)
    ).one_or_none()
    if amendment is None:
        raise DomainError("not_found", f"Không tìm thấy đề xuất điều chỉnh số {amendment_id}.")
    return amendment


def _flush(session: Session) -> None:
    try:
        session.flush()
    except StaleDataError as exc:
        raise DomainError(
            "stale_version",
            "Nhiệm vụ hoặc đề xuất vừa được người khác cập nhật. Vui lòng tải lại rồi thử lại.",
        ) from exc


@dataclass
class _Step:
    """One instance created, changed or cancelled by an approval, for its audit entry."""

    action: str
    instance: TaskInstance
    before: dict[str, Any] | None
    change: str


def _snapshot(instance: TaskInstance, task: PlanTask, unit: Unit) -> dict[str, Any]:
    return {
        "task": task.number,
        "unit": unit.code,
        "period": instance.period_label,
        "state": instance.state,
        "due": instance.due_date.isoformat() if instance.due_date else None,
        "version": instance.version,
    }


@dataclass
class _Application:
    """An approved amendment being applied: checked first (prepare), then applied, then
    recorded once the changes are flushed."""

    session: Session
    org: Organization
    amendment: PlanAmendment
    decider: User
    now: datetime
    today: date
    units: dict[str, Unit]
    task: PlanTask
    definition_before: dict[str, Any] | None
    changes: dict[str, Any]
    schedule: Schedule | None
    old_periods: tuple[Period, ...] | None
    lead_text: str
    coordinators_text: str
    instances: list[TaskInstance]
    steps: list[_Step]

    @classmethod
    def prepare(
        cls,
        session: Session,
        org: Organization,
        amendment: PlanAmendment,
        decider: User,
        now: datetime,
        today: date,
        defs: Definitions,
    ) -> _Application:
        plan = amendment.plan
        kind = AmendmentKind(amendment.kind)
        units = _ward_units(session, org)
        changes = dict(amendment.changes)
        if kind is AmendmentKind.ADD_TASK:
            hold_ward(session, org.id)  # two tasks of one number approved at once
            if _task_exists(session, plan, amendment.task_number):
                raise DomainError(
                    "number_taken",
                    f"Số thứ tự {amendment.task_number} đã được dùng cho nhiệm vụ khác. Cần từ "
                    f"chối đề xuất này và đề xuất lại với số {_next_number(session, plan)}.",
                )
            task = PlanTask(plan_id=plan.id, number=amendment.task_number, active=True)
            definition_before = None
            instances: list[TaskInstance] = []
        else:
            task = _open_task(session, plan, amendment.task_number, lock=True)
            definition_before = _definition(task)
            instances = list(
                session.scalars(
                    select(TaskInstance)
                    .where(TaskInstance.plan_task_id == task.id)
                    .order_by(TaskInstance.id)
                    .with_for_update(key_share=True)
                )
            )
        if "leads" in changes:
            changes["leads"] = _leads(changes["leads"], units, defs.units)
        if "coordinators" in changes:
            changes["coordinators"] = _coordinators(changes["coordinators"], units, defs.units)
        leads = changes.get("leads", task.leads)
        coordinators = changes.get("coordinators", task.coordinators)
        schedule: Schedule | None = None
        old_periods: tuple[Period, ...] | None = None
        if "timeframe" in changes or kind is not AmendmentKind.CANCEL_TASK:
            timeframe = changes.get("timeframe", task.timeframe)
            schedule = _timeframe(timeframe, plan.year, defs.calendar)
        if kind is AmendmentKind.CHANGE_TASK and "timeframe" in changes:
            try:
                old_periods = parse_timeframe(task.timeframe, plan.year, defs.calendar).periods
            except TimeframeError:
                old_periods = None
        return cls(
            session=session,
            org=org,
            amendment=amendment,
            decider=decider,
            now=now,
            today=today,
            units=units,
            task=task,
            definition_before=definition_before,
            changes=changes,
            schedule=schedule,
            old_periods=old_periods,
            lead_text=", ".join(units[code].name for code in leads),
            coordinators_text=", ".join(
                _coordinator_name(code, units, defs.units) for code in coordinators
            ),
            instances=instances,
            steps=[],
        )

    # --- applying ---------------------------------------------------------------------------

    def apply(self) -> None:
        kind = AmendmentKind(self.amendment.kind)
        if kind is AmendmentKind.CANCEL_TASK:
            for instance in self._open():
                self._cancel(instance)
            self.task.active = False
            return
        old_leads = list(self.task.leads) if kind is AmendmentKind.CHANGE_TASK else []
        self._define()
        if kind is AmendmentKind.ADD_TASK:
            self.session.add(self.task)
            self.session.flush()
            self.amendment.plan_task_id = self.task.id
            self._create_missing({})
            return
        if "products" in self.changes:
            # What a submission must cover changed: one waiting for the lock this approval
            # holds reads the instance again, and a page from before is stale. (A moved lead or
            # timeframe moves its instances itself; nothing else here is read by a transition.)
            for instance in self._open():
                if instance.state == TaskState.IN_PROGRESS:
                    instance.touch(self.now)
        successors: dict[str, str] = {}
        if "leads" in self.changes:
            successors = self._move_leads(old_leads, list(self.task.leads))
        if "timeframe" in self.changes:
            self._retime()
        if "leads" in self.changes or "timeframe" in self.changes:
            self._create_missing({new: old for old, new in successors.items()})

    def _define(self) -> None:
        task, changes = self.task, self.changes
        if "section" in changes:
            task.section = changes["section"]
        if "content" in changes:
            task.content = changes["content"]
        if "leads" in changes:
            task.leads = list(changes["leads"])
            task.lead_text = self.lead_text
        if "coordinators" in changes:
            task.coordinators = list(changes["coordinators"])
            task.coordinators_text = self.coordinators_text
        if "timeframe" in changes:
            assert self.schedule is not None
            task.timeframe = self.schedule.text
            task.schedule_kind = self.schedule.kind
        if "products" in changes:
            task.products = [dict(p) for p in changes["products"]]

    def _open(self) -> list[TaskInstance]:
        return [i for i in self.instances if i.state not in _CLOSED]

    def _taken(self, unit: Unit, label: str) -> bool:
        return any(i.unit_id == unit.id and i.period_label == label for i in self.instances)

    def _before(self, instance: TaskInstance) -> dict[str, Any]:
        return _snapshot(instance, self.task, instance.unit)

    def _cancel(self, instance: TaskInstance) -> None:
        before = self._before(instance)
        instance.state = TaskState.CANCELLED.value
        instance.updated_at = self.now
        self.session.add(
            Remark(
                instance_id=instance.id,
                author_id=self.decider.id,
                kind=RemarkKind.DECISION.value,
                body=f"Hủy theo điều chỉnh kế hoạch số {self.amendment.id}: "
                f"{self.amendment.reason}",
                created_at=self.now,
            )
        )
        self.steps.append(_Step("task.cancel", instance, before, "cancelled"))

    def _move_leads(self, old: list[str], new: list[str]) -> dict[str, str]:
        """Move removed leads' open work not yet submitted to the leads replacing them."""
        removed = [code for code in old if code not in new]
        added = [code for code in new if code not in old]
        successors = dict(zip(removed, added, strict=False))
        for instance in self._open():
            code = instance.unit.code
            if code not in removed or instance.submission_round > 0:
                continue
            target = successors.get(code)
            if target is None or self._taken(self.units[target], instance.period_label):
                self._cancel(instance)
                continue
            before = self._before(instance)
            instance.unit = self.units[target]
            instance.unit_id = self.units[target].id
            instance.assignee_id = None  # a person of the unit it leaves
            instance.updated_at = self.now
            self.steps.append(_Step("task.amended", instance, before, "lead"))
        return successors

    def _retime(self) -> None:
        """Re-date open instances whose period still exists; cancel those whose period went."""
        assert self.schedule is not None
        periods = {p.label: p for p in self.schedule.periods}
        moved: Period | None = None
        old = self.old_periods
        if old is not None and len(old) == 1 and len(self.schedule.periods) == 1:
            moved = self.schedule.periods[0]  # one period before and after: a moved deadline
        for instance in self._open():
            period = periods.get(instance.period_label)
            relabel = False
            if (
                period is None
                and moved is not None
                and old is not None
                and instance.period_label == old[0].label
                and not self._taken(instance.unit, moved.label)
            ):
                period, relabel = moved, True
            if period is None:
                self._cancel(instance)
                continue
            due_changes = period.due is not None and period.due != instance.due_date
            if not (relabel or due_changes):
                continue
            before = self._before(instance)
            if relabel:
                instance.period_label = period.label
                instance.period_start = period.start
            if period.due is not None:
                instance.due_date = period.due
                if instance.state == TaskState.AWAITING_SCHEDULE:
                    instance.state = TaskState.ASSIGNED.value
            instance.updated_at = self.now
            self.steps.append(_Step("task.amended", instance, before, "timeframe"))

    def _create_missing(self, predecessors: Mapping[str, str]) -> None:
        """An instance for every lead and period that has none and is still to come."""
        assert self.schedule is not None
        for code in self.task.leads:
            unit = self.units[code]
            held = {i.period_label for i in self.instances if i.unit_id == unit.id}
            replaced = predecessors.get(code)
            if replaced is not None:
                old_unit = self.units[replaced]
                held |= {i.period_label for i in self.instances if i.unit_id == old_unit.id}
            for period in self.schedule.periods:
                if period.label in held or (period.due is not None and period.due < self.today):
                    continue
                instance = TaskInstance(
                    plan_task_id=self.task.id,
                    unit_id=unit.id,
                    period_label=period.label,
                    period_start=period.start,
                    due_date=period.due,
                    state=(
                        TaskState.ASSIGNED
                        if period.due is not None
                        else TaskState.AWAITING_SCHEDULE
                    ).value,
                    created_at=self.now,
                    updated_at=self.now,
                )
                instance.unit = unit
                instance.plan_task = self.task
                self.session.add(instance)
                self.instances.append(instance)
                self.steps.append(_Step("task.assigned", instance, None, "created"))

    # --- recording --------------------------------------------------------------------------

    def record(self, trail: AuditTrail, actor: Actor) -> None:
        """One entry per instance, after the flush (so each has its id and new version)."""
        for step in self.steps:
            trail.record(
                self.session,
                self.org,
                now=self.now,
                actor=actor,
                action=step.action,
                object_type="task_instance",
                object_id=step.instance.id,
                before=step.before,
                after=_snapshot(step.instance, self.task, step.instance.unit),
                details={
                    "amendment": self.amendment.id,
                    "change": step.change,
                    "reason": self.amendment.reason,
                },
            )


def _task_exists(session: Session, plan: Plan, number: int) -> bool:
    found = session.scalar(
        select(PlanTask.id).where(PlanTask.plan_id == plan.id, PlanTask.number == number)
    )
    return found is not None


def _coordinator_name(code: str, units: Mapping[str, Unit], catalog: UnitCatalog) -> str:
    group = catalog.groups.get(code)
    if group is not None and group.names:
        return group.names[0]
    return units[code].name if code in units else code


# --- reading --------------------------------------------------------------------------------


def amendments_of(
    session: Session, org: Organization, *, state: str | None = None
) -> list[PlanAmendment]:
    """The ward's amendments, oldest first; only those in `state` when given."""
    stmt = (
        select(PlanAmendment)
        .join(Plan, PlanAmendment.plan_id == Plan.id)
        .where(Plan.organization_id == org.id)
        .order_by(PlanAmendment.id)
    )
    if state is not None:
        stmt = stmt.where(PlanAmendment.state == state)
    return list(session.scalars(stmt))


def amendment_as_dict(amendment: PlanAmendment) -> dict[str, Any]:
    """An amendment as JSON-ready data (for the CLI and the API)."""
    return {
        "id": amendment.id,
        "plan": amendment.plan.code,
        "kind": amendment.kind,
        "kind_label": KIND_LABELS[AmendmentKind(amendment.kind)],
        "task": amendment.task_number,
        "changes": amendment.changes,
        "reason": amendment.reason,
        "state": amendment.state,
        "state_label": STATE_LABELS[AmendmentState(amendment.state)],
        "proposed_by": amendment.proposed_by.username,
        "proposed_at": amendment.proposed_at.isoformat(),
        "decided_by": amendment.decided_by.username if amendment.decided_by else None,
        "decided_at": amendment.decided_at.isoformat() if amendment.decided_at else None,
        "decision_reason": amendment.decision_reason,
    }
