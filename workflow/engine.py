"""The engine: the one entry point that changes a task instance.

`Engine.fire` loads the instance (locked on PostgreSQL), checks permission (workflow.
permissions, the one place), checks what the action needs, runs the lifecycle machine,
appends the audit entry and the outbox rows, and queues the signal for after commit. It never
commits: the caller's boundary commits the state, its entry and its notifications together,
or rolls all of them back (invariant 1). A refusal raises DomainError before anything
changes (invariant 5).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from blinker import NamedSignal
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError

from definitions.units import UnitCatalog, load_units
from workflow import signals
from workflow.clock import Clock
from workflow.errors import DomainError
from workflow.evidence import EvidenceStore, sniff
from workflow.lifecycle import EVENT_LABELS, EVENTS, machine_for, target_of, transitions_from
from workflow.models import (
    Contribution,
    CoordinationRequest,
    Evidence,
    Notification,
    Organization,
    PlanTask,
    Remark,
    TaskInstance,
    Unit,
    User,
    UserRole,
)
from workflow.permissions import (
    Person,
    Policy,
    Work,
    answer_refusal,
    area_refusal,
    decider_role,
    refusal,
)
from workflow.states import TASK_STATE_LABELS, RemarkKind, RequestState, Role, TaskState
from workflow.trail import Actor, AuditTrail

RECOMMENDATIONS = ("accept", "return")

_SIGNALS: dict[str, NamedSignal] = {
    "schedule": signals.task_assigned,
    "start": signals.task_started,
    "submit": signals.evidence_submitted,
    "review": signals.task_reviewed,
    "accept": signals.task_accepted,
    "return_for_rework": signals.task_returned,
    "rework": signals.task_started,
}


@dataclass(frozen=True)
class Outcome:
    instance_id: int
    event: str
    before: str
    after: str
    version: int
    audit_seq: int


def _text(value: str | None) -> str:
    return unicodedata.normalize("NFC", (value or "").strip())


def person_of(user: User) -> Person:
    return Person(
        id=user.id,
        username=user.username,
        unit=user.unit.code if user.unit else None,
        roles=frozenset(user.role_names),
        organization_id=user.organization_id,
    )


def _state_label(state: str) -> str:
    return TASK_STATE_LABELS[TaskState(state)]


class Engine:
    """Applies actions to task instances for one unit of work (one session)."""

    def __init__(
        self,
        session: Session,
        trail: AuditTrail,
        clock: Clock,
        *,
        store: EvidenceStore | None = None,
    ) -> None:
        self.session = session
        self.trail = trail
        self.clock = clock
        self.store = store

    # --- reading ----------------------------------------------------------------------------

    def load(self, instance_id: int, *, lock: bool = False) -> TaskInstance:
        # The instance with what every check reads (its unit and ward, its task and plan) in
        # one statement; inner joins, so that FOR UPDATE may lock the instance row.
        stmt = (
            select(TaskInstance)
            .where(TaskInstance.id == instance_id)
            .options(
                joinedload(TaskInstance.unit, innerjoin=True).joinedload(
                    Unit.organization, innerjoin=True
                ),
                joinedload(TaskInstance.plan_task, innerjoin=True).joinedload(
                    PlanTask.plan, innerjoin=True
                ),
            )
        )
        if lock:
            # PostgreSQL serialises writers on the row; SQLite already holds the write lock
            # (BEGIN IMMEDIATE) and ignores FOR UPDATE.
            # populate_existing: a row already in the session is refreshed from the locked read.
            stmt = stmt.with_for_update(of=TaskInstance).execution_options(populate_existing=True)
        instance = self.session.scalars(stmt).one_or_none()
        if instance is None:
            raise DomainError("not_found", f"Không tìm thấy nhiệm vụ số {instance_id}.")
        return instance

    def load_visible(self, instance_id: int, viewer: User) -> TaskInstance:
        """The instance, if the viewer belongs to its ward: everyone in a ward may read its
        plan's work (it is the ward's public plan); nobody reads another ward's."""
        instance = self.load(instance_id)
        if instance.unit.organization_id != viewer.organization_id:
            raise DomainError("not_found", f"Không tìm thấy nhiệm vụ số {instance_id}.")
        return instance

    def work(self, instance: TaskInstance) -> Work:
        contributors = self.session.scalars(
            select(Evidence.uploader_id)
            .where(Evidence.instance_id == instance.id, Evidence.withdrawn_at.is_(None))
            .distinct()
        ).all()
        return Work(
            lead_unit=instance.unit.code,
            state=instance.state,
            organization_id=instance.unit.organization_id,
            submitted_by=instance.submitted_by_id,
            reviewed_by=instance.reviewed_by_id,
            contributors=frozenset(contributors),
        )

    @staticmethod
    def policy(instance: TaskInstance) -> Policy:
        stored = instance.plan_task.plan.policy or {}
        return Policy(
            submit_requires_head=bool(stored.get("submit_requires_head", True)),
            outstanding_contributions=str(stored.get("outstanding_contributions", "explain")),
        )

    def enabled_events(self, instance: TaskInstance, user: User) -> list[str]:
        """The lifecycle events this person may fire now (what the pages offer)."""
        person, work, policy = person_of(user), self.work(instance), self.policy(instance)
        return [
            event
            for event in transitions_from(instance.state)
            if refusal(event, person, work, policy) is None
        ]

    @staticmethod
    def may_open(area: str, user: User) -> DomainError | None:
        """Why this person may not open an area (review_queue, dashboard, audit, admin)."""
        return area_refusal(area, person_of(user))

    def may(self, action: str, instance: TaskInstance, user: User) -> bool:
        """Whether this person may take a non-lifecycle action (add_evidence, comment, ...)."""
        return refusal(action, person_of(user), self.work(instance), self.policy(instance)) is None

    # --- the lifecycle ----------------------------------------------------------------------

    def fire(
        self,
        instance_id: int,
        event: str,
        actor: User,
        *,
        expected_version: int | None = None,
        reason: str | None = None,
        assessment: str | None = None,
        findings: str | None = None,
        recommendation: str | None = None,
        due: date | None = None,
        explanation: str | None = None,
    ) -> Outcome:
        if event not in EVENTS:
            raise DomainError("unknown_event", f"Không có thao tác “{event}”.")
        with self.session.no_autoflush:
            instance = self.load(instance_id, lock=True)
            self._check_version(instance, expected_version)
            work = self._checked(instance, event, actor)
            inputs = _Inputs(
                reason=_text(reason),
                assessment=_text(assessment),
                findings=_text(findings),
                recommendation=_text(recommendation),
                due=due,
                explanation=_text(explanation),
            )
            details = self._requirements(event, instance, self.policy(instance), inputs)
        before = instance.state

        # Everything above only read; from here on the instance changes.
        now = self.clock.now()
        machine_for(instance).send(event)
        self._apply(event, instance, actor, inputs, now)
        _touch(instance, now)
        self._flush()
        person = person_of(actor)
        entry = self.trail.record(
            self.session,
            self._org(instance),
            now=now,
            actor=Actor(actor.username, person.unit, _acting_role(event, person, work)),
            action=f"task.{event}",
            object_type="task_instance",
            object_id=instance.id,
            before={"state": before, "version": instance.version - 1},
            after={"state": instance.state, "version": instance.version},
            details=details or None,
        )
        self._notify_transition(event, instance, actor, inputs, work)
        signal = _SIGNALS.get(event)
        if signal is not None:
            signals.send_after_commit(
                self.session,
                signal,
                instance.id,
                event=event,
                actor=actor.username,
                state=instance.state,
            )
        return Outcome(instance.id, event, before, instance.state, instance.version, entry.seq)

    def _checked(self, instance: TaskInstance, event: str, actor: User) -> Work:
        """The instance as the rules see it, once the event exists and the person may."""
        before = instance.state
        if target_of(before, event) is None:
            raise DomainError(
                "invalid_transition",
                f"Không thể “{EVENT_LABELS[event]}” khi nhiệm vụ đang ở trạng thái "
                f"“{_state_label(before)}”.",
            )
        work = self.work(instance)
        refused = refusal(event, person_of(actor), work, self.policy(instance))
        if refused is not None:
            raise refused
        return work

    def _check_version(self, instance: TaskInstance, expected: int | None) -> None:
        if expected is not None and instance.version != expected:
            raise DomainError(
                "stale_version",
                f"Nhiệm vụ vừa được người khác cập nhật (phiên bản {instance.version}, bạn đang "
                f"xem phiên bản {expected}). Vui lòng tải lại trang rồi thử lại.",
            )

    def _flush(self) -> None:
        try:
            self.session.flush()
        except StaleDataError as exc:
            raise DomainError(
                "stale_version",
                "Nhiệm vụ vừa được người khác cập nhật. Vui lòng tải lại trang rồi thử lại.",
            ) from exc

    def _org(self, instance: TaskInstance) -> Organization:
        return instance.unit.organization

    def _requirements(
        self, event: str, instance: TaskInstance, policy: Policy, inputs: _Inputs
    ) -> dict[str, Any]:
        """Check what the event needs besides permission; return its audit details."""
        if event == "schedule":
            if inputs.due is None:
                raise DomainError("due_required", "Cần nhập thời hạn hoàn thành (ngày/tháng/năm).")
            if inputs.due < instance.period_start:
                raise DomainError(
                    "invalid_due",
                    f"Thời hạn không được trước ngày bắt đầu {instance.period_start:%d/%m/%Y}.",
                )
            return {"due": inputs.due.isoformat()}
        if event == "submit":
            return self._submission_details(instance, policy, inputs)
        if event == "review":
            if not inputs.findings:
                raise DomainError("findings_required", "Cần ghi nhận xét thẩm định.")
            if inputs.recommendation not in RECOMMENDATIONS:
                raise DomainError(
                    "recommendation_required",
                    "Cần chọn đề xuất: nghiệm thu (accept) hoặc trả lại (return).",
                )
            return {"findings": inputs.findings, "recommendation": inputs.recommendation}
        if event in ("return_for_rework", "cancel"):
            if not inputs.reason:
                what = "trả lại" if event == "return_for_rework" else "hủy nhiệm vụ"
                raise DomainError("reason_required", f"Cần nêu lý do {what}.")
            return {"reason": inputs.reason}
        if event == "accept":
            if not inputs.assessment:
                raise DomainError("assessment_required", "Cần ghi đánh giá khi nghiệm thu.")
            return {"assessment": inputs.assessment}
        return {}

    def _submission_details(
        self, instance: TaskInstance, policy: Policy, inputs: _Inputs
    ) -> dict[str, Any]:
        evidence = self.session.scalars(
            select(Evidence)
            .where(Evidence.instance_id == instance.id, Evidence.withdrawn_at.is_(None))
            .order_by(Evidence.id)
        ).all()
        explained = set(
            self.session.scalars(
                select(Remark.product).where(
                    Remark.instance_id == instance.id, Remark.kind == RemarkKind.EXPLANATION
                )
            )
        )
        covered = {e.product for e in evidence}
        products = [p["name"] for p in instance.plan_task.products]
        missing = [p for p in products if p not in covered and p not in explained]
        if missing:
            raise DomainError(
                "evidence_missing",
                "Chưa có tài liệu kiểm chứng hoặc giải trình cho sản phẩm: "
                + "; ".join(f"“{p}”" for p in missing)
                + ".",
                products=missing,
            )
        outstanding = self.session.scalars(
            select(Unit.code)
            .join(CoordinationRequest, CoordinationRequest.unit_id == Unit.id)
            .where(
                CoordinationRequest.instance_id == instance.id,
                CoordinationRequest.state == RequestState.REQUESTED,
            )
            .order_by(Unit.code)
        ).all()
        details: dict[str, Any] = {
            "round": instance.submission_round + 1,
            "evidence": [
                {"sha256": e.sha256, "size": e.size, "product": e.product} for e in evidence
            ],
            "explained": sorted(p for p in explained if p is not None and p not in covered),
        }
        if outstanding:
            units = ", ".join(outstanding)
            if policy.outstanding_contributions == "block":
                raise DomainError(
                    "contributions_outstanding",
                    f"Còn chờ đơn vị phối hợp: {units}. Chỉ nộp khi các đơn vị đã phản hồi.",
                    units=list(outstanding),
                )
            if not inputs.explanation:
                raise DomainError(
                    "explanation_required",
                    f"Còn chờ đơn vị phối hợp: {units}. Cần giải trình khi nộp trước.",
                    units=list(outstanding),
                )
            details["outstanding"] = list(outstanding)
            details["explanation"] = inputs.explanation
        return details

    def _apply(
        self, event: str, instance: TaskInstance, actor: User, inputs: _Inputs, now: Any
    ) -> None:
        if event == "schedule":
            instance.due_date = inputs.due
        elif event == "submit":
            instance.submission_round += 1
            instance.submitted_by_id = actor.id
            instance.submitted_at = now
            instance.reviewed_by_id = None
            instance.recommendation = None
            if inputs.explanation:
                self._remark(instance, actor, RemarkKind.EXPLANATION, inputs.explanation, now)
        elif event == "review":
            instance.reviewed_by_id = actor.id
            instance.recommendation = inputs.recommendation
            self._remark(instance, actor, RemarkKind.FINDING, inputs.findings, now)
        elif event in ("return_for_rework", "cancel"):
            self._remark(instance, actor, RemarkKind.DECISION, inputs.reason, now)
        elif event == "accept":
            instance.accepted_at = now
            self._remark(instance, actor, RemarkKind.DECISION, inputs.assessment, now)

    def _remark(
        self,
        instance: TaskInstance,
        author: User,
        kind: RemarkKind,
        body: str,
        now: Any,
        product: str | None = None,
    ) -> Remark:
        remark = Remark(
            instance_id=instance.id,
            author_id=author.id,
            kind=kind.value,
            product=product,
            body=body,
            created_at=now,
        )
        self.session.add(remark)
        return remark

    # --- notifications (outbox) -------------------------------------------------------------

    def _unit_people(self, unit_id: int) -> list[User]:
        return list(
            self.session.scalars(select(User).where(User.unit_id == unit_id, User.active.is_(True)))
        )

    def _role_people(self, org_id: int, role: Role) -> list[User]:
        return list(
            self.session.scalars(
                select(User)
                .join(UserRole, UserRole.user_id == User.id)
                .where(
                    User.organization_id == org_id,
                    User.active.is_(True),
                    UserRole.role == role.value,
                )
            )
        )

    def _notify_transition(
        self, event: str, instance: TaskInstance, actor: User, inputs: _Inputs, work: Work
    ) -> None:
        task = instance.plan_task
        name = f"Nhiệm vụ {task.number} ({instance.unit.code}, {instance.period_label})"
        org_id = instance.unit.organization_id
        recipients: list[User]
        if event == "submit":
            recipients = self._role_people(org_id, Role.REVIEWER)
            message = f"{name} đã được nộp, chờ thẩm định."
        elif event == "review":
            recipients = self._role_people(org_id, decider_role(work))
            message = f"{name} đã được thẩm định, chờ quyết định nghiệm thu."
        elif event == "return_for_rework":
            recipients = self._unit_people(instance.unit_id)
            message = f"{name} bị trả lại để hoàn thiện. Lý do: {inputs.reason}"
        elif event == "accept":
            recipients = self._unit_people(instance.unit_id)
            message = f"{name} đã được nghiệm thu."
        elif event == "schedule":
            recipients = self._unit_people(instance.unit_id)
            message = f"{name} đã có thời hạn: {instance.due_date:%d/%m/%Y}."
        elif event == "cancel":
            recipients = self._unit_people(instance.unit_id)
            message = f"{name} đã bị hủy. Lý do: {inputs.reason}"
        else:
            return
        self.notify(recipients, f"task.{event}", instance.id, message, exclude=actor.id)

    def notify(
        self,
        recipients: list[User],
        event: str,
        instance_id: int | None,
        message: str,
        *,
        exclude: int | None = None,
    ) -> None:
        now = self.clock.now()
        seen: set[int] = set()
        for user in recipients:
            if user.id == exclude or user.id in seen:
                continue
            seen.add(user.id)
            self.session.add(
                Notification(
                    recipient_id=user.id,
                    event=event,
                    instance_id=instance_id,
                    message=message,
                    payload={},
                    created_at=now,
                )
            )

    # --- evidence and explanations ----------------------------------------------------------

    def _editable(self, instance: TaskInstance, actor: User, action: str) -> Person:
        person = person_of(actor)
        refused = refusal(action, person, self.work(instance), self.policy(instance))
        if refused is not None:
            raise refused
        if instance.state != TaskState.IN_PROGRESS:
            raise DomainError(
                "invalid_state",
                "Chỉ cập nhật tài liệu khi nhiệm vụ đang thực hiện (trạng thái hiện tại: "
                f"“{_state_label(instance.state)}”).",
            )
        return person

    @staticmethod
    def _product(task: PlanTask, product: str) -> str:
        wanted = _text(product)
        names = [p["name"] for p in task.products]
        if wanted not in names:
            raise DomainError(
                "unknown_product",
                f"Nhiệm vụ {task.number} không có sản phẩm “{wanted}”. Các sản phẩm: "
                + "; ".join(names)
                + ".",
            )
        return wanted

    def add_evidence(
        self,
        instance_id: int,
        actor: User,
        *,
        data: bytes,
        filename: str,
        product: str,
        expected_version: int | None = None,
    ) -> Evidence:
        if self.store is None:
            raise RuntimeError("the engine was built without an evidence store")
        instance = self.load(instance_id, lock=True)
        self._check_version(instance, expected_version)
        person = self._editable(instance, actor, "add_evidence")
        product_name = self._product(instance.plan_task, product)
        if not data:
            raise DomainError("empty_file", "Tệp rỗng, không có nội dung.")
        kind, media_type = sniff(data)
        blob = self.store.store(data)
        now = self.clock.now()
        evidence = Evidence(
            instance_id=instance.id,
            product=product_name,
            sha256=blob.sha256,
            size=blob.size,
            media_type=media_type,
            filename=_display_name(filename, kind),
            uploader_id=actor.id,
            created_at=now,
        )
        self.session.add(evidence)
        self._record_evidence_change(
            instance,
            actor,
            person,
            "evidence.added",
            now,
            lambda: {
                "evidence_id": evidence.id,
                "sha256": blob.sha256,
                "size": blob.size,
                "product": product_name,
                "media_type": media_type,
                "filename": evidence.filename,
            },
        )
        return evidence

    def _record_evidence_change(
        self,
        instance: TaskInstance,
        actor: User,
        person: Person,
        action: str,
        now: datetime,
        details: Callable[[], dict[str, Any]],
    ) -> None:
        """Move the instance's version (a submission covers what its submitter saw), flush,
        and append the entry; `details` is read after the flush, when new rows have ids."""
        _touch(instance, now)
        self._flush()
        self.trail.record(
            self.session,
            self._org(instance),
            now=now,
            actor=Actor(actor.username, person.unit, "member"),
            action=action,
            object_type="task_instance",
            object_id=instance.id,
            details=details(),
        )

    def withdraw_evidence(self, evidence_id: int, actor: User) -> Evidence:
        evidence = self.session.get(Evidence, evidence_id)
        if evidence is None or evidence.withdrawn_at is not None:
            raise DomainError("not_found", f"Không tìm thấy tài liệu số {evidence_id}.")
        instance = self.load(evidence.instance_id, lock=True)
        person = self._editable(instance, actor, "withdraw_evidence")
        if evidence.uploader_id != actor.id:
            raise DomainError(
                "not_permitted", "Chỉ người đã tải tài liệu lên được rút tài liệu đó."
            )
        now = self.clock.now()
        evidence.withdrawn_at = now
        self._record_evidence_change(
            instance,
            actor,
            person,
            "evidence.withdrawn",
            now,
            lambda: {
                "evidence_id": evidence.id,
                "sha256": evidence.sha256,
                "size": evidence.size,
                "product": evidence.product,
            },
        )
        return evidence

    def explain_missing(self, instance_id: int, actor: User, *, product: str, text: str) -> Remark:
        """A written explanation (giải trình) for a product that has no evidence."""
        instance = self.load(instance_id, lock=True)
        person = self._editable(instance, actor, "explain")
        product_name = self._product(instance.plan_task, product)
        body = _text(text)
        if not body:
            raise DomainError("explanation_required", "Cần nhập nội dung giải trình.")
        now = self.clock.now()
        remark = self._remark(instance, actor, RemarkKind.EXPLANATION, body, now, product_name)
        self._record_evidence_change(
            instance,
            actor,
            person,
            "evidence.explained",
            now,
            lambda: {"product": product_name, "explanation": body},
        )
        return remark

    # --- coordinating units -----------------------------------------------------------------

    def coordinator_codes(self, instance: TaskInstance) -> tuple[str, ...]:
        """The units this instance's lead may ask (the definition's coordinators, groups
        resolved, the lead left out)."""
        return _catalog().expand_coordinators(instance.plan_task.coordinators, instance.unit.code)

    def request_contribution(
        self,
        instance_id: int,
        actor: User,
        *,
        unit_code: str,
        due: date | None = None,
        message: str = "",
    ) -> CoordinationRequest:
        instance = self.load(instance_id, lock=True)
        person = person_of(actor)
        refused = refusal(
            "request_contribution", person, self.work(instance), self.policy(instance)
        )
        if refused is not None:
            raise refused
        if instance.state in (TaskState.ACCEPTED, TaskState.CANCELLED):
            raise DomainError(
                "invalid_state",
                f"Nhiệm vụ đã “{_state_label(instance.state)}”, không đề nghị phối hợp được nữa.",
            )
        code = unit_code.strip().upper()
        if code not in self.coordinator_codes(instance):
            raise DomainError(
                "not_a_coordinator",
                f"Đơn vị “{code}” không phải đơn vị phối hợp của nhiệm vụ "
                f"{instance.plan_task.number}. Có thể đề nghị: "
                + ", ".join(self.coordinator_codes(instance))
                + ".",
            )
        unit = self.session.scalars(
            select(Unit).where(
                Unit.organization_id == instance.unit.organization_id, Unit.code == code
            )
        ).one()
        existing = self.session.scalars(
            select(CoordinationRequest).where(
                CoordinationRequest.instance_id == instance.id,
                CoordinationRequest.unit_id == unit.id,
            )
        ).first()
        if existing is not None:
            raise DomainError(
                "already_requested", f"Đã đề nghị {code} phối hợp trong nhiệm vụ này."
            )
        now = self.clock.now()
        request = CoordinationRequest(
            instance_id=instance.id,
            unit_id=unit.id,
            state=RequestState.REQUESTED.value,
            due_date=due,
            message=_text(message),
            requested_by_id=actor.id,
            requested_at=now,
        )
        self.session.add(request)
        self._flush()
        self.trail.record(
            self.session,
            self._org(instance),
            now=now,
            actor=Actor(actor.username, person.unit, "member"),
            action="contribution.requested",
            object_type="coordination_request",
            object_id=request.id,
            after={
                "instance": instance.id,
                "unit": code,
                "state": request.state,
                "due": due.isoformat() if due else None,
            },
            details={"message": request.message} if request.message else None,
        )
        name = f"Nhiệm vụ {instance.plan_task.number} ({instance.unit.code})"
        due_text = f", hạn {due:%d/%m/%Y}" if due else ""
        self.notify(
            self._unit_people(unit.id),
            "contribution.requested",
            instance.id,
            f"{name} đề nghị {code} phối hợp{due_text}.",
            exclude=actor.id,
        )
        signals.send_after_commit(
            self.session,
            signals.contribution_requested,
            instance.id,
            event="request",
            actor=actor.username,
            state=request.state,
            request_id=request.id,
        )
        return request

    def respond_contribution(
        self,
        request_id: int,
        actor: User,
        *,
        provide: bool,
        note: str = "",
        reason: str = "",
        files: list[tuple[str, bytes]] | None = None,
    ) -> CoordinationRequest:
        """The asked unit provides (a note and/or files) or declines (with a reason)."""
        request = self.session.get(CoordinationRequest, request_id)
        if request is None:
            raise DomainError("not_found", f"Không tìm thấy đề nghị phối hợp số {request_id}.")
        instance = self.load(request.instance_id, lock=True)
        asked = self.session.get_one(Unit, request.unit_id)
        person = person_of(actor)
        refused = answer_refusal(person, asked.code, asked.organization_id)
        if refused is not None:
            raise refused
        if request.state != RequestState.REQUESTED:
            raise DomainError("already_answered", "Đề nghị phối hợp này đã được trả lời.")
        note_text, reason_text = _text(note), _text(reason)
        if provide and not note_text and not files:
            raise DomainError("contribution_empty", "Cần ghi nội dung hoặc gửi kèm tệp phối hợp.")
        if not provide and not reason_text:
            raise DomainError("reason_required", "Cần nêu lý do từ chối phối hợp.")
        blobs = [(name, *sniff(data), data) for name, data in (files or [])]
        if blobs and self.store is None:
            raise RuntimeError("the engine was built without an evidence store")
        now = self.clock.now()
        stored: list[dict[str, Any]] = []
        if provide:
            contribution = Contribution(
                request_id=request.id, author_id=actor.id, note=note_text, created_at=now
            )
            self.session.add(contribution)
            self._flush()
            for name, kind, media_type, data in blobs:
                assert self.store is not None
                blob = self.store.store(data)
                self.session.add(
                    Evidence(
                        instance_id=instance.id,
                        contribution_id=contribution.id,
                        product=f"Phối hợp của {asked.code}",
                        sha256=blob.sha256,
                        size=blob.size,
                        media_type=media_type,
                        filename=_display_name(name, kind),
                        uploader_id=actor.id,
                        created_at=now,
                    )
                )
                stored.append({"sha256": blob.sha256, "size": blob.size})
            request.state = RequestState.PROVIDED.value
        else:
            request.state = RequestState.DECLINED.value
            request.decline_reason = reason_text
        request.responded_by_id = actor.id
        request.responded_at = now
        _touch(instance, now)
        self._flush()
        details: dict[str, Any] = {"note": note_text} if provide else {"reason": reason_text}
        if stored:
            details["files"] = stored
        self.trail.record(
            self.session,
            self._org(instance),
            now=now,
            actor=Actor(actor.username, person.unit, "member"),
            action="contribution.provided" if provide else "contribution.declined",
            object_type="coordination_request",
            object_id=request.id,
            before={"state": RequestState.REQUESTED.value},
            after={"state": request.state},
            details=details,
        )
        verb = "đã gửi nội dung phối hợp" if provide else f"từ chối phối hợp: {reason_text}"
        self.notify(
            self._unit_people(instance.unit_id),
            f"contribution.{request.state}",
            instance.id,
            f"{asked.code} {verb} (nhiệm vụ {instance.plan_task.number}).",
            exclude=actor.id,
        )
        if provide:
            signals.send_after_commit(
                self.session,
                signals.contribution_provided,
                instance.id,
                event="provide",
                actor=actor.username,
                state=request.state,
                request_id=request.id,
            )
        return request

    # --- reassignment ---------------------------------------------------------------------

    def reassign(
        self,
        instance_id: int,
        actor: User,
        *,
        to_user: User | None = None,
        to_unit: str | None = None,
        reason: str = "",
        expected_version: int | None = None,
    ) -> TaskInstance:
        """Within the lead unit (its head names who does the work) or to another unit (VHXH's
        leadership or the ward leader, with a reason)."""
        instance = self.load(instance_id, lock=True)
        self._check_version(instance, expected_version)
        if instance.state in (TaskState.ACCEPTED, TaskState.CANCELLED):
            raise DomainError(
                "invalid_state",
                f"Nhiệm vụ đã “{_state_label(instance.state)}”, không phân công lại được.",
            )
        person, work = person_of(actor), self.work(instance)
        now = self.clock.now()
        before: dict[str, Any] = {
            "unit": instance.unit.code,
            "assignee": instance.assignee.username if instance.assignee else None,
        }
        reason_text = _text(reason)
        if to_unit is not None:
            refused = refusal("reassign_unit", person, work, self.policy(instance))
            if refused is not None:
                raise refused
            if not reason_text:
                raise DomainError("reason_required", "Cần nêu lý do giao nhiệm vụ cho đơn vị khác.")
            if instance.state not in (
                TaskState.AWAITING_SCHEDULE,
                TaskState.ASSIGNED,
                TaskState.IN_PROGRESS,
                TaskState.RETURNED,
            ):
                raise DomainError(
                    "invalid_state",
                    "Không giao lại cho đơn vị khác khi sản phẩm đang chờ thẩm "
                    "định hoặc quyết định.",
                )
            unit = self.session.scalars(
                select(Unit).where(
                    Unit.organization_id == instance.unit.organization_id,
                    Unit.code == to_unit.strip().upper(),
                    Unit.can_lead.is_(True),
                )
            ).one_or_none()
            if unit is None:
                raise DomainError("unknown_unit", f"Không có đơn vị chủ trì mã “{to_unit}”.")
            taken = self.session.scalars(
                select(TaskInstance.id).where(
                    TaskInstance.plan_task_id == instance.plan_task_id,
                    TaskInstance.unit_id == unit.id,
                    TaskInstance.period_label == instance.period_label,
                )
            ).first()
            if taken is not None:
                raise DomainError(
                    "duplicate_assignment",
                    f"{unit.code} đã có nhiệm vụ này cho kỳ {instance.period_label}.",
                )
            instance.unit_id = unit.id
            instance.unit = unit
            instance.assignee_id = None
        elif to_user is not None:
            refused = refusal("reassign_within_unit", person, work, self.policy(instance))
            if refused is not None:
                raise refused
            same_ward = to_user.organization_id == instance.unit.organization_id
            if not (same_ward and person_of(to_user).member_of(instance.unit.code)):
                raise DomainError(
                    "not_a_member", f"{to_user.username} không thuộc đơn vị {instance.unit.code}."
                )
            instance.assignee_id = to_user.id
        else:
            raise DomainError("target_required", "Cần chọn người hoặc đơn vị nhận nhiệm vụ.")
        _touch(instance, now)
        self._flush()
        self.trail.record(
            self.session,
            self._org(instance),
            now=now,
            actor=Actor(
                actor.username,
                person.unit,
                "head" if to_unit is None else _acting_role("schedule", person, work),
            ),
            action="task.reassigned",
            object_type="task_instance",
            object_id=instance.id,
            before=before,
            after={
                "unit": instance.unit.code,
                "assignee": to_user.username if to_user is not None else None,
            },
            details={"reason": reason_text} if reason_text else None,
        )
        self.notify(
            self._unit_people(instance.unit_id),
            "task.reassigned",
            instance.id,
            f"Nhiệm vụ {instance.plan_task.number} ({instance.period_label}) được giao "
            f"cho {instance.unit.code}.",
            exclude=actor.id,
        )
        return instance


