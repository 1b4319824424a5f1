"""The `cchc` command line: setup, serving, the plan, tasks, users and the audit log.

Every command that prints data takes --json. Commands parse their input, call the domain
and print the outcome; a refusal exits 1 with its code and Vietnamese message.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import Engine as DbEngine
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.clock import SystemClock
from app.notices import AUDIT_MISMATCH
from app.settings import AUDIT_KEY_NAME, ORGANIZATION_NAME, Settings, audit_origin
from audit.__main__ import cli as audit_cli
from audit.checkpoint import CheckpointError, NoteSigner, generate_key, load_signer
from audit.export import export_log
from audit.ledger import (
    AppendFailedError,
    CommittedMismatchError,
    ConcurrentAppendError,
    Ledger,
    LedgerError,
)
from audit.receipt import make_receipt
from definitions.calendar import load_calendar
from definitions.importer import ImportProblems, import_plan
from definitions.loader import (
    PlanDefinitionError,
    default_plan_path,
    load_plan,
    load_units,
)
from definitions.timeframe import TimeframeError, parse_timeframe
from workflow.accounts import create_user, find_user, set_email, set_password
from workflow.amendments import (
    amendment_as_dict,
    amendments_of,
    decide_amendment,
    propose_amendment,
)
from workflow.bootstrap import DEMO_PASSWORD, demo_accounts, initialize_ward
from workflow.clock import ward_date
from workflow.db import make_engine, session_factory
from workflow.deadlines import tick
from workflow.delivery import deliver_pending
from workflow.engine import Engine
from workflow.errors import DomainError
from workflow.evidence import LocalEvidenceStore, collect_unreferenced
from workflow.migrate import upgrade
from workflow.models import Organization, Plan, Unit, User
from workflow.planning import units_by_code
from workflow.queries import (
    instance_detail,
    list_instances,
    list_users,
    notifications_for,
    organizations,
)
from workflow.tokens import create_token, revoke_token
from workflow.trail import SYSTEM, AuditTrail

F = TypeVar("F", bound=Callable[..., Any])


class Runtime:
    """What a command needs, created on first use so that `--help` touches nothing."""

    def __init__(self) -> None:
        self.settings = Settings.from_env()
        self.clock = SystemClock()

    @cached_property
    def trail(self) -> AuditTrail:
        return self.settings.audit_trail()

    @cached_property
    def engine(self) -> DbEngine:
        return make_engine(self.settings.database_url)

    def close(self) -> None:
        """Release the database connections (only if a command opened any)."""
        if "engine" in self.__dict__:
            self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits when the block ends normally, rolls back otherwise."""
        with session_factory(self.engine)() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def organization(self, session: Session, slug: str | None) -> Organization:
        orgs = organizations(session)
        if slug is not None:
            orgs = [o for o in orgs if o.slug == slug]
        if not orgs:
            fail("not_initialized", "Chưa có dữ liệu phường. Hãy chạy `cchc init` trước.")
        if len(orgs) > 1:
            fail("organization_required", "Có nhiều phường trong cơ sở dữ liệu: hãy chỉ rõ --org.")
        return orgs[0]


pass_runtime = click.make_pass_decorator(Runtime, ensure=True)


def fail(code: str, message: str, detail: str | None = None) -> None:
    """Report a refusal the same way everywhere: code and message on stderr (then, if given,
    a technical detail for the administrator, in parentheses), exit 1."""
    click.echo(f"Lỗi [{code}]: {message}", err=True)
    if detail:
        click.echo(f"({detail})", err=True)
    sys.exit(1)


def emit(data: Any, as_json: bool, text: Callable[[Any], str] | None = None) -> None:
    if as_json or text is None:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=_json_default))
    else:
        click.echo(text(data))


def _json_default(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)


def org_option(func: F) -> F:
    return click.option("--org", "org_slug", default=None, help="Ward slug, when several.")(func)


def _engine(rt: Runtime, session: Session) -> Engine:
    return Engine(session, rt.trail, rt.clock, store=LocalEvidenceStore(rt.settings.evidence_dir))


def _as_user(session: Session, username: str) -> User:
    user = find_user(session, username.strip().lower())
    if user is None or not user.active:
        raise DomainError("unknown_user", f"Không có tài khoản “{username}”.")
    return user


def _parse_date(value: str | None) -> date | None:
    """dd/mm/yyyy (as people write it) or yyyy-mm-dd (as scripts do)."""
    if value is None:
        return None
    for fmt in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise click.BadParameter(f"“{value}” không phải ngày hợp lệ (dd/mm/yyyy).")


as_option = click.option("--as", "as_username", required=True, help="Acting username.")


