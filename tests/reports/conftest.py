"""Fixtures of the periodic report tests: the demo ward with known work driven through the
engine (accepted on time, accepted late after a return, a KPI measured), and helpers to read
a generated .docx and .xlsx back."""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from docx import Document
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from definitions.calendar import load_calendar
from definitions.loader import default_plan_path, load_plan, load_units
from definitions.rubric import load_rubric
from workflow import kpis
from workflow.bootstrap import initialize_ward
from workflow.clock import WARD_TZ, FixedClock
from workflow.engine import Engine
from workflow.evidence import LocalEvidenceStore
from workflow.models import Organization, PlanTask, TaskInstance, Unit, User
from workflow.trail import AuditTrail

ORIGIN = "test.local/tran-hung-dao"
T0 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
CAL = load_calendar()
RUBRIC = load_rubric()


def at(day: int, month: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=WARD_TZ)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need_tools(*names: str) -> None:
    """Skip when a tool is missing locally; fail in CI, which installs them (.ci/run)."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        if in_ci():
            pytest.fail(f"{', '.join(missing)} missing and CI=true: .ci/run installs them")
        pytest.skip(f"{', '.join(missing)} not installed")


@dataclass
class Ward:
    session: Session
    engine: Engine
    clock: FixedClock
    org: Organization
    store: LocalEvidenceStore

    def user(self, username: str) -> User:
        return self.session.scalars(select(User).where(User.username == username)).one()

    def instances(self, unit: str) -> list[TaskInstance]:
        """The unit's dated instances, earliest due first."""
        return list(
            self.session.scalars(
                select(TaskInstance)
                .join(PlanTask, TaskInstance.plan_task_id == PlanTask.id)
                .join(Unit, TaskInstance.unit_id == Unit.id)
                .where(Unit.code == unit, TaskInstance.due_date.is_not(None))
                .order_by(TaskInstance.due_date, TaskInstance.id)
            )
        )

    def complete(
        self,
        instance: TaskInstance,
        *,
        submitted: datetime,
        accepted: datetime,
        returned: bool = False,
        unit: str = "vp",
    ) -> None:
        """start → evidence → submit → (return → rework → submit) → review → accept."""
        e, u = self.engine, self.user
        self.clock.advance_to(submitted)
        e.fire(instance.id, "start", u(f"{unit}.canbo"))
        for i, product in enumerate(p["name"] for p in instance.plan_task.products):
            e.add_evidence(
                instance.id,
                u(f"{unit}.canbo"),
                data=PDF + f"{instance.id}-{i}".encode(),
                filename=f"minh-chung-{i}.pdf",
                product=product,
            )
        e.fire(instance.id, "submit", u(f"{unit}.truong"))
        if returned:
            e.fire(instance.id, "return_for_rework", u("vhxh.thamdinh1"), reason="Bổ sung")
            e.fire(instance.id, "rework", u(f"{unit}.canbo"))
            e.fire(instance.id, "submit", u(f"{unit}.truong"))
        self.clock.advance_to(accepted)
        e.fire(
            instance.id,
            "review",
            u("vhxh.thamdinh1"),
            findings="Hồ sơ đầy đủ",
            recommendation="accept",
        )
        e.fire(instance.id, "accept", u("vhxh.truong"), assessment="Hoàn thành")


def make_ward(session: Session, store_dir: Path) -> Ward:
    plan_path = default_plan_path()
    trail = AuditTrail()
    initialize_ward(
        session,
        catalog=load_units(),
        plan=load_plan(plan_path),
        plan_text=plan_path.read_text(encoding="utf-8"),
        now=T0,
        organization_name="Phường Trần Hưng Đạo",
        audit_origin=ORIGIN,
        trail=trail,
        demo=True,
    )
    org = session.scalars(select(Organization)).one()
    store = LocalEvidenceStore(store_dir)
    clock = FixedClock(T0)
    return Ward(session, Engine(session, trail, clock, store=store), clock, org, store)


def drive_known_work(ward: Ward) -> dict[str, int]:
    """Two VP instances accepted (one on time, one late after a return) and one KTHTDT
    instance accepted on time; a KPI measured. Returns the instance ids."""
    vp = ward.instances("VP")
    first, second = vp[0], vp[1]
    assert first.due_date is not None and second.due_date is not None
    ward.complete(first, submitted=at(6, 1), accepted=at(7, 1))
    late = datetime.combine(second.due_date + timedelta(days=9), time(10), tzinfo=WARD_TZ)
    ward.complete(second, submitted=at(6, 1), accepted=late, returned=True)
    kt = ward.instances("KTHTDT")[0]
    ward.complete(kt, submitted=at(6, 1), accepted=at(8, 1), unit="kthtdt")
    ward.clock.advance_to(at(2, 3))
    kpis.record_measurement(
        ward.session,
        ward.org,
        2026,
        "online_payment",
        ward.user("ttpvhcc.truong"),
        value="92.5",
        measured_on=date(2026, 3, 2),
        data=PDF + b"kpi",
        filename="thanh-toan.pdf",
        now=at(2, 3),
        store=ward.store,
        trail=AuditTrail(),
    )
    ward.session.flush()
    return {"on_time": first.id, "late": second.id, "kthtdt": kt.id}


@pytest.fixture
def ward(session: Session, tmp_path: Path) -> Ward:
    return make_ward(session, tmp_path / "evidence")


@pytest.fixture
def known(ward: Ward) -> Ward:
    drive_known_work(ward)
    return ward


# --- reading the files back -------------------------------------------------------------------


def docx_of(data: bytes) -> Any:
    return Document(io.BytesIO(data))


def xlsx_of(data: bytes) -> Any:
    return load_workbook(io.BytesIO(data))


def table_rows(table: Any) -> list[list[str]]:
    return [[cell.text for cell in row.cells] for row in table.rows]


def find_table(doc: Any, first_header: str) -> list[list[str]]:
    """The rows of the first table whose top-left cell is `first_header`."""
    for table in doc.tables:
        rows = table_rows(table)
        if rows and rows[0][0] == first_header:
            return rows
    raise AssertionError(f"no table headed {first_header!r}")


def percent_text(value: str | None) -> str:
    """The evaluation's "85.7" as the report writes it: "85,7%"; None as "—"."""
    return "—" if value is None else value.replace(".", ",") + "%"