@functools.cache
def _catalog() -> UnitCatalog:
    return load_units()


@dataclass(frozen=True)
class _Inputs:
    reason: str
    assessment: str
    findings: str
    recommendation: str
    due: date | None
    explanation: str


def _touch(instance: TaskInstance, now: datetime) -> None:
    """Mark the instance changed so that its version moves even when `now` equals the stored
    instant: every change makes an older view of the instance stale."""
    instance.updated_at = now
    flag_modified(instance, "updated_at")


def _acting_role(event: str, person: Person, work: Work) -> str:
    """The role in which the person acted, as the log records it."""
    if event in ("accept",) or (event == "return_for_rework" and work.state == "reviewed"):
        return decider_role(work).value
    if event in ("review", "return_for_rework"):
        return Role.REVIEWER.value
    if event == "cancel":
        return Role.WARD_LEADER.value
    if event == "schedule":
        return Role.WARD_LEADER.value if person.has(Role.WARD_LEADER) else Role.HEAD.value
    if event == "submit" and person.head_of(work.lead_unit):
        return Role.HEAD.value
    return Role.MEMBER.value


def _display_name(filename: str, kind: str) -> str:
    """A name to show and to offer on download; never used as a path."""
    base = unicodedata.normalize("NFC", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    base = "".join(ch for ch in base if ch.isprintable())[:200]
    return base or f"tai-lieu.{kind}"