class _Commands(click.Group):
    """The command group; a database that cannot be reached or refuses the work, and an audit
    entry that the database stored otherwise than prepared, are reported as errors with their
    codes, not as tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CommittedMismatchError as exc:
            fail(
                "audit_mismatch",
                AUDIT_MISMATCH + " Hãy báo ngay cho quản trị hệ thống để xuất nhật ký "
                "(`cchc audit export`) và kiểm tra (`cchc audit verify`).",
                detail=f"{type(exc).__name__}: {exc}",
            )
        except _DATABASE_ERRORS + _driver_errors() as exc:
            text = str(exc).strip()
            fail(
                "database_error",
                "Lỗi cơ sở dữ liệu: thao tác có thể chưa được lưu. Hãy xem lại trạng thái (ví dụ "
                "`cchc task show`) trước khi thử lại; nếu lỗi lặp lại, hãy kiểm tra kết nối tới "
                "cơ sở dữ liệu (CCHC_DATABASE_URL).",
                detail=f"{type(exc).__name__}: {text.splitlines()[0] if text else '-'}",
            )


_DATABASE_ERRORS: tuple[type[Exception], ...] = (
    DBAPIError,
    AppendFailedError,
    ConcurrentAppendError,
    sqlite3.Error,
)


def _driver_errors() -> tuple[type[Exception], ...]:
    """psycopg's own error class (the ledger writes through the driver's cursors), when it is
    loaded, as it is whenever one of its errors can be raised."""
    psycopg = sys.modules.get("psycopg")
    return () if psycopg is None else (psycopg.Error,)


@click.group(cls=_Commands)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Theo dõi Kế hoạch cải cách hành chính phường (CCHC) — quy trình và nhật ký kiểm toán."""
    rt = ctx.ensure_object(Runtime)
    ctx.call_on_close(rt.close)


# --- setup -----------------------------------------------------------------------------------


@main.command("init")
@click.option("--demo", is_flag=True, help="Also create the demo accounts.")
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Plan definition file (default: the checked-in 2026 plan).",
)
@json_option
@pass_runtime
def init_command(rt: Runtime, demo: bool, plan_path: Path | None, as_json: bool) -> None:
    """Create or migrate the database and load the plan (idempotent)."""
    upgrade(rt.settings.database_url)
    if ensure_signing_key(rt.settings):
        click.echo(f"Đã tạo khóa ký nhật ký kiểm toán: {rt.settings.signing_key_path}", err=True)
    path = plan_path or default_plan_path()
    try:
        plan = load_plan(path)
    except PlanDefinitionError as exc:
        fail("invalid_plan", str(exc))
    with rt.session() as session:
        report = initialize_ward(
            session,
            catalog=load_units(),
            plan=plan,
            plan_text=path.read_text(encoding="utf-8"),
            now=rt.clock.now(),
            organization_name=ORGANIZATION_NAME,
            audit_origin=audit_origin(plan.organization),
            trail=rt.trail,
            demo=demo,
        )
    rt.settings.secret_key()
    data = asdict(report) | {"database": rt.engine.url.render_as_string(hide_password=True)}
    if demo:
        data["demo_password"] = DEMO_PASSWORD
        data["demo_accounts"] = [a.username for a in demo_accounts(load_units())]
    emit(data, as_json, _init_text)


def _init_text(data: dict[str, Any]) -> str:
    lines = [
        f"Cơ sở dữ liệu: {data['database']}",
        f"Đơn vị mới: {len(data['units_created'])}; nhiệm vụ mới: {data['tasks_created']}; "
        f"lượt giao việc mới: {data['instances_created']}; "
        f"tài khoản mới: {len(data['users_created'])}",
    ]
    if "demo_accounts" in data:
        lines.append(f"Tài khoản demo (mật khẩu chung: {data['demo_password']}):")
        lines.append("  " + ", ".join(data["demo_accounts"]))
    return "\n".join(lines)


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve_command(host: str, port: int) -> None:
    """Serve the web application (development server; see docs/deployment.md for production)."""
    from app import create_app

    click.echo(f"Đang phục vụ tại http://{host}:{port}/  (Ctrl+C để dừng)")
    create_app().run(host=host, port=port, debug=False, use_reloader=False)


# --- plan ------------------------------------------------------------------------------------


@main.group("plan")
def plan_group() -> None:
    """The plan definition: show, validate, import, parse timeframes."""


@plan_group.command("show")
@click.option(
    "--file",
    "plan_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
)
@json_option
def plan_show(plan_path: Path | None, as_json: bool) -> None:
    """Show the plan's sections and tasks."""
    try:
        plan = load_plan(plan_path or default_plan_path())
    except PlanDefinitionError as exc:
        fail("invalid_plan", str(exc))
    emit(plan.to_json(), as_json, _plan_text)


def _plan_text(data: dict[str, Any]) -> str:
    lines = [data["title"]]
    for section in data["sections"]:
        lines.append(f"\n{section['number']}. {section['title']}")
        for task in data["tasks"]:
            if task["section"] == section["number"]:
                lines.append(
                    f"  {task['number']:>2}. [{', '.join(task['leads'])}] {task['content']}"
                )
    return "\n".join(lines)


