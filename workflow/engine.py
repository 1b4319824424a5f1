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
import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from blinker import NamedSignal
from sqlalchemy import Connection, inspect, select
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, SessionTransaction, joinedload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from audit.ledger import AppendedEntry, PendingEntry
from definitions.units import UnitCatalog, load_units
from workflow import signals
from workflow.clock import Clock
from workflow.db import hold_ward, lock_row
from workflow.errors import DomainError
from workflow.evidence import EvidenceStore, display_name, sniff
from workflow.lifecycle import EVENT_LABELS, EVENTS, target_of, transitions_from
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
    entry: AppendedEntry | PendingEntry = field(repr=False, compare=False)

    @property
    def audit_seq(self) -> int:
        """The audit entry's seq: known once the transaction has committed (asked for
        before, the entry is sent at once, in the transaction)."""
        return self.entry.seq

    def as_dict(self) -> dict[str, Any]:
        """The outcome as the CLI and the API report it."""
        return {
            "instance_id": self.instance_id,
            "event": self.event,
            "before": self.before,
            "after": self.after,
            "version": self.version,
            "audit_seq": self.audit_seq,
        }


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
        # one statement; inner joins (every instance has them).
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
            # (BEGIN IMMEDIATE). The row is locked by a statement of its own, before the
            # joined read: a SELECT ... FOR NO KEY UPDATE that waits for another writer gets the
            # instance as committed but re-checks its joins against the other tables as its
            # snapshot saw them before the wait, so an instance handed to another unit
            # meanwhile would not be found at all. The read after the lock sees what the
            # other writer committed (READ COMMITTED: every statement its own snapshot).
            if not lock_row(self.session, TaskInstance.id, instance_id):
                raise DomainError("not_found", f"Không tìm thấy nhiệm vụ số {instance_id}.")
            # populate_existing: a row already in the session is refreshed from this read.
            stmt = stmt.execution_options(populate_existing=True)
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
        # Who gave something to the submission: a file, or a written explanation (giải trình)
        # for a missing product.
        contributors = set(
            self.session.scalars(
                select(Evidence.uploader_id)
                .where(Evidence.instance_id == instance.id, Evidence.withdrawn_at.is_(None))
                .distinct()
            )
        )
        contributors |= set(
            self.session.scalars(
                select(Remark.author_id)
                .where(
                    Remark.instance_id == instance.id,
                    Remark.kind == RemarkKind.EXPLANATION.value,
                )
                .distinct()
            )
        )
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
        """Apply a lifecycle event in the caller's transaction (never commits).

        The hot path runs on the session's connection with a few plain statements instead of
        the ORM's unit of work: one SELECT reads the instance (locked on PostgreSQL) with
        everything the rules and the requirements read; one write moves the state with the
        version check in its WHERE clause and adds the remark and the outbox rows (on
        PostgreSQL a single statement); the ledger appends the audit entry, on PostgreSQL
        with the caller's COMMIT (`Ledger.append_at_commit`: the ward's log stays locked only
        while the server runs the two; if that append fails, the commit fails and nothing is
        committed). A copy of the instance in the session's identity map is brought up to date
        afterwards.
        """
        if event not in EVENTS:
            raise DomainError("unknown_event", f"Không có thao tác “{event}”.")
        person = person_of(actor)
        # Pending ORM changes of the caller first, so that the plain reads below see them.
        self.session.flush()
        conn = self.session.connection()
        row = _read_instance(conn, instance_id, submission=event == "submit")
        self._check_version(row, expected_version)
        work = row.work()
        target = target_of(row.state, event)
        if target is None:
            raise DomainError(
                "invalid_transition",
                f"Không thể “{EVENT_LABELS[event]}” khi nhiệm vụ đang ở trạng thái "
                f"“{_state_label(row.state)}”.",
            )
        refused = refusal(event, person, work, row.policy())
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
        details = self._requirements(event, row, inputs)

        # Everything above only read; from here on the instance changes.
        now = self.clock.now()
        change = _change(event, target, row, actor, inputs, now)
        self._write(conn, change)
        entry = self.trail.record(
            conn,  # the session's connection, already in hand
            _ward(row),
            now=now,
            actor=Actor(actor.username, person.unit, _acting_role(event, person, work)),
            action=f"task.{event}",
            object_type="task_instance",
            object_id=row.id,
            before={"state": row.state, "version": row.version},
            after={"state": target, "version": change.version},
            details=details or None,
            at_commit=True,  # the caller's boundary commits next (see Outcome.audit_seq)
        )
        self._refresh_mapped(row, change)
        signal = _SIGNALS.get(event)
        if signal is not None:
            signals.send_after_commit(
                self.session,
                signal,
                row.id,
                event=event,
                actor=actor.username,
                state=target,
            )
        return Outcome(row.id, event, row.state, target, change.version, entry)

    def _write(self, conn: Connection, change: _Change) -> None:
        """The state with its version check, the remark and the outbox rows."""
        if not _write_change(conn, change):
            raise DomainError(
                "stale_version",
                "Nhiệm vụ vừa được người khác cập nhật. Vui lòng tải lại trang rồi thử lại.",
            )

    def _refresh_mapped(self, row: _Row, change: _Change) -> None:
        """Bring the session's copy of the instance, if it holds one, to what is stored now
        (what a populate_existing load and a flush would have left), and have it expired if
        the savepoint or transaction of this change rolls back."""
        identity = _INSTANCE_MAPPER.identity_key_from_primary_key((row.id,))
        mapped = self.session.identity_map.get(identity)
        if mapped is None:
            return
        stored = row.mapped_values()
        stored.update(change.columns)
        stored["version"] = change.version
        for key, value in stored.items():
            set_committed_value(mapped, key, value)
        _remember_written(self.session, mapped)

    def _check_version(self, instance: TaskInstance | _Row, expected: int | None) -> None:
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

    def _requirements(self, event: str, row: _Row, inputs: _Inputs) -> dict[str, Any]:
        """Check what the event needs besides permission; return its audit details."""
        if event == "schedule":
            if inputs.due is None:
                raise DomainError("due_required", "Cần nhập thời hạn hoàn thành (ngày/tháng/năm).")
            period_start = row.period_start()
            if inputs.due < period_start:
                raise DomainError(
                    "invalid_due",
                    f"Thời hạn không được trước ngày bắt đầu {period_start:%d/%m/%Y}.",
                )
            return {"due": inputs.due.isoformat()}
        if event == "submit":
            return self._submission_details(row, inputs)
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

    def _submission_details(self, row: _Row, inputs: _Inputs) -> dict[str, Any]:
        evidence = row.evidence
        explained, outstanding = row.explained, row.outstanding
        covered = {e[1] for e in evidence}
        products = [p["name"] for p in row.products()]
        missing = [p for p in products if p not in covered and p not in explained]
        if missing:
            raise DomainError(
                "evidence_missing",
                "Chưa có tài liệu kiểm chứng hoặc giải trình cho sản phẩm: "
                + "; ".join(f"“{p}”" for p in missing)
                + ".",
                products=missing,
            )
        details: dict[str, Any] = {
            "round": row.submission_round + 1,
            "evidence": [
                {"sha256": sha256, "size": size, "product": product}
                for _uploader, product, sha256, size in evidence
            ],
            "explained": sorted(p for p in explained if p is not None and p not in covered),
        }
        if outstanding:
            units = ", ".join(outstanding)
            if row.policy().outstanding_contributions == "block":
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
            filename=display_name(filename, kind),
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
        instance.touch(now)
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
        if evidence is not None:
            instance = self.load(evidence.instance_id, lock=True)
            # Read again under the instance's lock: a withdrawal that waited for another one
            # of the same file must see it withdrawn, not the copy read before the wait.
            self.session.refresh(evidence)
        if evidence is None or evidence.withdrawn_at is not None:
            raise DomainError("not_found", f"Không tìm thấy tài liệu số {evidence_id}.")
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
        if instance.state == TaskState.IN_PROGRESS:
            instance.touch(now)  # what its submission must cover has changed
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
        if request is not None:
            instance = self.load(request.instance_id, lock=True)
            # Read again under the instance's lock: an answer that waited for another answer
            # must see the request answered, not the copy read before the wait.
            self.session.refresh(request)
        if request is None:
            raise DomainError("not_found", f"Không tìm thấy đề nghị phối hợp số {request_id}.")
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
                        filename=display_name(name, kind),
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
        instance.touch(now)
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
            # Two instances of one task handed to the same unit at once (each holding only its
            # own row): the second must find the first's.
            hold_ward(self.session, unit.organization_id)
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
        instance.touch(now)
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


