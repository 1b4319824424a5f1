"""The JSON API under /api/v1: what the pages do, for programs. Each view parses its input,
calls the engine (which alone decides who may do what), commits once and answers JSON;
every refusal has the one error shape {"error": {"code", "message"}}. The routes and their
schemas are described in app/openapi.py, and a test keeps the two in step."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, g, request, send_file, url_for
from flask.blueprints import BlueprintSetupState
from flask_wtf.csrf import generate_csrf
from werkzeug.exceptions import HTTPException, InternalServerError, default_exceptions
from werkzeug.routing import RequestRedirect
from werkzeug.wrappers import Response

from app import openapi
from app.api_support import (
    ID,
    Fields,
    caller,
    clean_text,
    domain_error_response,
    error_response,
    http_error_response,
    identify_caller,
    json_body,
    json_response,
    require_multipart,
    ward_day_end,
    ward_day_start,
)
from app.clock import SystemClock
from app.database import audit_trail, db_session
from app.notices import AUDIT_MISMATCH_ON_WEB
from audit.ledger import CommittedMismatchError, EntryView, Ledger
from workflow.engine import Engine, Outcome
from workflow.errors import DomainError
from workflow.evidence import LocalEvidenceStore
from workflow.models import (
    ApiToken,
    CoordinationRequest,
    Evidence,
    Notification,
    Organization,
    TaskInstance,
    Unit,
    User,
)
from workflow.queries import (
    instance_detail,
    list_instances,
    mark_read,
    notifications_for,
    unread_count,
)
from workflow.states import TaskState
from workflow.tokens import NAME_MAX_LENGTH, create_token, revoke_token, tokens_of

bp = Blueprint("api", __name__)
_PREFIX_KEY = "cchc.api_prefix"
_PUBLIC_ENDPOINTS = {"api.openapi_document"}


@bp.record_once
def _registered(state: BlueprintSetupState) -> None:
    # The API authenticates and checks CSRF itself (bearer tokens need none); the app's
    # global CSRFProtect must leave its requests alone.
    csrf = state.app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(bp)
    state.app.extensions[_PREFIX_KEY] = (state.url_prefix or "").rstrip("/")


def api_prefix() -> str:
    prefix: str = current_app.extensions.get(_PREFIX_KEY, "")
    return prefix


# --- errors: one shape, never a 500 for bad input -----------------------------------------


@bp.errorhandler(DomainError)
def _domain_error(error: DomainError) -> Response:
    db_session().rollback()
    return domain_error_response(error)


def _http_error(error: HTTPException) -> Response:
    db_session().rollback()
    return http_error_response(error)


# One handler per status code: a blueprint's handler for a code is found before the app's
# (the app answers 413 in Vietnamese text for its pages), a handler for the base class is not.
for _code in default_exceptions:
    if _code != 500:
        bp.register_error_handler(_code, _http_error)


@bp.errorhandler(InternalServerError)
def _server_error(error: InternalServerError) -> Response:
    # A fault of ours, not of the input: Flask has logged it; the session is rolled back
    # when the request ends. An audit entry stored otherwise than prepared comes after the
    # COMMIT: the change is saved, and must not be sent again.
    if isinstance(error.original_exception, CommittedMismatchError):
        return error_response(500, "audit_mismatch", AUDIT_MISMATCH_ON_WEB)
    return error_response(500, "internal_error", "Lỗi máy chủ. Vui lòng thử lại sau.")


@bp.before_app_request
def _unrouted_api_request() -> Response | None:
    """An unknown address or method under the API's prefix answers in the API's shape (no
    blueprint handles a request that matched no route)."""
    error = request.routing_exception
    prefix = api_prefix()
    if error is None or isinstance(error, RequestRedirect) or not prefix:
        return None
    under_api = request.path == prefix or request.path.startswith(prefix + "/")
    if not under_api or not isinstance(error, HTTPException):
        return None
    return http_error_response(error)


@bp.before_request
def _authenticate() -> None:
    if request.endpoint in _PUBLIC_ENDPOINTS or request.method == "OPTIONS":
        return
    g.api_user = identify_caller()


@bp.after_request
def _no_store(response: Response) -> Response:
    # Answers depend on who asks: no shared cache may keep them.
    response.headers.setdefault("Cache-Control", "no-store")
    return response


# --- helpers ----------------------------------------------------------------------------


def _engine() -> Engine:
    settings = current_app.config["CCHC_SETTINGS"]
    return Engine(
        db_session(), audit_trail(), SystemClock(), store=LocalEvidenceStore(settings.evidence_dir)
    )


def _organization(user: User) -> Organization:
    return db_session().get_one(Organization, user.organization_id)


def _visible(engine: Engine, instance_id: int) -> TaskInstance:
    """The instance if the engine lets the caller see it (another ward's is "not found")."""
    return engine.load_visible(instance_id, caller())


def _evidence(engine: Engine, evidence_id: int) -> Evidence:
    evidence = db_session().get(Evidence, evidence_id)
    if evidence is None:
        raise DomainError("not_found", f"Không tìm thấy tài liệu số {evidence_id}.")
    _visible(engine, evidence.instance_id)
    return evidence


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _username(user_id: int | None) -> str | None:
    if user_id is None:
        return None
    user = db_session().get(User, user_id)
    return user.username if user else None


def _evidence_json(evidence: Evidence) -> dict[str, Any]:
    return {
        "id": evidence.id,
        "instance_id": evidence.instance_id,
        "product": evidence.product,
        "filename": evidence.filename,
        "sha256": evidence.sha256,
        "size": evidence.size,
        "media_type": evidence.media_type,
        "uploader": _username(evidence.uploader_id),
        "created_at": _iso(evidence.created_at),
        "withdrawn_at": _iso(evidence.withdrawn_at),
        "download": url_for("api.download_evidence", evidence_id=evidence.id),
    }


def _request_json(req: CoordinationRequest, unit: str) -> dict[str, Any]:
    return {
        "id": req.id,
        "instance_id": req.instance_id,
        "unit": unit,
        "state": req.state,
        "due": req.due_date.isoformat() if req.due_date else None,
        "message": req.message,
        "decline_reason": req.decline_reason,
    }


def _token_json(token: ApiToken, now: datetime) -> dict[str, Any]:
    live = token.revoked_at is None and (token.expires_at is None or token.expires_at > now)
    return {
        "id": token.id,
        "name": token.name,
        "prefix": token.prefix,
        "created_at": _iso(token.created_at),
        "expires_at": _iso(token.expires_at),
        "revoked_at": _iso(token.revoked_at),
        "active": live,
    }


def _notification_json(n: Notification) -> dict[str, Any]:
    return {
        "id": n.id,
        "event": n.event,
        "instance_id": n.instance_id,
        "message": n.message,
        "created_at": _iso(n.created_at),
        "read": n.read_at is not None,
    }


def _entry_json(entry: EntryView) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.created_at.isoformat(),
        "actor": {"user": entry.actor_user, "unit": entry.actor_unit, "role": entry.actor_role},
        "action": entry.action,
        "object": {"type": entry.object_type, "id": entry.object_id},
        "leaf_hash": entry.leaf_hash.hex(),
        "body": entry.content(),
    }


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    return outcome.as_dict()