@plan_group.command("validate")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def plan_validate(path: Path) -> None:
    """Check a plan definition file; exit 1 naming the file, task and field on error."""
    try:
        plan = load_plan(path)
    except PlanDefinitionError as exc:
        fail("invalid_plan", str(exc))
    click.echo(f"Hợp lệ: {path} ({len(plan.tasks)} nhiệm vụ).")


@plan_group.command("import")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--base",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Metadata (KPIs, reporting regime, policy) to merge with the table.",
)
def plan_import(source: Path, output: Path, base: Path | None) -> None:
    """Read an appendix table (tab-separated text or .docx) and write a definition file."""
    try:
        plan = import_plan(source, output, base=base)
    except ImportProblems as exc:
        fail("import_problems", str(exc))
    except (PlanDefinitionError, TimeframeError) as exc:
        fail("invalid_plan", str(exc))
    click.echo(f"Đã ghi {output} ({len(plan.tasks)} nhiệm vụ).")


@plan_group.command("parse-timeframe")
@click.argument("phrase")
@click.option("--year", type=int, required=True)
@json_option
def plan_parse_timeframe(phrase: str, year: int, as_json: bool) -> None:
    """Parse a timeframe phrase into periods with due dates on the working calendar."""
    try:
        schedule = parse_timeframe(phrase, year, load_calendar())
    except TimeframeError as exc:
        fail("unknown_timeframe", str(exc))
    emit(schedule.to_json(), as_json, _schedule_text)


def _schedule_text(data: dict[str, Any]) -> str:
    lines = [f"Loại: {data['kind']}"]
    for p in data["periods"]:
        due = date.fromisoformat(p["due"]).strftime("%d/%m/%Y") if p["due"] else "chưa xác định"
        lines.append(f"  {p['label']}: từ {date.fromisoformat(p['start']):%d/%m/%Y}, hạn {due}")
    return "\n".join(lines)


@plan_group.group("amend")
def amend_group() -> None:
    """Amendments to the plan during the year: VHXH proposes, the ward leader decides."""


_LIST_FIELDS = ("leads", "lead", "coordinators")


def _changes(pairs: tuple[str, ...]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"“{pair}”: cần dạng trường=giá trị.", param_hint="--set")
        key = key.strip()
        if key in _LIST_FIELDS:
            changes[key] = [v.strip() for v in value.split(",") if v.strip()]
        elif key == "number":
            changes[key] = int(value)
        else:
            changes[key] = value
    return changes


@amend_group.command("propose")
@as_option
@click.option(
    "--kind", type=click.Choice(["add_task", "change_task", "cancel_task"]), required=True
)
@click.option("--task", "task_number", type=int, default=None, help="The task's number.")
@click.option(
    "--set",
    "pairs",
    multiple=True,
    help="field=value: content, leads (codes, comma-separated), coordinators, "
    "timeframe, products (a cell, split as the importer does), section, number.",
)
@click.option("--reason", required=True)
@org_option
@json_option
@pass_runtime
def amend_propose(
    rt: Runtime,
    as_username: str,
    kind: str,
    task_number: int | None,
    pairs: tuple[str, ...],
    reason: str,
    org_slug: str | None,
    as_json: bool,
) -> None:
    """Propose an amendment (VHXH)."""
    try:
        with rt.session() as session:
            org = rt.organization(session, org_slug)
            amendment = propose_amendment(
                session,
                org,
                _current_plan(session, org),
                _as_user(session, as_username),
                kind=kind,
                task_number=task_number,
                changes=_changes(pairs),
                reason=reason,
                now=rt.clock.now(),
                trail=rt.trail,
            )
            data = amendment_as_dict(amendment)
    except DomainError as exc:
        fail(exc.code, exc.message)
    emit(data, as_json, lambda d: f"Đã đề xuất điều chỉnh #{d['id']}.")


@amend_group.command("decide")
@click.argument("amendment_id", type=int)
@as_option
@click.option("--approve/--reject", required=True)
@click.option("--reason", default="")
@org_option
@json_option
@pass_runtime
def amend_decide(
    rt: Runtime,
    amendment_id: int,
    as_username: str,
    approve: bool,
    reason: str,
    org_slug: str | None,
    as_json: bool,
) -> None:
    """Approve or reject a proposed amendment (the ward leader)."""
    now = rt.clock.now()
    try:
        with rt.session() as session:
            org = rt.organization(session, org_slug)
            amendment = decide_amendment(
                session,
                org,
                amendment_id,
                _as_user(session, as_username),
                approve=approve,
                reason=reason,
                now=now,
                trail=rt.trail,
                today=ward_date(now),
            )
            data = amendment_as_dict(amendment)
    except DomainError as exc:
        fail(exc.code, exc.message)
    emit(data, as_json, lambda d: f"Điều chỉnh #{d['id']}: {d['state']}.")