# The per-transition values below are plain (not frozen) dataclasses: a frozen one's __init__
# costs several times as much, and nothing keeps or hashes them.
@dataclass(slots=True)
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


# --- the hot path of `fire`: plain statements on the session's connection ------------------
#
# The statements go straight to the driver's cursor, as the ledger's append does: a few per
# transition, with no expression building, compilation or ORM bookkeeping in between. Values
# are written as SQLAlchemy would store them (SQLite: UTC instants as text, dates as ISO text,
# JSON as text; PostgreSQL: the driver adapts them).

_INSTANCE_COLUMNS = (
    "id",
    "plan_task_id",
    "unit_id",
    "period_label",
    "period_start",
    "due_date",
    "state",
    "assignee_id",
    "submission_round",
    "submitted_by_id",
    "reviewed_by_id",
    "recommendation",
    "submitted_at",
    "accepted_at",
    "version",
    "created_at",
    "updated_at",
)
_DATE_COLUMNS = frozenset({"period_start", "due_date"})
_INSTANT_COLUMNS = frozenset({"submitted_at", "accepted_at", "created_at", "updated_at"})
_N = len(_INSTANCE_COLUMNS)
_VERSION = _INSTANCE_COLUMNS.index("version")

# The instance with what the rules and the requirements read: its unit and ward, its task's
# products and number, its plan's policy, and its current evidence (one row per file, in no
# order: sorted by id here; the outer join gives one row when there is none).
_READ_SQL = (
    "SELECT "
    + ", ".join(f"ti.{c}" for c in _INSTANCE_COLUMNS)
    + ", u.code, u.organization_id, o.audit_origin, pt.number, {json}, "
    "e.id, e.uploader_id, e.product, e.sha256, e.size, {explainers}{submission}{seen} "
    "FROM {instance} ti "
    "JOIN unit u ON u.id = ti.unit_id "
    "JOIN organization o ON o.id = u.organization_id "
    "JOIN plan_task pt ON pt.id = ti.plan_task_id "
    "JOIN plan p ON p.id = pt.plan_id "
    "LEFT JOIN evidence e ON e.instance_id = ti.id AND e.withdrawn_at IS NULL"
)
# PostgreSQL locks the instance's row in a subquery of its own, so that the joins above it carry
# no row marks; FOR NO KEY UPDATE: the instance's writers queue, while rows that refer to it (a
# notification, say) can still be inserted. A writer that waited there for another transaction's
# lock gets the instance's row as that one committed it, but everything else (the evidence,
# the explanations, the requests) as the statement's snapshot, taken before, saw it: the
# last column, the instance's version in that snapshot, tells, and the read is then made
# again (the row stays locked, so the second read sees it all as committed). SQLite's
# writers already hold the write lock (BEGIN IMMEDIATE) when they read.
_INSTANCE = {
    True: "(SELECT "  # noqa: S608 - names from _INSTANCE_COLUMNS
    + ", ".join(_INSTANCE_COLUMNS)
    + " FROM task_instance WHERE id = {p} FOR NO KEY UPDATE)",
    False: "task_instance",
}
_SEEN = {True: ", (SELECT s.version FROM task_instance s WHERE s.id = ti.id)", False: ""}
# A submission also reads the products explained in writing and the coordinating units
# asked and not yet answered, as two more columns of the same SELECT.
_SUBMISSION_COLUMNS = {
    True: (
        ", ARRAY(SELECT x.product FROM remark x WHERE x.instance_id = ti.id "
        "AND x.kind = 'explanation'), "
        "ARRAY(SELECT cu.code FROM coordination_request c JOIN unit cu ON cu.id = c.unit_id "
        "WHERE c.instance_id = ti.id AND c.state = 'requested')"
    ),
    False: (
        ", (SELECT json_group_array(x.product) FROM remark x WHERE x.instance_id = ti.id "
        "AND x.kind = 'explanation'), "
        "(SELECT json_group_array(cu.code) FROM coordination_request c "
        "JOIN unit cu ON cu.id = c.unit_id "
        "WHERE c.instance_id = ti.id AND c.state = 'requested')"
    ),
}
_PG_REMARK_CTE = (
    "remark_row AS (INSERT INTO remark (instance_id, author_id, kind, product, body, created_at) "
    "SELECT moved.id, {p}, {p}, NULL, {p}, {p} FROM moved)"
)
_PG_OUTBOX_CTE = (
    "outbox AS (INSERT INTO notification "
    "(recipient_id, event, instance_id, message, payload, created_at) "
    "SELECT u.id, {p}, moved.id, {p}, CAST('{}' AS JSON), {p} "
)
_PG_FROM_MOVED = "FROM moved CROSS JOIN "
_SQLITE_REMARK_SQL = (
    "INSERT INTO remark (instance_id, author_id, kind, product, body, created_at) "
    "VALUES (?, ?, ?, NULL, ?, ?)"
)
_SQLITE_OUTBOX_SQL = (
    "INSERT INTO notification (recipient_id, event, instance_id, message, payload, created_at) "
    "SELECT u.id, ?, ?, ?, '{}', ? "
)
# Recipients of the outbox rows, chosen in the statement that writes them: the active people
# of a unit, or of a role in the ward; never the actor.
_RECIPIENTS = {
    "unit": "FROM app_user u WHERE u.unit_id = {p} AND u.active = {p} AND u.id <> {p}",
    "role": (
        "FROM app_user u JOIN user_role r ON r.user_id = u.id "
        "WHERE u.organization_id = {p} AND u.active = {p} AND r.role = {p} AND u.id <> {p}"
    ),
}