def _query() -> Fields:
    return Fields(request.args, typed=False, error="invalid_parameter")


def _audit_ledger_for(user: User) -> Ledger:
    """The caller's ward's log, if the engine lets them open the audit area."""
    refused = Engine.may_open("audit", user)
    if refused is not None:
        raise refused
    return audit_trail().ledger(_organization(user))


# --- the document and the session helpers -------------------------------------------------


@bp.get("/openapi.json")
def openapi_document() -> Response:
    return json_response(openapi.document(server_url=request.script_root + api_prefix()))


@bp.get("/me")
def me() -> Response:
    user = caller()
    areas = ("review_queue", "dashboard", "audit", "admin")
    return json_response(
        {
            "username": user.username,
            "full_name": user.full_name,
            "unit": user.unit.code if user.unit else None,
            "roles": user.role_names,
            "organization": _organization(user).slug,
            "areas": {area: Engine.may_open(area, user) is None for area in areas},
        }
    )


@bp.get("/csrf-token")
def csrf_token() -> Response:
    """The token a signed-in browser sends back in X-CSRFToken on unsafe requests."""
    return json_response({"csrf_token": generate_csrf(), "header": "X-CSRFToken"})


# --- task instances -----------------------------------------------------------------------


@bp.get("/instances")
def instances() -> Response:
    user = caller()
    query = _query()
    unit = query.text("unit", max_length=32)
    state = query.choice("state", [s.value for s in TaskState])
    number = query.integer("number", minimum=1, maximum=1_000_000)
    rows = list_instances(db_session(), _organization(user), unit=unit, state=state, number=number)
    return json_response({"items": [row.as_json() for row in rows]})


@bp.get(f"/instances/<{ID}:instance_id>")
def instance(instance_id: int) -> Response:
    engine = _engine()
    user = caller()
    found = _visible(engine, instance_id)
    detail = instance_detail(db_session(), engine, found, user)
    detail["may"] = {
        action: engine.may(action, found, user)
        for action in ("add_evidence", "explain", "request_contribution")
    }
    return json_response(detail)


_FIRE_FIELDS = {
    "event",
    "expected_version",
    "reason",
    "assessment",
    "findings",
    "recommendation",
    "due",
    "explanation",
}