@amend_group.command("list")
@click.option("--state", default=None)
@org_option
@json_option
@pass_runtime
def amend_list(rt: Runtime, state: str | None, org_slug: str | None, as_json: bool) -> None:
    """The plan's amendments."""
    with rt.session() as session:
        org = rt.organization(session, org_slug)
        data = [amendment_as_dict(a) for a in amendments_of(session, org, state=state)]
    emit(
        data,
        as_json,
        lambda rows: (
            "\n".join(f"#{r['id']} {r['kind']} NV{r['task_number']} {r['state']}" for r in rows)
            or "Chưa có điều chỉnh nào."
        ),
    )


def _current_plan(session: Session, org: Organization) -> Plan:
    plan = session.scalars(
        select(Plan).where(Plan.organization_id == org.id).order_by(Plan.year.desc(), Plan.id)
    ).first()
    if plan is None:
        fail("not_initialized", "Chưa nạp kế hoạch. Hãy chạy `cchc init` trước.")
    assert plan is not None
    return plan


# --- tasks -----------------------------------------------------------------------------------


@main.group("task")
def task_group() -> None:
    """Task instances: one per lead unit per period."""


@task_group.command("list")
@click.option("--unit", default=None, help="Unit code, e.g. VHXH.")
@click.option("--state", default=None)
@click.option("--number", type=int, default=None, help="Task number in the plan.")
@org_option
@json_option
@pass_runtime
def task_list(
    rt: Runtime,
    unit: str | None,
    state: str | None,
    number: int | None,
    org_slug: str | None,
    as_json: bool,
) -> None:
    """List task instances by due date."""
    with rt.session() as session:
        org = rt.organization(session, org_slug)
        rows = list_instances(session, org, unit=unit, state=state, number=number)
        emit([r.as_json() for r in rows], as_json, _task_text)


def _task_text(rows: list[dict[str, Any]]) -> str:
    out = []
    for r in rows:
        due = date.fromisoformat(r["due"]).strftime("%d/%m/%Y") if r["due"] else "—"
        out.append(
            f"#{r['id']:<4} NV{r['number']:<3} {r['unit']:<8} {r['period']:<22} "
            f"{due:<10} {r['state']}"
        )
    return "\n".join(out) or "Không có nhiệm vụ nào."


@task_group.command("show")
@click.argument("instance_id", type=int)
@click.option("--as", "as_username", default=None, help="Show the events this user may fire.")
@json_option
@pass_runtime
def task_show(rt: Runtime, instance_id: int, as_username: str | None, as_json: bool) -> None:
    """One task instance: task, evidence, contributions, history, enabled events."""
    try:
        with rt.session() as session:
            engine = _engine(rt, session)
            viewer = _as_user(session, as_username) if as_username else None
            data = instance_detail(session, engine, engine.load(instance_id), viewer)
    except DomainError as exc:
        fail(exc.code, exc.message)
    emit(data, as_json, _task_detail_text)


def _task_detail_text(d: dict[str, Any]) -> str:
    due = date.fromisoformat(d["due"]).strftime("%d/%m/%Y") if d["due"] else "chưa xác định"
    lines = [
        f"#{d['id']} Nhiệm vụ {d['number']} — {d['lead']} — {d['period']} — hạn {due}",
        d["content"],
        f"Trạng thái: {d['state']} (phiên bản {d['version']})",
        "Sản phẩm: " + "; ".join(d["products"]),
    ]
    for e in d["evidence"]:
        mark = " (đã rút)" if e["withdrawn"] else ""
        lines.append(f"  tài liệu #{e['id']} [{e['product']}] {e['filename']} {e['sha256']}{mark}")
    for h in d["history"]:
        lines.append(f"  nhật ký #{h['seq']} {h['at']} {h['user']} {h['action']}")
    if d["enabled_events"]:
        lines.append("Có thể: " + ", ".join(d["enabled_events"]))
    return "\n".join(lines)


@task_group.command("fire")
@click.argument("instance_id", type=int)
@click.argument("event")
@as_option
@click.option("--reason", default=None, help="Reason (return, cancel, reassignment).")
@click.option("--assessment", default=None, help="Assessment (accept).")
@click.option("--findings", default=None, help="Reviewer's findings (review).")
@click.option("--recommendation", type=click.Choice(["accept", "return"]), default=None)
@click.option("--due", default=None, help="Due date dd/mm/yyyy (schedule).")
@click.option("--explanation", default=None, help="Explanation for outstanding contributions.")
@click.option(
    "--version",
    "expected_version",
    type=int,
    default=None,
    help="Refuse if the instance is no longer at this version.",
)
@json_option
@pass_runtime
def task_fire(
    rt: Runtime,
    instance_id: int,
    event: str,
    as_username: str,
    reason: str | None,
    assessment: str | None,
    findings: str | None,
    recommendation: str | None,
    due: str | None,
    explanation: str | None,
    expected_version: int | None,
    as_json: bool,
) -> None:
    """Fire a lifecycle event; prints the new state, or exits 1 with the refusal."""
    try:
        with rt.session() as session:
            outcome = _engine(rt, session).fire(
                instance_id,
                event,
                _as_user(session, as_username),
                expected_version=expected_version,
                reason=reason,
                assessment=assessment,
                findings=findings,
                recommendation=recommendation,
                due=_parse_date(due),
                explanation=explanation,
            )
    except DomainError as exc:
        fail(exc.code, exc.message)
    emit(outcome.as_dict(), as_json, lambda d: d["after"])


