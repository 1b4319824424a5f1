"""The engine: the one entry point that changes a task instance.

`Engine.fire` loads the instance (locked on PostgreSQL), checks permission (workflow.
permissions, the one place), checks what the action needs, runs the lifecycle machine,
appends the audit entry and the outbox rows, and queues the signal for after commit. It never
commits: the caller's boundary commits the state, its entry and its notifications together,
or rolls all of them back (invariant 1). A refusal raises DomainError before anything
changes (invariant 5).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Any

from blinker import NamedSignal
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from workflow import signals
from workflow.clock import Clock
from workflow.errors import DomainError
from workflow.evidence import EvidenceStore, sniff
from workflow.lifecycle import EVENT_LABELS, EVENTS, machine_for, target_of, transitions_from
from workflow.models import (
    CoordinationRequest,
    Evidence,
    Notification,
    Organization,
    PlanTask,
    Remark,
    TaskInstance,
    Unit,
    User,
)
from workflow.permissions import Person, Policy, Work, decider_role, refusal
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
        stmt = select(TaskInstance).where(TaskInstance.id == instance_id)
        if lock:
            # PostgreSQL serialises writers on the row; SQLite already holds the write lock
            # (BEGIN IMMEDIATE) and ignores FOR UPDATE.
            stmt = stmt.with_for_update()
        instance = self.session.scalars(stmt).one_or_none()
        if instance is None:
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
        instance = self.load(instance_id, lock=True)
        self._check_version(instance, expected_version)
        before = instance.state
        if target_of(before, event) is None:
            raise DomainError(
                "invalid_transition",
                f"Không thể “{EVENT_LABELS[event]}” khi nhiệm vụ đang ở trạng thái "
                f"“{_state_label(before)}”.",
            )
        person, work, policy = person_of(actor), self.work(instance), self.policy(instance)
        refused = refusal(event, person, work, policy)
        if refused is not None:
            raise refused
        inputs = _Inputs(
            reason=_text(reason),
            assessment=_text(assessment),
            findings=_text(findings),
            recommendation=_text(recommendation),
            due=due,
            explanation=_text(explanation),
        )
        details = self._requirements(event, instance, policy, inputs)

        # Everything above only read; from here on the instance changes.
        now = self.clock.now()
        machine_for(instance).send(event)
        self._apply(event, instance, actor, inputs, now)
        instance.updated_at = now
        self._flush()
        role = _acting_role(event, person, work)
        entry = self.trail.record(
            self.session,
            self._org(instance),
            now=now,
            actor=Actor(actor.username, person.unit, role),
            action=f"task.{event}",
            object_type="task_instance",
            object_id=instance.id,
            before={"state": before, "version": instance.version - 1},
            after={"state": instance.state, "version": instance.version},
            details=details or None,
        )
        self._notify_transition(event, instance, actor, inputs)
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
        return [
            u
            for u in self.session.scalars(
                select(User).where(User.organization_id == org_id, User.active.is_(True))
            )
            if role.value in u.role_names
        ]

    def _notify_transition(
        self, event: str, instance: TaskInstance, actor: User, inputs: _Inputs
    ) -> None:
        task = instance.plan_task
        name = f"Nhiệm vụ {task.number} ({instance.unit.code}, {instance.period_label})"
        org_id = instance.unit.organization_id
        recipients: list[User]
        if event == "submit":
            recipients = self._role_people(org_id, Role.REVIEWER)
            message = f"{name} đã được nộp, chờ thẩm định."
        elif event == "review":
            recipients = self._role_people(org_id, decider_role(self.work(instance)))
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
        instance.updated_at = now  # bumps the version: a submission covers what was seen
        self._flush()
        self.trail.record(
            self.session,
            self._org(instance),
            now=now,
            actor=Actor(actor.username, person.unit, "member"),
            action="evidence.added",
            object_type="task_instance",
            object_id=instance.id,
            details={
                "evidence_id": evidence.id,
                "sha256": blob.sha256,
                "size": blob.size,
                "product": product_name,
                "media_type": media_type,
                "filename": evidence.filename,
            },
        )
        return evidence

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
        instance.updated_at = now
        self._flush()
        self.trail.record(
            self.session,
            self._org(instance),
            now=now,
            actor=Actor(actor.username, person.unit, "member"),
            action="evidence.withdrawn",
            object_type="task_instance",
            object_id=instance.id,
            details={
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
        instance.updated_at = now
        self._flush()
        self.trail.record(
            self.session,
            self._org(instance),
            now=now,
            actor=Actor(actor.username, person.unit, "member"),
            action="evidence.explained",
            object_type="task_instance",
            object_id=instance.id,
            details={"product": product_name, "explanation": body},
        )
        return remark


@dataclass(frozen=True)
class _Inputs:
    reason: str
    assessment: str
    findings: str
    recommendation: str
    due: date | None
    explanation: str


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