@bp.post(f"/instances/<{ID}:instance_id>/events")
def fire(instance_id: int) -> Response:
    engine = _engine()
    _visible(engine, instance_id)
    body = Fields(json_body(), typed=True, allowed=_FIRE_FIELDS)
    outcome = engine.fire(
        instance_id,
        body.required_text("event", max_length=64),
        caller(),
        expected_version=body.integer("expected_version"),
        reason=body.text("reason"),
        assessment=body.text("assessment"),
        findings=body.text("findings"),
        recommendation=body.text("recommendation", max_length=64),
        due=body.day("due"),
        explanation=body.text("explanation"),
    )
    db_session().commit()
    return json_response(_outcome_json(outcome))


# --- evidence -----------------------------------------------------------------------------


def _upload_limit() -> int:
    limit: int = current_app.config["CCHC_SETTINGS"].max_upload_bytes
    return limit


def _file_too_large() -> DomainError:
    return DomainError(
        "file_too_large", f"Tệp vượt quá giới hạn {_upload_limit() // (1024 * 1024)} MB."
    )


@bp.post(f"/instances/<{ID}:instance_id>/evidence")
def upload_evidence(instance_id: int) -> Response:
    engine = _engine()
    _visible(engine, instance_id)
    require_multipart()
    form = Fields(request.form, typed=False, allowed={"product", "expected_version"})
    product = form.required_text("product", max_length=1000)
    expected_version = form.integer("expected_version")
    unknown_files = sorted(str(name) for name in set(request.files) - {"file"})
    if unknown_files:
        raise DomainError("invalid_body", f"Trường tệp không được hỗ trợ: {unknown_files[0]}.")
    upload = request.files.get("file")
    if upload is None:
        raise DomainError("invalid_body", "Trường “file” là bắt buộc.")
    data = upload.read(_upload_limit() + 1)
    if len(data) > _upload_limit():
        raise _file_too_large()
    evidence = engine.add_evidence(
        instance_id,
        caller(),
        data=data,
        filename=upload.filename or "",  # only ever displayed (the engine cleans it)
        product=product,
        expected_version=expected_version,
    )
    db_session().commit()
    location = url_for("api.download_evidence", evidence_id=evidence.id)
    return json_response(_evidence_json(evidence), 201, {"Location": location})


@bp.get(f"/evidence/<{ID}:evidence_id>/download")
def download_evidence(evidence_id: int) -> Response:
    engine = _engine()
    evidence = _evidence(engine, evidence_id)
    assert engine.store is not None
    # Read whole (at most the upload limit): the file is closed here, whether or not the
    # client reads the body to its end.
    with engine.store.open(evidence.sha256) as blob:
        content = blob.read()
    response = send_file(
        io.BytesIO(content),
        mimetype=evidence.media_type,
        as_attachment=True,
        download_name=evidence.filename,
        etag=evidence.sha256,
        conditional=False,
    )
    response.headers["X-Content-SHA256"] = evidence.sha256
    return response


@bp.post(f"/evidence/<{ID}:evidence_id>/withdraw")
def withdraw_evidence(evidence_id: int) -> Response:
    engine = _engine()
    _evidence(engine, evidence_id)
    evidence = engine.withdraw_evidence(evidence_id, caller())
    db_session().commit()
    return json_response(_evidence_json(evidence))


@bp.post(f"/instances/<{ID}:instance_id>/explanations")
def explain(instance_id: int) -> Response:
    engine = _engine()
    _visible(engine, instance_id)
    body = Fields(json_body(), typed=True, allowed={"product", "text"})
    remark = engine.explain_missing(
        instance_id,
        caller(),
        product=body.required_text("product", max_length=1000),
        text=body.required_text("text"),
    )
    db_session().commit()
    return json_response(
        {
            "id": remark.id,
            "instance_id": remark.instance_id,
            "product": remark.product,
            "text": remark.body,
            "author": caller().username,
            "created_at": _iso(remark.created_at),
        },
        201,
    )


# --- contributions of coordinating units ----------------------------------------------------


@bp.post(f"/instances/<{ID}:instance_id>/contributions")
def request_contribution(instance_id: int) -> Response:
    engine = _engine()
    _visible(engine, instance_id)
    body = Fields(json_body(), typed=True, allowed={"unit", "due", "message"})
    req = engine.request_contribution(
        instance_id,
        caller(),
        unit_code=body.required_text("unit", max_length=32),
        due=body.day("due"),
        message=body.text("message") or "",
    )
    session = db_session()
    session.commit()
    asked = session.get_one(Unit, req.unit_id)
    return json_response(_request_json(req, asked.code), 201)