@task_group.command("reassign")
@click.argument("instance_id", type=int)
@as_option
@click.option("--to-user", default=None)
@click.option("--to-unit", default=None)
@click.option("--reason", default="")
@pass_runtime
def task_reassign(
    rt: Runtime,
    instance_id: int,
    as_username: str,
    to_user: str | None,
    to_unit: str | None,
    reason: str,
) -> None:
    """Reassign within the unit (--to-user) or to another unit (--to-unit, with --reason)."""
    try:
        with rt.session() as session:
            target = _as_user(session, to_user) if to_user else None
            instance = _engine(rt, session).reassign(
                instance_id,
                _as_user(session, as_username),
                to_user=target,
                to_unit=to_unit,
                reason=reason,
            )
            unit = instance.unit.code
    except DomainError as exc:
        fail(exc.code, exc.message)
    click.echo(f"Đã phân công lại: {unit}{' / ' + to_user if to_user else ''}")


@main.group("evidence")
def evidence_group() -> None:
    """Evidence files and explanations (giải trình) of a task instance."""


@evidence_group.command("add")
@click.argument("instance_id", type=int)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--product", required=True, help="The product of the task this file proves.")
@as_option
@json_option
@pass_runtime
def evidence_add(
    rt: Runtime, instance_id: int, file: Path, product: str, as_username: str, as_json: bool
) -> None:
    """Attach an evidence file to a product of a task instance."""
    data = file.read_bytes()
    if len(data) > rt.settings.max_upload_bytes:
        fail("file_too_large", f"Tệp vượt quá giới hạn {rt.settings.max_upload_bytes // 2**20} MB.")
    try:
        with rt.session() as session:
            ev = _engine(rt, session).add_evidence(
                instance_id,
                _as_user(session, as_username),
                data=data,
                filename=file.name,
                product=product,
            )
            out = {
                "id": ev.id,
                "sha256": ev.sha256,
                "size": ev.size,
                "media_type": ev.media_type,
                "product": ev.product,
            }
    except DomainError as exc:
        fail(exc.code, exc.message)
    emit(out, as_json, lambda d: f"Đã thêm tài liệu #{d['id']} ({d['sha256']}).")


@evidence_group.command("gc")
@click.option(
    "--delete", is_flag=True, help="Remove the unreferenced files (default: only list them)."
)
@click.option(
    "--min-age-hours",
    type=int,
    default=24,
    show_default=True,
    help="Leave younger files alone: an upload may still be in flight.",
)
@json_option
@pass_runtime
def evidence_gc(rt: Runtime, delete: bool, min_age_hours: int, as_json: bool) -> None:
    """Find evidence files no record points at (left by uploads whose change rolled back)."""
    if min_age_hours < 1:
        fail("invalid_parameter", "--min-age-hours phải từ 1 trở lên.")
    with rt.session() as session:
        found = collect_unreferenced(
            session,
            rt.settings.evidence_dir,
            now=rt.clock.now(),
            min_age=timedelta(hours=min_age_hours),
            delete=delete,
        )
    data = {
        "unreferenced": [
            {"sha256": b.sha256, "size": b.size, "modified": b.modified.isoformat()}
            for b in found.unreferenced
        ],
        "too_recent": found.too_recent,
        "removed": found.removed,
        "removed_bytes": found.removed_bytes,
    }

    def text(d: dict[str, Any]) -> str:
        verb = "đã xóa" if delete else "có thể xóa (chạy lại với --delete)"
        return (
            f"{len(d['unreferenced'])} tệp không còn hồ sơ nào trỏ tới, {verb}; "
            f"{d['too_recent']} tệp mới hơn {min_age_hours} giờ được giữ lại."
        )

    emit(data, as_json, text)


@evidence_group.command("withdraw")
@click.argument("evidence_id", type=int)
@as_option
@pass_runtime
def evidence_withdraw(rt: Runtime, evidence_id: int, as_username: str) -> None:
    """Withdraw one's own evidence before submission."""
    try:
        with rt.session() as session:
            _engine(rt, session).withdraw_evidence(evidence_id, _as_user(session, as_username))
    except DomainError as exc:
        fail(exc.code, exc.message)
    click.echo(f"Đã rút tài liệu #{evidence_id}.")


