"""The auditor's pages: the ward's audit log with filters, one task's timeline, a signed
export as a .zip, one entry's receipt and "verify now". Reading is not audited; a checkpoint
signed here is stored by the ledger itself, and the request commits it once at the end."""

from __future__ import annotations

import json
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from app.auth import login_manager
from app.clock import SystemClock
from app.database import audit_trail, db_session
from audit.checkpoint import CheckpointError, NoteSigner, load_verifier
from audit.export import export_log
from audit.ledger import EntryView, Ledger, LedgerError
from audit.receipt import make_receipt
from audit.verify import KINDS, verify_export
from workflow.clock import WARD_TZ
from workflow.engine import Engine
from workflow.errors import DomainError
from workflow.models import CoordinationRequest, Organization, Unit
from workflow.queries import list_users
from workflow.states import ROLE_LABELS, Role

bp = Blueprint("auditor", __name__, url_prefix="/kiem-toan")

PER_PAGE = 50
NO_SIGNING_KEY = (
    "Chưa có khóa ký nhật ký kiểm toán trên máy chủ: quản trị viên cần chạy "
    "`cchc audit keygen` rồi khởi động lại ứng dụng. Chưa thể ký điểm kiểm tra, "
    "xuất nhật ký hay lập biên nhận."
)
NO_VERIFIER_KEY = (
    "Chưa có khóa công khai để kiểm chứng nhật ký: quản trị viên cần chạy "
    "`cchc audit keygen` trên máy chủ."
)