def _cursor(conn: Connection) -> Any:
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


def _is_pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


@functools.cache
def _sql(template: str, pg: bool) -> str:
    return template.replace("{p}", "%s" if pg else "?")


def _to_db(value: Any, pg: bool) -> Any:
    if pg:
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware instant")
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _instant(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _day(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _policy(stored: dict[str, Any] | None) -> Policy:
    stored = stored or {}
    return Policy(
        submit_requires_head=bool(stored.get("submit_requires_head", True)),
        outstanding_contributions=str(stored.get("outstanding_contributions", "explain")),
    )


@functools.lru_cache(maxsize=64)
def _stored_policy(text: str) -> Policy:
    """A plan's policy from its JSON text (a frozen value: cached by the text)."""
    return _policy(json.loads(text))


@dataclass(slots=True)
class _Row:
    """One instance as `fire` read it, with what the rules read."""

    values: tuple[Any, ...]  # the task_instance columns, in _INSTANCE_COLUMNS order, raw
    unit_code: str
    organization_id: int
    audit_origin: str
    task_number: int
    raw_products: Any
    raw_policy: Any
    evidence: list[tuple[int, str, str, int]]  # (uploader, product, sha256, size) by id
    explained: frozenset[Any]  # products explained in writing (read for a submission)
    outstanding: tuple[str, ...]  # units asked and not yet answered (for a submission)
    explainers: frozenset[int] = frozenset()  # authors of written explanations

    @property
    def id(self) -> int:
        return int(self.values[0])

    @property
    def unit_id(self) -> int:
        return int(self.values[2])

    @property
    def period_label(self) -> str:
        return str(self.values[3])

    @property
    def state(self) -> str:
        return str(self.values[6])

    @property
    def submission_round(self) -> int:
        return int(self.values[8])

    @property
    def version(self) -> int:
        return int(self.values[_VERSION])

    def period_start(self) -> date:
        day = _day(self.values[4])
        assert day is not None
        return day

    def products(self) -> list[dict[str, Any]]:
        products: list[dict[str, Any]] = _json(self.raw_products)
        return products

    def policy(self) -> Policy:
        if isinstance(self.raw_policy, str):  # the stored JSON text
            return _stored_policy(self.raw_policy)
        return _policy(self.raw_policy)

    def work(self) -> Work:
        return Work(
            lead_unit=self.unit_code,
            state=self.state,
            organization_id=self.organization_id,
            submitted_by=self.values[9],
            reviewed_by=self.values[10],
            contributors=frozenset(e[0] for e in self.evidence) | self.explainers,
        )

    def mapped_values(self) -> dict[str, Any]:
        """The columns as the ORM holds them (typed, instants in UTC)."""
        out: dict[str, Any] = {}
        for name, value in zip(_INSTANCE_COLUMNS, self.values, strict=True):
            if name in _DATE_COLUMNS:
                value = _day(value)
            elif name in _INSTANT_COLUMNS:
                value = _instant(value)
            out[name] = value
        return out


# Who wrote an explanation (giải trình): they gave to the submission, as uploaders did.
_EXPLAINERS = {
    # Not DISTINCT: a frozenset of them is kept, and SQLite would sort them in a temporary
    # B-tree on every read.
    True: "ARRAY(SELECT x.author_id FROM remark x WHERE x.instance_id = ti.id "
    "AND x.kind = 'explanation')",
    False: "(SELECT json_group_array(x.author_id) FROM remark x "
    "WHERE x.instance_id = ti.id AND x.kind = 'explanation')",
}


# The task's products and the plan's policy as JSON text on both databases: psycopg would
# parse them on every row (one row per evidence file); they are parsed once, the policy from a
# cache keyed by its text.
_JSON_COLUMNS = {True: "pt.products::text, p.policy::text", False: "pt.products, p.policy"}


@functools.cache
def _read_sql(pg: bool, submission: bool) -> str:
    sql = _READ_SQL.replace("{submission}", _SUBMISSION_COLUMNS[pg] if submission else "")
    sql = sql.replace("{json}", _JSON_COLUMNS[pg]).replace("{instance}", _INSTANCE[pg])
    sql = sql.replace("{seen}", _SEEN[pg])
    sql = sql.replace("{explainers}", _EXPLAINERS[pg])
    return _sql(sql if pg else sql + " WHERE ti.id = {p}", pg)


def _read_instance(conn: Connection, instance_id: int, *, submission: bool = False) -> _Row:
    pg = _is_pg(conn)
    sql = _read_sql(pg, submission)
    cur = _cursor(conn)
    try:
        cur.execute(sql, (instance_id,))
        rows = cur.fetchall()
        if pg and rows and rows[0][-1] != rows[0][_VERSION]:
            # Locked after waiting for a change committed since this statement's snapshot:
            # read again, now that the lock is held (see _INSTANCE).
            cur.execute(sql, (instance_id,))
            rows = cur.fetchall()
    finally:
        cur.close()
    if not rows:
        raise DomainError("not_found", f"Không tìm thấy nhiệm vụ số {instance_id}.")
    first = rows[0]
    code, org_id, origin, number, products, policy = first[_N : _N + 6]
    files = sorted((r for r in rows if r[_N + 6] is not None), key=lambda r: int(r[_N + 6]))
    evidence = [(int(r[_N + 7]), str(r[_N + 8]), str(r[_N + 9]), int(r[_N + 10])) for r in files]
    explainers = frozenset(int(a) for a in _json(first[_N + 11]) or ())
    explained: frozenset[Any] = frozenset()
    outstanding: tuple[str, ...] = ()
    if submission:
        explained = frozenset(_json(first[_N + 12]) or ())
        outstanding = tuple(sorted(str(c) for c in _json(first[_N + 13]) or ()))
    return _Row(
        tuple(first[:_N]),
        code,
        int(org_id),
        origin,
        int(number),
        products,
        policy,
        evidence,
        explained,
        outstanding,
        explainers,
    )


@dataclass(slots=True)
class _Change:
    """What one transition writes."""

    instance_id: int
    expected_version: int
    version: int
    columns: dict[str, Any]  # new column values (typed), state and updated_at included
    author_id: int
    now: datetime
    remark: tuple[str, str] | None  # (kind, body)
    outbox: tuple[str, str, str, tuple[Any, ...]] | None  # (event, message, who, key)


def _change(
    event: str, target: str, row: _Row, actor: User, inputs: _Inputs, now: datetime
) -> _Change:
    """The lifecycle's move to `target` and what the event records with it (the remark and
    the outbox rows); `now` moves updated_at, so every change makes an older view stale."""
    columns: dict[str, Any] = {"state": target, "updated_at": now}
    remark: tuple[str, str] | None = None
    if event == "schedule":
        columns["due_date"] = inputs.due
    elif event == "submit":
        columns["submission_round"] = row.submission_round + 1
        columns["submitted_by_id"] = actor.id
        columns["submitted_at"] = now
        columns["reviewed_by_id"] = None
        columns["recommendation"] = None
        if inputs.explanation:
            remark = (RemarkKind.EXPLANATION.value, inputs.explanation)
    elif event == "review":
        columns["reviewed_by_id"] = actor.id
        columns["recommendation"] = inputs.recommendation
        remark = (RemarkKind.FINDING.value, inputs.findings)
    elif event in ("return_for_rework", "cancel"):
        remark = (RemarkKind.DECISION.value, inputs.reason)
    elif event == "accept":
        columns["accepted_at"] = now
        remark = (RemarkKind.DECISION.value, inputs.assessment)

    name = f"Nhiệm vụ {row.task_number} ({row.unit_code}, {row.period_label})"
    unit: tuple[Any, ...] = (row.unit_id,)
    outbox: tuple[str, str, str, tuple[Any, ...]] | None = None
    if event == "submit":
        who: tuple[Any, ...] = (row.organization_id, Role.REVIEWER.value)
        outbox = ("role", f"{name} đã được nộp, chờ thẩm định.", "role", who)
    elif event == "review":
        who = (row.organization_id, decider_role(row.work()).value)
        outbox = ("role", f"{name} đã được thẩm định, chờ quyết định nghiệm thu.", "role", who)
    elif event == "return_for_rework":
        message = f"{name} bị trả lại để hoàn thiện. Lý do: {inputs.reason}"
        outbox = ("unit", message, "unit", unit)
    elif event == "accept":
        outbox = ("unit", f"{name} đã được nghiệm thu.", "unit", unit)
    elif event == "schedule":
        outbox = ("unit", f"{name} đã có thời hạn: {inputs.due:%d/%m/%Y}.", "unit", unit)
    elif event == "cancel":
        outbox = ("unit", f"{name} đã bị hủy. Lý do: {inputs.reason}", "unit", unit)
    if outbox is not None:
        outbox = (f"task.{event}", outbox[1], outbox[2], outbox[3])
    return _Change(
        instance_id=row.id,
        expected_version=row.version,
        version=row.version + 1,
        columns=columns,
        author_id=actor.id,
        now=now,
        remark=remark,
        outbox=outbox,
    )


@functools.cache
def _write_sql(pg: bool, columns: tuple[str, ...], remark: bool, outbox: str | None) -> str:
    # Built only from this module's constants: column names checked against the table's.
    assert set(columns) <= set(_INSTANCE_COLUMNS), columns
    sets = ", ".join(f"{c} = {{p}}" for c in columns)
    update = "UPDATE task_instance SET " + sets  # noqa: S608 - names from _INSTANCE_COLUMNS
    update += ", version = {p} WHERE id = {p} AND version = {p}"
    if not pg:
        return _sql(update, pg)
    # One statement: the inserts read the UPDATE's row, so they add nothing when the version
    # check fails; the statement returns how many rows the UPDATE moved.
    parts = ["moved AS (" + update + " RETURNING id)"]
    if remark:
        parts.append(_PG_REMARK_CTE)
    if outbox is not None:
        parts.append(_PG_OUTBOX_CTE + _RECIPIENTS[outbox].replace("FROM ", _PG_FROM_MOVED, 1) + ")")
    statement = "WITH " + ", ".join(parts) + " SELECT count(*) FROM moved"  # noqa: S608
    return _sql(statement, pg)


def _write_change(conn: Connection, change: _Change) -> bool:
    """Write the change; False when the version check found the row moved (nothing written)."""
    pg = _is_pg(conn)
    names = tuple(change.columns)
    now = _to_db(change.now, pg)
    update_params = [
        *(now if v is change.now else _to_db(v, pg) for v in change.columns.values()),
        change.version,
        change.instance_id,
        change.expected_version,
    ]
    remark_params: list[Any] = []
    if change.remark is not None:
        remark_params = [change.author_id, change.remark[0], change.remark[1], now]
    outbox_params: list[Any] = []
    outbox_kind: str | None = None
    if change.outbox is not None:
        event, message, outbox_kind, key = change.outbox
        outbox_params = [event, message, now]
        if outbox_kind == "unit":
            outbox_params += [key[0], True, change.author_id]
        else:
            outbox_params += [key[0], True, key[1], change.author_id]
    sql = _write_sql(pg, names, change.remark is not None, outbox_kind)
    cur = _cursor(conn)
    try:
        if pg:
            cur.execute(sql, (*update_params, *remark_params, *outbox_params))
            row = cur.fetchone()
            return bool(row and row[0] == 1)
        cur.execute(sql, update_params)
        if cur.rowcount != 1:
            return False
        if change.remark is not None:
            cur.execute(
                _SQLITE_REMARK_SQL,
                (change.instance_id, *remark_params),
            )
        if outbox_kind is not None:
            cur.execute(
                _SQLITE_OUTBOX_SQL + _sql(_RECIPIENTS[outbox_kind], pg),
                (outbox_params[0], change.instance_id, outbox_params[1], now, *outbox_params[3:]),
            )
        return True
    finally:
        cur.close()


_INSTANCE_MAPPER = inspect(TaskInstance)
_WARDS: dict[tuple[int, str], Organization] = {}


def _ward(row: _Row) -> Organization:
    """The instance's ward as the audit trail needs it (its id and log origin), without
    loading its row: a transient object, never added to a session, kept per (id, origin)."""
    key = (row.organization_id, row.audit_origin)
    ward = _WARDS.get(key)
    if ward is None:
        ward = _WARDS[key] = Organization(id=key[0], audit_origin=key[1])
    return ward


# An instance that `fire` wrote with plain statements was updated in the identity map by hand;
# the ORM does not know it changed, so a rollback of the savepoint or transaction it changed
# in would leave it showing the rolled-back state. These listeners expire it then.
_WRITTEN = "cchc.written_instances"


def _remember_written(session: Session, instance: TaskInstance) -> None:
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_WRITTEN, []).append((transaction, instance))


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


@sa_event.listens_for(Session, "after_soft_rollback")
def _expire_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    written = session.info.get(_WRITTEN)
    if not written:
        return
    kept = []
    for transaction, instance in written:
        if _within(transaction, previous_transaction):
            if instance in session:
                session.expire(instance)
        else:
            kept.append((transaction, instance))
    session.info[_WRITTEN] = kept


@sa_event.listens_for(Session, "after_transaction_end")
def _forget_written(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_WRITTEN, None)
