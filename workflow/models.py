"""The relational model of the workflow: wards, units, people, the plan and its task work."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.orm.attributes import flag_modified

from workflow.states import RemarkKind, RequestState, Role, TaskState, check_in

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware instant")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime}


def _utc(column_name: str) -> Mapped[datetime]:
    return mapped_column(column_name, UtcDateTime(), nullable=False)


class Organization(Base):
    """A ward (phường/xã): it owns its units, people, plans and one audit log."""

    __tablename__ = "organization"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    audit_origin: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = _utc("created_at")

    units: Mapped[list[Unit]] = relationship(back_populates="organization")


class Unit(Base):
    __tablename__ = "unit"
    __table_args__ = (UniqueConstraint("organization_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    short_name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    can_lead: Mapped[bool] = mapped_column(Boolean)
    self_inspects: Mapped[bool] = mapped_column(Boolean)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    organization: Mapped[Organization] = relationship(back_populates="units")


class User(Base):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id"), index=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(255))
    # Where notifications are e-mailed; None: in-app notifications only.
    email: Mapped[str | None] = mapped_column(String(255))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id"), index=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = _utc("created_at")

    unit: Mapped[Unit | None] = relationship()
    roles: Mapped[list[UserRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan", order_by="UserRole.role"
    )

    @property
    def role_names(self) -> list[str]:
        return [r.role for r in self.roles]


class UserRole(Base):
    __tablename__ = "user_role"
    __table_args__ = (CheckConstraint(check_in("role", Role), name="role"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)

    user: Mapped[User] = relationship(back_populates="roles")


class Plan(Base):
    """One imported plan definition (e.g. the 2026 plan), kept verbatim for reproducibility."""

    __tablename__ = "plan"
    __table_args__ = (UniqueConstraint("organization_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    year: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    definition_sha256: Mapped[str] = mapped_column(String(64))
    definition_text: Mapped[str] = mapped_column(Text)
    # The plan's workflow settings (definitions Policy), copied at load for the engine.
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    imported_at: Mapped[datetime] = _utc("imported_at")

    tasks: Mapped[list[PlanTask]] = relationship(back_populates="plan", order_by="PlanTask.number")


class PlanTask(Base):
    """One row of the plan's appendix."""

    __tablename__ = "plan_task"
    __table_args__ = (UniqueConstraint("plan_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plan.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    section: Mapped[str | None] = mapped_column(String(8))
    content: Mapped[str] = mapped_column(Text)
    lead_text: Mapped[str] = mapped_column(Text)
    leads: Mapped[list[str]] = mapped_column(JSON)
    coordinators_text: Mapped[str] = mapped_column(Text)
    coordinators: Mapped[list[str]] = mapped_column(JSON)
    timeframe: Mapped[str] = mapped_column(Text)
    schedule_kind: Mapped[str] = mapped_column(String(16))
    products: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    plan: Mapped[Plan] = relationship(back_populates="tasks")


class TaskInstance(Base):
    """The work of one lead unit on one plan task for one period."""

    __tablename__ = "task_instance"
    __table_args__ = (
        UniqueConstraint("plan_task_id", "unit_id", "period_label"),
        CheckConstraint(check_in("state", TaskState), name="state"),
        Index("ix_task_instance_unit_due", "unit_id", "due_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_task_id: Mapped[int] = mapped_column(ForeignKey("plan_task.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"))
    period_label: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(32))  # not indexed: see migration 0015
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    # The current submission: who submitted it, who reviewed it, what the reviewer advised.
    # Kept on the row because the four-eyes rules are checked against them on every decision.
    submission_round: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    recommendation: Mapped[str | None] = mapped_column(String(16))
    submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = _utc("created_at")
    updated_at: Mapped[datetime] = _utc("updated_at")

    plan_task: Mapped[PlanTask] = relationship()
    unit: Mapped[Unit] = relationship()
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])

    # SQLAlchemy reads this mapping once, at class creation; it is never mutated.
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012

    def touch(self, now: datetime) -> None:
        """Mark the instance changed, so that its version moves at the next flush even when
        `now` equals the stored instant. Whoever changes what a transition of the instance
        reads (its evidence, explanations, requests, unit, definition) touches it under the
        instance's lock: an older view of it becomes stale, and a transition that waited for
        that lock sees the version move and reads again (workflow.engine._read_instance)."""
        self.updated_at = now
        flag_modified(self, "updated_at")


class CoordinationRequest(Base):
    """A lead unit's request for a contribution from a coordinating unit."""

    __tablename__ = "coordination_request"
    __table_args__ = (
        UniqueConstraint("instance_id", "unit_id"),
        CheckConstraint(check_in("state", RequestState), name="state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("task_instance.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    due_date: Mapped[date | None] = mapped_column(Date)
    message: Mapped[str] = mapped_column(Text, default="")
    decline_reason: Mapped[str | None] = mapped_column(Text)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    responded_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    requested_at: Mapped[datetime] = _utc("requested_at")
    responded_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    # SQLAlchemy reads this mapping once, at class creation; it is never mutated.
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class Contribution(Base):
    """What a coordinating unit's member provided against a request: a note, files or both."""

    __tablename__ = "contribution"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("coordination_request.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = _utc("created_at")


class Evidence(Base):
    """A file proving a product of a task instance, stored content-addressed by SHA-256."""

    __tablename__ = "evidence"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("task_instance.id"), index=True)
    contribution_id: Mapped[int | None] = mapped_column(ForeignKey("contribution.id"))
    product: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(128))
    filename: Mapped[str] = mapped_column(String(255))
    uploader_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    created_at: Mapped[datetime] = _utc("created_at")
    withdrawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Remark(Base):
    """A comment, a reviewer's finding, a decision or a written explanation (giải trình)."""

    __tablename__ = "remark"
    __table_args__ = (
        CheckConstraint(check_in("kind", RemarkKind), name="kind"),
        # A transition reads an instance's explanations: by instance and kind (migration 0010).
        Index("ix_remark_instance_kind", "instance_id", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("task_instance.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    kind: Mapped[str] = mapped_column(String(16))
    product: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _utc("created_at")


class Notification(Base):
    """Outbox: one row per recipient, written in the same transaction as the change."""

    __tablename__ = "notification"
    __table_args__ = (Index("ix_notification_recipient_read", "recipient_id", "read_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    event: Mapped[str] = mapped_column(String(64))
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("task_instance.id"))
    message: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = _utc("created_at")
    read_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # E-mail delivery: failed attempts so far and the last error; after
    # workflow.delivery.MAX_ATTEMPTS the message stays in-app only.
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)


class DeadlineAlert(Base):
    """A deadline alert already sent: once per instance, kind and due date, so that running
    the deadline check twice sends nothing twice (and a new due date alerts again)."""

    __tablename__ = "deadline_alert"
    __table_args__ = (
        UniqueConstraint("instance_id", "kind", "due_date"),
        CheckConstraint("kind IN ('due_soon', 'overdue')", name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("task_instance.id"))
    kind: Mapped[str] = mapped_column(String(16))
    due_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = _utc("created_at")


class PlanAmendment(Base):
    """A proposed change to the plan during the year (workflow.amendments): VHXH proposes,
    the ward leader approves or rejects. `changes` holds the new values, checked and
    normalised when proposed (JSON without floats)."""

    __tablename__ = "plan_amendment"
    __table_args__ = (
        # The stored names of workflow.amendments.AmendmentKind and AmendmentState.
        CheckConstraint("kind IN ('add_task', 'change_task', 'cancel_task')", name="kind"),
        CheckConstraint("state IN ('proposed', 'approved', 'rejected')", name="state"),
        # A decision and its decider come together, and only with a decided state.
        CheckConstraint(
            "(state = 'proposed' AND decided_by_id IS NULL AND decided_at IS NULL)"
            " OR (state <> 'proposed' AND decided_by_id IS NOT NULL AND decided_at IS NOT NULL)",
            name="decision",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plan.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    # The task's number: the existing task changed or cancelled, or the new task's number.
    task_number: Mapped[int] = mapped_column(Integer)
    # Set when proposed for a change or a cancellation, when approved for a new task.
    plan_task_id: Mapped[int | None] = mapped_column(ForeignKey("plan_task.id"))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), index=True)
    proposed_by_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    proposed_at: Mapped[datetime] = _utc("proposed_at")
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    decision_reason: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    plan: Mapped[Plan] = relationship()
    plan_task: Mapped[PlanTask | None] = relationship()
    proposed_by: Mapped[User] = relationship(foreign_keys=[proposed_by_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])

    # SQLAlchemy reads this mapping once, at class creation; it is never mutated.
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class ApiToken(Base):
    """A bearer token for programs (workflow.tokens): only the SHA-256 of its secret is kept,
    so the secret is shown once, when it is created; revoking keeps the row for the record."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # The first characters of the token, shown in lists so that people can tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _utc("created_at")
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    user: Mapped[User] = relationship()


# --- evaluation, self-inspection and inspection (workflow.evaluation, workflow.inspection) ---


class KpiMeasurement(Base):
    """A measured value of one of the plan's targets (KPIs), entered with its evidence file.

    The value is kept as decimal text (never a float) so that it reads back exactly; the
    evaluation as of a date takes the latest measurement made on or before that date."""

    __tablename__ = "kpi_measurement"
    __table_args__ = (Index("ix_kpi_measurement_plan_code", "plan_id", "kpi_code", "measured_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plan.id"))
    kpi_code: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(32))
    measured_on: Mapped[date] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text, default="")
    evidence_sha256: Mapped[str] = mapped_column(String(64))
    evidence_size: Mapped[int] = mapped_column(BigInteger)
    evidence_media_type: Mapped[str] = mapped_column(String(128))
    evidence_filename: Mapped[str] = mapped_column(String(255))
    entered_by_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    entered_at: Mapped[datetime] = _utc("entered_at")

    entered_by: Mapped[User] = relationship()


class SelfInspection(Base):
    """A unit's annual self-inspection (tự kiểm tra): its answers per rubric criterion, the
    evaluation it was pre-filled from, and its guarded lifecycle (draft → submitted →
    acknowledged | returned → submitted)."""

    __tablename__ = "self_inspection"
    __table_args__ = (
        UniqueConstraint("unit_id", "year"),
        CheckConstraint(
            "state IN ('draft', 'submitted', 'acknowledged', 'returned')", name="state"
        ),
        Index("ix_self_inspection_org_year", "organization_id", "year"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"))
    year: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    # The evaluation of the unit it was opened with (figures, computed points, instances and
    # their evidence), and the unit head's answers, one per criterion code.
    prefill: Mapped[dict[str, Any]] = mapped_column(JSON)
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    round: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    return_reason: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = _utc("created_at")
    updated_at: Mapped[datetime] = _utc("updated_at")

    unit: Mapped[Unit] = relationship()

    # SQLAlchemy reads this mapping once, at class creation; it is never mutated.
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class InspectionDraw(Base):
    """A recorded draw of the units to inspect; its audit entry (audit_seq) is the record that
    `cchc inspection replay` re-runs."""

    __tablename__ = "inspection_draw"
    __table_args__ = (Index("ix_inspection_draw_org_year", "organization_id", "year"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id"))
    year: Mapped[int] = mapped_column(Integer)
    audit_seq: Mapped[int] = mapped_column(BigInteger)
    seed: Mapped[str] = mapped_column(Text)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    selected: Mapped[list[str]] = mapped_column(JSON)
    # None: drawn by the system (an operator on the server's command line).
    drawn_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    drawn_at: Mapped[datetime] = _utc("drawn_at")

    drawn_by: Mapped[User | None] = relationship()


class Inspection(Base):
    """The ward's inspection (kiểm tra) of one sampled unit: plan, team, findings, the
    conclusion notice (Thông báo kết luận) and the corrective actions it ordered."""

    __tablename__ = "inspection"
    __table_args__ = (
        UniqueConstraint("unit_id", "year"),
        CheckConstraint(
            "state IN ('planned', 'findings_recorded', 'concluded', 'closed')", name="state"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"))
    year: Mapped[int] = mapped_column(Integer)
    draw_id: Mapped[int] = mapped_column(ForeignKey("inspection_draw.id"))
    state: Mapped[str] = mapped_column(String(24))
    plan_text: Mapped[str] = mapped_column(Text, default="")
    team: Mapped[list[str]] = mapped_column(JSON, default=list)
    scheduled_on: Mapped[date | None] = mapped_column(Date)
    findings: Mapped[str] = mapped_column(Text, default="")
    conclusion_number: Mapped[str | None] = mapped_column(String(64))
    conclusion_text: Mapped[str | None] = mapped_column(Text)
    concluded_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    concluded_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = _utc("created_at")
    updated_at: Mapped[datetime] = _utc("updated_at")

    unit: Mapped[Unit] = relationship()
    draw: Mapped[InspectionDraw] = relationship()
    corrective_actions: Mapped[list[CorrectiveAction]] = relationship(
        back_populates="inspection", order_by="CorrectiveAction.id"
    )

    # SQLAlchemy reads this mapping once, at class creation; it is never mutated.
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class CorrectiveAction(Base):
    """A corrective action an inspection's conclusion ordered: it runs as a task instance of
    the inspected unit, through the ordinary lifecycle, until accepted."""

    __tablename__ = "corrective_action"

    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspection.id"), index=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("task_instance.id"), unique=True)
    description: Mapped[str] = mapped_column(Text)

    inspection: Mapped[Inspection] = relationship(back_populates="corrective_actions")
    instance: Mapped[TaskInstance] = relationship()


class YearClosure(Base):
    """A closed reform year: closing needs every self-inspection of the year acknowledged."""

    __tablename__ = "year_closure"
    __table_args__ = (UniqueConstraint("organization_id", "year"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id"))
    year: Mapped[int] = mapped_column(Integer)
    closed_by_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    closed_at: Mapped[datetime] = _utc("closed_at")
    coverage: Mapped[dict[str, Any]] = mapped_column(JSON)


class ReportAlert(Base):
    """A deadline alert already sent about a periodic report (workflow.periodic): once per
    ward, report period, kind and due date, like DeadlineAlert for task instances."""

    __tablename__ = "report_alert"
    __table_args__ = (
        UniqueConstraint("organization_id", "report_key", "kind", "due_date"),
        CheckConstraint("kind IN ('due_soon', 'overdue')", name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id"))
    report_key: Mapped[str] = mapped_column(String(64))  # e.g. 2026/quarter/1
    kind: Mapped[str] = mapped_column(String(16))
    due_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = _utc("created_at")