@bp.before_request
def _auditors_only() -> Any:
    """Every page here: signed in, and the engine lets this person open the audit area."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    refusal = Engine.may_open("audit", current_user.user)
    if refusal is not None:
        return render_template("audit_refused.html", message=refusal.message), 403
    return None


@bp.app_template_filter("audit_time")
def audit_time(value: datetime) -> str:
    """An instant as people in the ward read it: dd/mm/yyyy HH:MM, Asia/Ho_Chi_Minh."""
    return value.astimezone(WARD_TZ).strftime("%d/%m/%Y %H:%M")


def _ward() -> Organization:
    return db_session().get_one(Organization, current_user.user.organization_id)


def _ledger(org: Organization) -> Ledger:
    return audit_trail().ledger(org)


def _signer() -> NoteSigner | None:
    return audit_trail().signer


def _verifier_text() -> str | None:
    """The public key that checks this deployment's checkpoints: the signer's, else the
    verifier key file beside where the signing key belongs."""
    signer = _signer()
    if signer is not None:
        return signer.verifier().to_text()
    path = current_app.config["CCHC_SETTINGS"].verifier_key_path
    if not path.is_file():
        return None
    try:
        return load_verifier(path).to_text()
    except CheckpointError:
        return None


# --- the log ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogFilter:
    unit: str | None = None
    user: str | None = None
    action: str | None = None
    since: date | None = None
    until: date | None = None  # inclusive: the whole day

    def query(self) -> dict[str, Any]:
        """Arguments for Ledger.entries: days are Vietnamese calendar days."""
        since = datetime.combine(self.since, time(), WARD_TZ) if self.since else None
        until = (
            datetime.combine(self.until + timedelta(days=1), time(), WARD_TZ)
            if self.until
            else None
        )
        return {
            "unit": self.unit,
            "user": self.user,
            "action": self.action,
            "since": since,
            "until": until,
        }

    def args(self) -> dict[str, str]:
        """The filter as query-string arguments (for the pager's links)."""
        values = {
            "unit": self.unit,
            "user": self.user,
            "action": self.action,
            "from": self.since.strftime("%d/%m/%Y") if self.since else None,
            "to": self.until.strftime("%d/%m/%Y") if self.until else None,
        }
        return {k: v for k, v in values.items() if v}


def _day(value: str | None, label: str) -> date | None:
    value = (value or "").strip()
    if not value:
        return None
    for fmt in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise DomainError("invalid_date", f"{label} “{value}” không phải ngày hợp lệ (dd/mm/yyyy).")


def _text(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _log_filter(args: Any) -> LogFilter:
    since = _day(args.get("from"), "Từ ngày")
    until = _day(args.get("to"), "Đến ngày")
    if since and until and until < since:
        raise DomainError("invalid_range", "“Đến ngày” phải sau hoặc bằng “Từ ngày”.")
    return LogFilter(
        unit=_text(args.get("unit")),
        user=_text(args.get("user")),
        action=_text(args.get("action")),
        since=since,
        until=until,
    )


def _page_number(value: str | None) -> int:
    return int(value) if value and value.isdigit() and int(value) > 0 else 1


def _object_link(entry: EntryView) -> str | None:
    if entry.object_type == "task_instance" and entry.object_id.isdigit():
        return url_for("auditor.timeline", instance_id=int(entry.object_id))
    return None


# Roles the log records besides the people's roles: the system itself, and sign-in entries.
_OTHER_ROLE_LABELS = {"system": "Hệ thống", "user": "Người dùng (đăng nhập)"}


def _role_label(role: str | None) -> str:
    if role is None:
        return "—"
    try:
        return ROLE_LABELS[Role(role)]
    except ValueError:
        return _OTHER_ROLE_LABELS.get(role, role)


@bp.route("")
def log() -> Any:
    session = db_session()
    org = _ward()
    error = None
    try:
        chosen = _log_filter(request.args)
    except DomainError as exc:
        error, chosen = exc.message, LogFilter()
    page = None
    if error is None:
        page = _ledger(org).entries(
            session,
            page=_page_number(request.args.get("page")),
            per_page=PER_PAGE,
            **chosen.query(),
        )
    units = session.scalars(select(Unit).where(Unit.organization_id == org.id).order_by(Unit.code))
    rows = [
        {
            "entry": e,
            "role": _role_label(e.actor_role),
            "link": _object_link(e),
        }
        for e in (page.items if page else [])
    ]
    return render_template(
        "audit_log.html",
        org=org,
        page=page,
        rows=rows,
        error=error,
        chosen=chosen,
        pager_args=chosen.args(),
        units=list(units),
        users=list_users(session, org),
        signer=_signer() is not None,
    ), (400 if error else 200)


# --- one task's timeline ------------------------------------------------------------------


def _pretty(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)


@bp.route("/nhiem-vu/<int:instance_id>")
def timeline(instance_id: int) -> Any:
    session = db_session()
    engine = Engine(session, audit_trail(), SystemClock())
    try:
        instance = engine.load_visible(instance_id, current_user.user)
    except DomainError:
        abort(404)
    org = _ward()
    ledger = _ledger(org)
    history = ledger.history(session, "task_instance", instance.id)
    requests = session.scalars(
        select(CoordinationRequest.id).where(CoordinationRequest.instance_id == instance.id)
    )
    for request_id in requests:
        history += ledger.history(session, "coordination_request", request_id)
    history.sort(key=lambda entry: entry.seq)
    events = []
    for entry in history:
        body = entry.content()
        events.append(
            {
                "entry": entry,
                "role": _role_label(entry.actor_role),
                "before": _pretty(body.get("before")),
                "after": _pretty(body.get("after")),
                "details": _pretty(body.get("details")),
                "leaf": entry.leaf_hash.hex(),
            }
        )
    return render_template("audit_timeline.html", instance=instance, events=events)


# --- export, receipts, the public key ---------------------------------------------------------


def _zip_folder(folder: Path, top: str) -> IO[bytes]:
    """The folder as a zip (under one top-level folder) in an unnamed temporary file."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 - send_file closes it after the response
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{top}/{path.relative_to(folder).as_posix()}")
    out.seek(0)
    return out


@bp.route("/xuat", methods=["POST"])
def export() -> Any:
    """Sign a checkpoint of the log as it stands, then send the export folder as a .zip."""
    signer = _signer()
    if signer is None:
        flash(NO_SIGNING_KEY, "error")
        return redirect(url_for("auditor.log"))
    session = db_session()
    org = _ward()
    checkpoint = _ledger(org).checkpoint(session, signer, now=SystemClock().now())
    top = f"nhat-ky-kiem-toan-{org.slug}-{checkpoint.size}"
    with tempfile.TemporaryDirectory(prefix="cchc-export-") as tmp:
        folder = Path(tmp) / top
        export_log(session, org.audit_origin, folder, signer.verifier().to_text())
        archive = _zip_folder(folder, top)
    session.commit()
    return send_file(
        archive, mimetype="application/zip", as_attachment=True, download_name=f"{top}.zip"
    )


@bp.route("/bien-nhan/<int:seq>")
def receipt(seq: int) -> Any:
    """One entry's receipt: proved against the latest stored checkpoint that covers it; when
    none does yet, a checkpoint of the current log is signed (and kept) first."""
    session = db_session()
    org = _ward()
    ledger = _ledger(org)
    if not 0 <= seq < ledger.size(session):
        abort(404)
    checkpoint = ledger.latest_checkpoint(session, covering=seq + 1)
    if checkpoint is None:
        signer = _signer()
        if signer is None:
            flash(NO_SIGNING_KEY, "error")
            return redirect(url_for("auditor.log"))
        checkpoint = ledger.checkpoint(session, signer, now=SystemClock().now())
    text = make_receipt(session, org.audit_origin, seq, checkpoint=checkpoint)
    session.commit()
    return Response(
        text,
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="bien-nhan-muc-{seq}.json"'},
    )


@bp.route("/khoa-cong-khai")
def public_key() -> Any:
    """The verifier key that checks checkpoints and receipts (auditors should also obtain it
    through another channel)."""
    text = _verifier_text()
    if text is None:
        flash(NO_VERIFIER_KEY, "error")
        return redirect(url_for("auditor.log"))
    return Response(
        text + "\n",
        mimetype="text/plain",
        headers={"Content-Disposition": 'attachment; filename="verifier.vkey"'},
    )


# --- verify now -------------------------------------------------------------------------------


@bp.route("/kiem-chung", methods=["GET", "POST"])
def verify() -> Any:
    """GET explains; POST exports the current log to a temporary folder and runs the
    standalone verifier on it, exactly as an outside auditor would."""
    outcome = None
    error = None
    if request.method == "POST":
        verifier_text = _verifier_text()
        if verifier_text is None:
            error = NO_VERIFIER_KEY
        else:
            session = db_session()
            org = _ward()
            with tempfile.TemporaryDirectory(prefix="cchc-verify-") as tmp:
                folder = Path(tmp) / "export"
                try:
                    export_log(session, org.audit_origin, folder, verifier_text)
                except LedgerError:
                    error = "Nhật ký của phường chưa có mục nào để kiểm chứng."
                else:
                    report = verify_export(folder, verifier_text)
                    problem = report.problem
                    outcome = {
                        "report": report,
                        "root": report.root.hex(),
                        "kind": KINDS.get(problem.kind, problem.kind) if problem else None,
                    }
            session.rollback()  # nothing was written: reading is not audited
    return render_template("audit_verify.html", outcome=outcome, error=error)