@evidence_group.command("explain")
@click.argument("instance_id", type=int)
@click.option("--product", required=True)
@click.option("--text", required=True, help="The explanation (giải trình).")
@as_option
@pass_runtime
def evidence_explain(
    rt: Runtime, instance_id: int, product: str, text: str, as_username: str
) -> None:
    """Explain in writing why a product has no evidence file."""
    try:
        with rt.session() as session:
            _engine(rt, session).explain_missing(
                instance_id, _as_user(session, as_username), product=product, text=text
            )
    except DomainError as exc:
        fail(exc.code, exc.message)
    click.echo("Đã ghi giải trình.")


@main.group("contribution")
def contribution_group() -> None:
    """Requests to coordinating units and their answers."""


@contribution_group.command("request")
@click.argument("instance_id", type=int)
@click.option("--unit", "unit_code", required=True)
@click.option("--due", default=None, help="dd/mm/yyyy")
@click.option("--message", default="")
@as_option
@json_option
@pass_runtime
def contribution_request(
    rt: Runtime,
    instance_id: int,
    unit_code: str,
    due: str | None,
    message: str,
    as_username: str,
    as_json: bool,
) -> None:
    """Ask a coordinating unit for a contribution."""
    try:
        with rt.session() as session:
            req = _engine(rt, session).request_contribution(
                instance_id,
                _as_user(session, as_username),
                unit_code=unit_code,
                due=_parse_date(due),
                message=message,
            )
            out = {"id": req.id, "state": req.state}
    except DomainError as exc:
        fail(exc.code, exc.message)
    emit(out, as_json, lambda d: f"Đã gửi đề nghị phối hợp #{d['id']}.")