@bp.post(f"/contributions/<{ID}:request_id>/answer")
def answer_contribution(request_id: int) -> Response:
    engine = _engine()
    session = db_session()
    req = session.get(CoordinationRequest, request_id)
    if req is None:
        raise DomainError("not_found", f"Không tìm thấy đề nghị phối hợp số {request_id}.")
    _visible(engine, req.instance_id)
    allowed = {"provide", "note", "reason"}
    files: list[tuple[str, bytes]] = []
    if request.mimetype == "multipart/form-data":
        fields = Fields(request.form, typed=False, allowed=allowed)
        unknown_files = sorted(str(name) for name in set(request.files) - {"files"})
        if unknown_files:
            raise DomainError("invalid_body", f"Trường tệp không được hỗ trợ: {unknown_files[0]}.")
        for upload in request.files.getlist("files"):
            data = upload.read(_upload_limit() + 1)
            if len(data) > _upload_limit():
                raise _file_too_large()
            files.append((upload.filename or "", data))
    else:
        fields = Fields(json_body(), typed=True, allowed=allowed)
    answered = engine.respond_contribution(
        request_id,
        caller(),
        provide=fields.required_boolean("provide"),
        note=fields.text("note") or "",
        reason=fields.text("reason") or "",
        files=files,
    )
    session.commit()
    asked = session.get_one(Unit, answered.unit_id)
    return json_response(_request_json(answered, asked.code))


# --- notifications ------------------------------------------------------------------------


@bp.get("/notifications")
def notifications() -> Response:
    user = caller()
    limit = _query().integer("limit", minimum=1, maximum=500) or 50
    session = db_session()
    return json_response(
        {
            "unread": unread_count(session, user),
            "items": [_notification_json(n) for n in notifications_for(session, user, limit=limit)],
        }
    )


@bp.post("/notifications/read")
def read_notifications() -> Response:
    session = db_session()
    marked = mark_read(session, caller(), now=SystemClock().now())
    session.commit()
    return json_response({"marked": marked})


# --- the audit log ------------------------------------------------------------------------


@bp.get("/audit/entries")
def audit_entries() -> Response:
    user = caller()
    ledger = _audit_ledger_for(user)
    query = _query()
    filters = {name: query.text(name, max_length=128) for name in ("unit", "user", "action")}
    object_type = query.text("object_type", max_length=64)
    since, until = query.day("since"), query.day("until")
    page = query.integer("page", minimum=1, maximum=1_000_000) or 1
    per_page = query.integer("per_page", minimum=1, maximum=1000) or 50
    result = ledger.entries(
        db_session(),
        unit=filters["unit"],
        user=filters["user"],
        action=filters["action"],
        object_type=object_type,
        since=ward_day_start(since) if since else None,
        until=ward_day_end(until) if until else None,
        page=page,
        per_page=per_page,
    )
    return json_response(
        {
            "items": [_entry_json(e) for e in result.items],
            "page": result.page,
            "per_page": result.per_page,
            "total": result.total,
            "pages": result.pages,
        }
    )


@bp.get("/audit/history/<object_type>/<object_id>")
def audit_history(object_type: str, object_id: str) -> Response:
    user = caller()
    ledger = _audit_ledger_for(user)
    kind = clean_text(object_type, "object_type", max_length=64)
    key = clean_text(object_id, "object_id", max_length=128)
    entries = ledger.history(db_session(), kind, key)
    return json_response({"items": [_entry_json(e) for e in entries]})


# --- the caller's own API tokens ------------------------------------------------------------


@bp.get("/tokens")
def tokens() -> Response:
    now = SystemClock().now()
    return json_response(
        {"items": [_token_json(t, now) for t in tokens_of(db_session(), caller())]}
    )


@bp.post("/tokens")
def create_api_token() -> Response:
    user = caller()
    body = Fields(json_body(), typed=True, allowed={"name", "expires_on"})
    name = body.required_text("name", max_length=NAME_MAX_LENGTH)
    expires_on = body.day("expires_on")
    session = db_session()
    now = SystemClock().now()
    token, plaintext = create_token(
        session,
        _organization(user),
        user,
        name=name,
        now=now,
        trail=audit_trail(),
        expires_at=ward_day_end(expires_on) if expires_on else None,
    )
    session.commit()
    return json_response({"token": plaintext, **_token_json(token, now)}, 201)


@bp.delete(f"/tokens/<{ID}:token_id>")
def revoke_api_token(token_id: int) -> Response:
    session = db_session()
    now = SystemClock().now()
    token = revoke_token(session, token_id, actor=caller(), now=now, trail=audit_trail())
    session.commit()
    return json_response(_token_json(token, now))


# The oversight routes (evaluation, self-inspection coverage, inspection draws) register
# themselves on `bp`.
from app import api_oversight  # noqa: E402, F401
