"""The periodic reports page (/bao-cao): the reporting calendar with each period's due date and
status, a form to generate a report (Word, Excel or PDF) with the difficulties and proposals
VHXH writes, and the reports generated so far (from the audit log) to download again. Who may
generate or read is decided by workflow.permissions.report_refusal."""

from __future__ import annotations

import functools
import io
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user, login_required

from app.clock import SystemClock
from app.dashboard import parse_day, ward_today, working_calendar
from app.database import audit_trail, db_session
from audit.ledger import Ledger
from definitions.rubric import Rubric, load_rubric
from workflow.documents import render
from workflow.engine import person_of
from workflow.errors import DomainError
from workflow.evidence import LocalEvidenceStore
from workflow.models import Organization
from workflow.periodic import (
    FORMATS,
    GENERATED_ACTION,
    REPORT_KINDS,
    generate_report,
    generated_reports,
    report_deadlines,
)
from workflow.permissions import report_refusal
from workflow.reports import current_plan, plan_definition

bp = Blueprint("reports", __name__)

KIND_LABELS = {"quarter": "Báo cáo quý", "half-year": "Báo cáo 6 tháng", "year": "Báo cáo năm"}
FORMAT_LABELS = {"docx": "Word (.docx)", "xlsx": "Excel (.xlsx) - phụ lục", "pdf": "PDF"}
STATUS_LABELS = {
    "done": "Đã lập",
    "overdue": "Quá hạn",
    "due_soon": "Sắp đến hạn",
    "on_time": "Trong hạn",
}


@functools.cache
def scoring_rubric() -> Rubric:
    return load_rubric()


def now() -> datetime:
    """The wall clock, read at the request boundary (tests pin it)."""
    return SystemClock().now()


def _store() -> LocalEvidenceStore:
    return LocalEvidenceStore(current_app.config["CCHC_SETTINGS"].evidence_dir)


def _visit(action: str) -> tuple[Any, Organization, DomainError | None]:
    user = current_user.user
    session = db_session()
    org = session.get_one(Organization, user.organization_id)
    return user, org, report_refusal(action, person_of(user), org.id)


def _page(org: Organization, user: Any, status: int = 200, **form: Any) -> Any:
    session = db_session()
    plan = current_plan(session, org)
    definition = plan_definition(plan) if plan is not None else None
    today = ward_today()
    deadlines = report_deadlines(session, org, definition, today=today, calendar=working_calendar())
    may_generate = report_refusal("generate_report", person_of(user), org.id) is None
    page = render_template(
        "reports/index.html",
        refused=None,
        today=today,
        year=plan.year if plan is not None else today.year,
        deadlines=deadlines,
        generated=generated_reports(session, org),
        may_generate=may_generate,
        kinds=REPORT_KINDS,
        kind_labels=KIND_LABELS,
        formats=FORMATS,
        format_labels=FORMAT_LABELS,
        status_labels=STATUS_LABELS,
        form=form,
    )
    return page, status


@bp.route("/bao-cao")
@login_required  # type: ignore[untyped-decorator]
def index() -> Any:
    user, org, refused = _visit("read_reports")
    if refused is not None:
        return render_template("reports/index.html", refused=refused.message), 403
    return _page(org, user)


@bp.route("/bao-cao", methods=["POST"])
@login_required  # type: ignore[untyped-decorator]
def generate() -> Any:
    user, org, refused = _visit("generate_report")
    if refused is not None:
        return render_template("reports/index.html", refused=refused.message), 403
    form = request.form
    kind = form.get("kind", "")
    fmt = form.get("format", "docx")
    difficulties = form.get("difficulties", "")
    quarter_text = form.get("quarter", "").strip()
    as_of_text = form.get("as_of", "").strip()
    as_of = parse_day(as_of_text) if as_of_text else None
    try:
        if as_of_text and as_of is None:
            raise DomainError(
                "invalid_date", f"“{as_of_text}” không phải ngày hợp lệ (dd/mm/yyyy)."
            )
        year = int(form.get("year", "0"))
        quarter = int(quarter_text) if kind == "quarter" and quarter_text else None
    except (ValueError, DomainError) as exc:
        message = exc.message if isinstance(exc, DomainError) else "Năm hoặc quý không hợp lệ."
        flash(message, "error")
        return _page(org, user, 400, **form)
    session = db_session()
    try:
        made = generate_report(
            session,
            org,
            user,
            kind=kind,
            year=year,
            quarter=quarter,
            fmt=fmt,
            as_of=as_of,
            today=ward_today(),
            now=now(),
            difficulties=difficulties,
            calendar=working_calendar(),
            rubric=scoring_rubric(),
            trail=audit_trail(),
            render=render,
            store=_store(),
        )
        session.commit()
    except DomainError as exc:
        session.rollback()
        flash(exc.message, "error")
        return _page(org, user, 409 if exc.code == "pdf_unavailable" else 400, **form)
    return send_file(
        io.BytesIO(made.data),
        mimetype=made.media_type,
        as_attachment=True,
        download_name=made.filename,
    )


@bp.route("/bao-cao/tep/<int:seq>")
@login_required  # type: ignore[untyped-decorator]
def download(seq: int) -> Any:
    """A report generated earlier, by its audit entry's number."""
    _user, org, refused = _visit("read_reports")
    if refused is not None:
        abort(403)
    session = db_session()
    ledger = Ledger(org.audit_origin)
    if seq < 0 or seq >= ledger.size(session):
        abort(404)
    entry = ledger.entry(session, seq).content()
    details = entry.get("details") or {}
    if entry.get("action") != GENERATED_ACTION or details.get("format") not in FORMATS:
        abort(404)
    try:
        with _store().open(str(details["sha256"])) as stored:
            blob = io.BytesIO(stored.read())
    except (FileNotFoundError, ValueError, KeyError):
        flash("Không còn tệp của báo cáo này; hãy lập lại báo cáo.", "error")
        return redirect(url_for("reports.index"))
    return send_file(
        blob,
        mimetype=FORMATS[details["format"]],
        as_attachment=True,
        download_name=str(details.get("filename") or f"bao-cao.{details['format']}"),
    )


@bp.app_context_processor
def _navigation() -> dict[str, Any]:
    """`can_report()` for the menu: workflow.permissions decides, the menu obeys."""

    def can_report() -> bool:
        if not current_user.is_authenticated:
            return False
        user = current_user.user
        return report_refusal("read_reports", person_of(user), user.organization_id) is None

    return {"can_report": can_report}