@contribution_group.command("answer")
@click.argument("request_id", type=int)
@click.option("--provide/--decline", required=True)
@click.option("--note", default="")
@click.option("--reason", default="")
@click.option(
    "--file", "files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@as_option
@pass_runtime
def contribution_answer(
    rt: Runtime,
    request_id: int,
    provide: bool,
    note: str,
    reason: str,
    files: tuple[Path, ...],
    as_username: str,
) -> None:
    """Provide (note and/or files) or decline (with a reason) a contribution request."""
    try:
        with rt.session() as session:
            req = _engine(rt, session).respond_contribution(
                request_id,
                _as_user(session, as_username),
                provide=provide,
                note=note,
                reason=reason,
                files=[(f.name, f.read_bytes()) for f in files],
            )
            state = req.state
    except DomainError as exc:
        fail(exc.code, exc.message)
    click.echo(state)


@main.command("tick")
@click.option("--today", default=None, help="The date to check as of (dd/mm/yyyy); default today.")
@click.option(
    "--due-soon-days",
    type=int,
    default=3,
    show_default=True,
    help="Working days before the due date that count as due soon.",
)
@org_option
@json_option
@pass_runtime
def tick_command(
    rt: Runtime, today: str | None, due_soon_days: int, org_slug: str | None, as_json: bool
) -> None:
    """Send deadline-approaching and overdue alerts, once per instance and threshold."""
    now = rt.clock.now()
    day = _parse_date(today) or ward_date(now)
    with rt.session() as session:
        org = rt.organization(session, org_slug)
        report = tick(
            session,
            org,
            today=day,
            now=now,
            calendar=load_calendar(),
            trail=rt.trail,
            due_soon_days=due_soon_days,
        )
        data = report.as_json()
    emit(
        data,
        as_json,
        lambda d: (
            f"Ngày {day:%d/%m/%Y}: {len(d['due_soon'])} sắp đến hạn, "
            f"{len(d['overdue'])} quá hạn được báo."
        ),
    )


@main.group("notify")
def notify_group() -> None:
    """Notifications from the outbox."""


@notify_group.command("list")
@as_option
@json_option
@pass_runtime
def notify_list(rt: Runtime, as_username: str, as_json: bool) -> None:
    """A person's in-app notifications, newest first."""
    try:
        with rt.session() as session:
            user = _as_user(session, as_username)
            data = [
                {
                    "id": n.id,
                    "event": n.event,
                    "instance": n.instance_id,
                    "message": n.message,
                    "at": n.created_at.isoformat(),
                    "read": n.read_at is not None,
                }
                for n in notifications_for(session, user)
            ]
    except DomainError as exc:
        fail(exc.code, exc.message)
    emit(
        data,
        as_json,
        lambda rows: (
            "\n".join(f"{'  ' if r['read'] else '* '}{r['message']}" for r in rows)
            or "Chưa có thông báo nào."
        ),
    )


@notify_group.command("deliver")
@click.option(
    "--to-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write .eml files there instead of sending (default: instance/outbox, "
    "unless CCHC_SMTP_HOST is set).",
)
@click.option("--limit", type=int, default=100, show_default=True)
@pass_runtime
def notify_deliver(rt: Runtime, to_dir: Path | None, limit: int) -> None:
    """Deliver unsent notifications by e-mail (SMTP from settings) or as files."""
    sender = rt.settings.notification_sender(to_dir)
    with rt.session() as session:
        sent = deliver_pending(session, sender, now=rt.clock.now(), limit=limit)
    click.echo(f"Đã gửi {sent} thông báo.")


@main.group("token")
def token_group() -> None:
    """API tokens (Bearer) for programs."""


@token_group.command("create")
@click.argument("username")
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
@pass_runtime
def token_create(rt: Runtime, username: str, name: str) -> None:
    """Create an API token for USERNAME and print it once (it is stored hashed)."""
    try:
        with rt.session() as session:
            user = _as_user(session, username)
            org = session.get_one(Organization, user.organization_id)
            _row, plaintext = create_token(
                session, org, user, name=name, now=rt.clock.now(), trail=rt.trail, actor=SYSTEM
            )
    except DomainError as exc:
        fail(exc.code, exc.message)
    click.echo(plaintext)


@token_group.command("revoke")
@click.argument("token_id", type=int)
@pass_runtime
def token_revoke(rt: Runtime, token_id: int) -> None:
    """Revoke an API token (by its id)."""
    try:
        with rt.session() as session:
            revoke_token(session, token_id, actor=SYSTEM, now=rt.clock.now(), trail=rt.trail)
    except DomainError as exc:
        fail(exc.code, exc.message)
    click.echo(f"Đã thu hồi mã truy cập #{token_id}.")


# --- users -----------------------------------------------------------------------------------


@main.group("user")
def user_group() -> None:
    """Accounts and roles."""


@user_group.command("list")
@org_option
@json_option
@pass_runtime
def user_list(rt: Runtime, org_slug: str | None, as_json: bool) -> None:
    with rt.session() as session:
        org = rt.organization(session, org_slug)
        data = [
            {
                "username": u.username,
                "full_name": u.full_name,
                "unit": u.unit.code if u.unit else None,
                "roles": u.role_names,
                "active": u.active,
            }
            for u in list_users(session, org)
        ]
    emit(
        data,
        as_json,
        lambda rows: "\n".join(
            f"{r['username']:<18} {r['unit'] or '-':<8} {', '.join(r['roles'])}" for r in rows
        ),
    )


def _read_password() -> str:
    if sys.stdin.isatty():
        password: str = click.prompt("Mật khẩu", hide_input=True, confirmation_prompt=True)
        return password
    return sys.stdin.readline().rstrip("\r\n")


@user_group.command("create")
@click.argument("username")
@click.option("--name", "full_name", required=True, help="Full name (Họ và tên).")
@click.option("--unit", "unit_code", default=None, help="Unit code.")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    help="member, head, reviewer, approver, ward_leader, auditor, admin (repeatable).",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--email", default=None, help="Where notifications are e-mailed.")
@org_option
@json_option
@pass_runtime
def user_create(
    rt: Runtime,
    username: str,
    full_name: str,
    unit_code: str | None,
    roles: tuple[str, ...],
    password_stdin: bool,
    email: str | None,
    org_slug: str | None,
    as_json: bool,
) -> None:
    """Create an account."""
    password = _read_password() if password_stdin else None
    try:
        with rt.session() as session:
            org = rt.organization(session, org_slug)
            unit: Unit | None = None
            if unit_code is not None:
                unit = units_by_code(session, org).get(unit_code.upper())
                if unit is None:
                    raise DomainError("unknown_unit", f"Không có đơn vị mã “{unit_code}”.")
            user = create_user(
                session,
                org,
                username=username,
                full_name=full_name,
                unit=unit,
                roles=roles,
                password=password,
                actor=SYSTEM,
                now=rt.clock.now(),
                trail=rt.trail,
                email=email,
            )
            data = {
                "username": user.username,
                "unit": unit.code if unit else None,
                "roles": user.role_names,
                "email": user.email,
            }
    except DomainError as exc:
        fail(exc.code, exc.message)
    emit(data, as_json, lambda d: f"Đã tạo tài khoản {d['username']}.")


@user_group.command("set-password")
@click.argument("username")
@pass_runtime
def user_set_password(rt: Runtime, username: str) -> None:
    """Set a password, read from standard input."""
    password = _read_password()
    try:
        with rt.session() as session:
            user = find_user(session, username.lower())
            if user is None:
                raise DomainError("unknown_user", f"Không có tài khoản “{username}”.")
            org = session.get_one(Organization, user.organization_id)
            set_password(
                session, org, user, password, actor=SYSTEM, now=rt.clock.now(), trail=rt.trail
            )
    except DomainError as exc:
        fail(exc.code, exc.message)
    click.echo(f"Đã đặt mật khẩu cho {username}.")


@user_group.command("set-email")
@click.argument("username")
@click.argument("email")
@pass_runtime
def user_set_email(rt: Runtime, username: str, email: str) -> None:
    """Record where USERNAME's notifications are e-mailed ("" clears it)."""
    try:
        with rt.session() as session:
            user = find_user(session, username.lower())
            if user is None:
                raise DomainError("unknown_user", f"Không có tài khoản “{username}”.")
            org = session.get_one(Organization, user.organization_id)
            set_email(session, org, user, email, actor=SYSTEM, now=rt.clock.now(), trail=rt.trail)
    except DomainError as exc:
        fail(exc.code, exc.message)
    click.echo(f"Đã cập nhật thư điện tử của {username}.")


# --- audit -----------------------------------------------------------------------------------


def ensure_signing_key(settings: Settings, *, force: bool = False) -> bool:
    """Write a new checkpoint signing key (and its public verifier key) unless one exists."""
    path = settings.signing_key_path
    if path.exists() and not force:
        return False
    private_text, verifier_text = generate_key(AUDIT_KEY_NAME)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(private_text + "\n", encoding="utf-8")
    path.chmod(0o600)
    settings.verifier_key_path.write_text(verifier_text + "\n", encoding="utf-8")
    return True


@main.group("audit")
def audit_group() -> None:
    """The audit log: keys, checkpoints, export, verification, receipts."""


@audit_group.command("keygen")
@click.option(
    "--force",
    is_flag=True,
    help="Replace an existing key (old checkpoints stay valid "
    "only under the old public key: keep it).",
)
@pass_runtime
def audit_keygen(rt: Runtime, force: bool) -> None:
    """Create the Ed25519 key that signs checkpoints (kept outside the database)."""
    if not ensure_signing_key(rt.settings, force=force):
        fail("key_exists", f"Khóa đã tồn tại: {rt.settings.signing_key_path} (dùng --force).")
    click.echo(f"Khóa ký: {rt.settings.signing_key_path}")
    click.echo(f"Khóa công khai (giao cho kiểm toán viên): {rt.settings.verifier_key_path}")


def _signer(rt: Runtime) -> NoteSigner:
    if not rt.settings.signing_key_path.exists():
        fail("no_signing_key", "Chưa có khóa ký nhật ký: chạy `cchc audit keygen` trước.")
    try:
        return load_signer(rt.settings.signing_key_path)
    except CheckpointError as exc:
        fail("bad_signing_key", str(exc))
        raise  # unreachable: fail() exits


@audit_group.command("checkpoint")
@org_option
@json_option
@pass_runtime
def audit_checkpoint(rt: Runtime, org_slug: str | None, as_json: bool) -> None:
    """Sign a checkpoint of the log as it stands now."""
    signer = _signer(rt)
    with rt.session() as session:
        org = rt.organization(session, org_slug)
        checkpoint = Ledger(org.audit_origin).checkpoint(session, signer, now=rt.clock.now())
    data = {
        "origin": org.audit_origin,
        "size": checkpoint.size,
        "root": base64.b64encode(checkpoint.root).decode("ascii"),
        "note": checkpoint.note,
    }
    emit(data, as_json, lambda d: d["note"])


@audit_group.command("export")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--no-checkpoint", is_flag=True, help="Do not sign a checkpoint of the current size.")
@org_option
@json_option
@pass_runtime
def audit_export(
    rt: Runtime, output: Path, no_checkpoint: bool, org_slug: str | None, as_json: bool
) -> None:
    """Export the log (entries, signed checkpoints, public key) for an auditor."""
    signer = _signer(rt)
    try:
        with rt.session() as session:
            org = rt.organization(session, org_slug)
            if not no_checkpoint:
                Ledger(org.audit_origin).checkpoint(session, signer, now=rt.clock.now())
            summary = export_log(session, org.audit_origin, output, signer.verifier().to_text())
    except FileExistsError:
        fail("output_not_empty", f"Thư mục {output} đã có dữ liệu: hãy chọn thư mục trống.")
    data = {
        "origin": summary.origin,
        "size": summary.size,
        "root": base64.b64encode(summary.root).decode("ascii"),
        "checkpoints": summary.checkpoints,
        "directory": str(summary.directory),
    }
    emit(
        data,
        as_json,
        lambda d: (
            f"Đã xuất {d['size']} mục vào {d['directory']} "
            f"({d['checkpoints']} điểm kiểm tra đã ký)."
        ),
    )


@audit_group.command("prove")
@click.argument("seq", type=int)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@org_option
@pass_runtime
def audit_prove(rt: Runtime, seq: int, output: Path, org_slug: str | None) -> None:
    """Write a self-contained receipt proving that entry SEQ is in the signed log."""
    signer = _signer(rt)
    try:
        with rt.session() as session:
            org = rt.organization(session, org_slug)
            text = make_receipt(session, org.audit_origin, seq, signer=signer, now=rt.clock.now())
    except LedgerError as exc:
        fail("no_such_entry", f"Không lập được biên nhận cho mục số {seq}: {exc}")
    output.write_text(text, encoding="utf-8")
    click.echo(f"Đã ghi biên nhận mục số {seq}: {output}")


audit_group.add_command(audit_cli.commands["verify"], "verify")
audit_group.add_command(audit_cli.commands["verify-receipt"], "verify-receipt")


# Evaluation, self-inspection and inspection commands, and `cchc report` (periodic reports),
# register themselves on `main`.
from app import cli_oversight, cli_reports  # noqa: E402, F401
