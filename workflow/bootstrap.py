"""Setting up a ward: its units, its plan with every task instance, and the demo accounts.

Every step is idempotent (running it twice creates nothing twice) and audited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from definitions.loader import PlanDefinition, UnitCatalog
from workflow.accounts import create_user, find_user, hash_password
from workflow.models import Organization, TaskInstance, Unit
from workflow.planning import ensure_organization, ensure_units, load_plan, units_by_code
from workflow.states import Role
from workflow.trail import SYSTEM, AuditTrail

DEMO_PASSWORD = "demo-2026"  # noqa: S105 - published demo credential, printed by `cchc init --demo`


def demo_email(username: str) -> str:
    """A demo account's address, in a domain that can never receive mail (RFC 2606): the file
    sender of development writes the messages to instance/outbox instead."""
    return f"{username}@demo.cchc.invalid"


@dataclass(frozen=True)
class DemoAccount:
    username: str
    full_name: str
    unit: str | None
    roles: tuple[str, ...]


def demo_accounts(catalog: UnitCatalog) -> list[DemoAccount]:
    """A member and a head for every unit, two VHXH reviewers, the VHXH head as approver,
    a ward leader, an auditor and an administrator."""
    accounts: list[DemoAccount] = []
    for spec in catalog.units.values():
        if spec.kind == "leadership":
            continue
        prefix = spec.code.lower()
        head_roles: tuple[str, ...] = (Role.MEMBER, Role.HEAD)
        if spec.code == "VHXH":
            head_roles = (Role.MEMBER, Role.HEAD, Role.APPROVER)
        accounts.append(
            DemoAccount(f"{prefix}.canbo", f"Cán bộ {spec.short_name}", spec.code, (Role.MEMBER,))
        )
        accounts.append(
            DemoAccount(f"{prefix}.truong", f"Trưởng {spec.short_name}", spec.code, head_roles)
        )
    accounts += [
        DemoAccount(
            "vhxh.thamdinh1", "Cán bộ thẩm định 1 (VHXH)", "VHXH", (Role.MEMBER, Role.REVIEWER)
        ),
        DemoAccount(
            "vhxh.thamdinh2", "Cán bộ thẩm định 2 (VHXH)", "VHXH", (Role.MEMBER, Role.REVIEWER)
        ),
        DemoAccount("lanhdao", "Lãnh đạo UBND phường", "LDUBND", (Role.WARD_LEADER,)),
        DemoAccount("kiemtoan", "Kiểm toán viên", None, (Role.AUDITOR,)),
        DemoAccount("quantri", "Quản trị hệ thống", None, (Role.ADMIN,)),
    ]
    return accounts


@dataclass
class InitReport:
    organization_created: bool = False
    units_created: list[str] = field(default_factory=list)
    plan_created: bool = False
    tasks_created: int = 0
    instances_created: int = 0
    users_created: list[str] = field(default_factory=list)


def initialize_ward(
    session: Session,
    *,
    catalog: UnitCatalog,
    plan: PlanDefinition,
    plan_text: str,
    now: datetime,
    organization_name: str,
    audit_origin: str,
    trail: AuditTrail,
    demo: bool = False,
) -> InitReport:
    """Create what is missing of the ward described by the plan. The caller commits."""
    report = InitReport()
    org, report.organization_created = ensure_organization(
        session, slug=plan.organization, name=organization_name, audit_origin=audit_origin, now=now
    )
    if report.organization_created:
        trail.record(
            session,
            org,
            now=now,
            actor=SYSTEM,
            action="organization.created",
            object_type="organization",
            object_id=org.slug,
            after={"name": org.name, "audit_origin": org.audit_origin},
        )
    for unit in ensure_units(session, org, catalog):
        report.units_created.append(unit.code)
        trail.record(
            session,
            org,
            now=now,
            actor=SYSTEM,
            action="unit.created",
            object_type="unit",
            object_id=unit.code,
            after={"name": unit.name, "kind": unit.kind, "self_inspects": unit.self_inspects},
        )

    loaded = load_plan(session, org, plan, plan_text, now=now)
    report.plan_created = loaded.created_plan
    report.tasks_created = loaded.created_tasks
    report.instances_created = loaded.created_instances
    if loaded.created_plan or loaded.created_instances:
        trail.record(
            session,
            org,
            now=now,
            actor=SYSTEM,
            action="plan.imported",
            object_type="plan",
            object_id=plan.code,
            details={
                "definition_sha256": loaded.plan.definition_sha256,
                "tasks_created": loaded.created_tasks,
                "instances_created": loaded.created_instances,
            },
        )
    for instance_id in loaded.instance_ids:
        instance = session.get_one(TaskInstance, instance_id)
        trail.record(
            session,
            org,
            now=now,
            actor=SYSTEM,
            action="task.assigned",
            object_type="task_instance",
            object_id=instance.id,
            after=_instance_snapshot(instance),
        )

    if demo:
        units = units_by_code(session, org)
        # Every demo account has the same published password: one Argon2 hash (a quarter of a
        # second each) serves them all instead of thirty-odd.
        demo_hash = hash_password(DEMO_PASSWORD)
        for account in demo_accounts(catalog):
            if find_user(session, account.username) is not None:
                continue
            user = create_user(
                session,
                org,
                username=account.username,
                full_name=account.full_name,
                unit=units[account.unit] if account.unit else None,
                roles=account.roles,
                password=None,
                actor=SYSTEM,
                now=now,
                trail=trail,
                email=demo_email(account.username),
            )
            user.password_hash = demo_hash
            report.users_created.append(account.username)
    session.flush()
    return report


def _instance_snapshot(instance: TaskInstance) -> dict[str, object]:
    unit: Unit = instance.unit
    return {
        "task": instance.plan_task.number,
        "unit": unit.code,
        "period": instance.period_label,
        "state": instance.state,
        "due": instance.due_date.isoformat() if instance.due_date else None,
    }


def organization_of(session: Session, slug: str) -> Organization | None:
    return session.scalar(select(Organization).where(Organization.slug == slug))
