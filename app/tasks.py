"""The task page: a task instance, its evidence and history, and exactly the actions this
person may take now. Views parse the form, call the engine and show its answer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
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
from werkzeug.wrappers import Response

from app.clock import SystemClock
from app.database import audit_trail, db_session
from workflow.engine import Engine
from workflow.errors import DomainError
from workflow.evidence import LocalEvidenceStore
from workflow.lifecycle import EVENT_LABELS
from workflow.models import Evidence, TaskInstance
from workflow.queries import instance_detail

bp = Blueprint("tasks", __name__)


def _engine() -> Engine:
    settings = current_app.config["CCHC_SETTINGS"]
    return Engine(
        db_session(), audit_trail(), SystemClock(), store=LocalEvidenceStore(settings.evidence_dir)
    )


def _visible(engine: Engine, instance_id: int) -> TaskInstance:
    """The instance, if the engine lets the signed-in person see it (404 otherwise)."""
    try:
        return engine.load_visible(instance_id, current_user.user)
    except DomainError:
        abort(404)


def _date(value: str | None) -> date | None:
    if not value:
        return None
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise DomainError("invalid_date", f"“{value}” không phải ngày hợp lệ (dd/mm/yyyy).")


def _commit_then_show(instance_id: int, change: Callable[[], str]) -> Response:
    """Run one change through the engine and commit it, or roll back and show the engine's
    refusal; either way back to the task page."""
    session = db_session()
    try:
        message = change()
        session.commit()
        flash(message, "ok")
    except DomainError as exc:
        session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("tasks.show", instance_id=instance_id))


def _version() -> int | None:
    value = request.form.get("version", "")
    return int(value) if value.isdigit() else None


@bp.route("/nhiem-vu/<int:instance_id>")
@login_required  # type: ignore[untyped-decorator]
def show(instance_id: int) -> Any:
    engine = _engine()
    instance = _visible(engine, instance_id)
    user = current_user.user
    detail = instance_detail(db_session(), engine, instance, user)
    may = {a: engine.may(a, instance, user) for a in ("add_evidence", "explain")}
    return render_template("task.html", d=detail, labels=EVENT_LABELS, may=may, me=user.username)


@bp.route("/nhiem-vu/<int:instance_id>/thao-tac", methods=["POST"])
@login_required  # type: ignore[untyped-decorator]
def fire(instance_id: int) -> Response:
    engine = _engine()
    _visible(engine, instance_id)
    event = request.form.get("event", "")

    def change() -> str:
        outcome = engine.fire(
            instance_id,
            event,
            current_user.user,
            expected_version=_version(),
            reason=request.form.get("reason"),
            assessment=request.form.get("assessment"),
            findings=request.form.get("findings"),
            recommendation=request.form.get("recommendation"),
            due=_date(request.form.get("due")),
            explanation=request.form.get("explanation"),
        )
        return f"Đã thực hiện: {EVENT_LABELS.get(outcome.event, outcome.event)}."

    return _commit_then_show(instance_id, change)


@bp.route("/nhiem-vu/<int:instance_id>/tai-lieu", methods=["POST"])
@login_required  # type: ignore[untyped-decorator]
def upload(instance_id: int) -> Response:
    engine = _engine()
    _visible(engine, instance_id)
    file = request.files.get("file")

    def change() -> str:
        if file is None or not file.filename:
            raise DomainError("file_required", "Hãy chọn tệp tài liệu để tải lên.")
        engine.add_evidence(
            instance_id,
            current_user.user,
            data=file.read(),
            filename=file.filename,
            product=request.form.get("product", ""),
            expected_version=_version(),
        )
        return "Đã tải lên tài liệu kiểm chứng."

    return _commit_then_show(instance_id, change)


@bp.route("/nhiem-vu/<int:instance_id>/giai-trinh", methods=["POST"])
@login_required  # type: ignore[untyped-decorator]
def explain(instance_id: int) -> Response:
    engine = _engine()
    _visible(engine, instance_id)

    def change() -> str:
        engine.explain_missing(
            instance_id,
            current_user.user,
            product=request.form.get("product", ""),
            text=request.form.get("text", ""),
        )
        return "Đã ghi giải trình."

    return _commit_then_show(instance_id, change)


@bp.route("/tai-lieu/<int:evidence_id>/rut", methods=["POST"])
@login_required  # type: ignore[untyped-decorator]
def withdraw(evidence_id: int) -> Response:
    engine = _engine()
    session = db_session()
    evidence = session.get(Evidence, evidence_id)
    if evidence is None:
        abort(404)
    _visible(engine, evidence.instance_id)

    def change() -> str:
        engine.withdraw_evidence(evidence_id, current_user.user)
        return "Đã rút tài liệu."

    return _commit_then_show(evidence.instance_id, change)


@bp.route("/tai-lieu/<int:evidence_id>")
@login_required  # type: ignore[untyped-decorator]
def download(evidence_id: int) -> Response:
    engine = _engine()
    evidence = db_session().get(Evidence, evidence_id)
    if evidence is None:
        abort(404)
    _visible(engine, evidence.instance_id)
    assert engine.store is not None
    return send_file(
        engine.store.open(evidence.sha256),
        mimetype=evidence.media_type,
        as_attachment=True,
        download_name=evidence.filename,
    )
