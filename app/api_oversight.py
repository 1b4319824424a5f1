"""/api/v1 routes of the evaluation, the self-inspection coverage and the inspection draws:
what the oversight pages show, for programs. Registered on the API blueprint by app/api.py;
described in app/openapi.py. Each view parses input, calls workflow/ and answers JSON."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from flask import request
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app.api import bp
from app.api_support import ID, Fields, caller, clean_text, json_body, json_response
from app.clock import SystemClock
from app.dashboard import working_calendar
from app.database import audit_trail, db_session
from app.oversight import scoring_rubric
from workflow import inspections as insp
from workflow import selfinspection
from workflow.clock import ward_date
from workflow.engine import Engine, person_of
from workflow.errors import DomainError
from workflow.evaluation import evaluate
from workflow.models import Inspection, InspectionDraw, Organization, SelfInspection, User
from workflow.oversight import year_end
from workflow.permissions import oversight_refusal

YEAR_MIN, YEAR_MAX = 2000, 2100
_SAMPLE_FIELDS = {"year", "fraction", "seed", "weights", "include"}


def _reader() -> tuple[User, Organization]:
    """The caller, once the engine lets them open the oversight area, and their ward."""
    user = caller()
    refused = Engine.may_open("oversight", user)
    if refused is not None:
        raise refused
    return user, db_session().get_one(Organization, user.organization_id)


def _query() -> Fields:
    return Fields(request.args, typed=False, error="invalid_parameter")


def _year(fields: Fields) -> int:
    year = fields.integer("year", minimum=YEAR_MIN, maximum=YEAR_MAX, required=True)
    assert year is not None
    return year


def _today() -> date:
    return ward_date(SystemClock().now())


def _draw_json(draw: InspectionDraw) -> dict[str, Any]:
    return {
        "id": draw.id,
        "year": draw.year,
        "audit_seq": draw.audit_seq,
        "seed": draw.seed,
        "parameters": draw.parameters,
        "selected": list(draw.selected),
        "drawn_at": draw.drawn_at.isoformat(),
    }


@bp.get("/evaluation")
def evaluation() -> Response:
    _user, org = _reader()
    query = _query()
    year = _year(query)
    as_of = query.day("as_of") or min(_today(), year_end(year))
    with_instances = bool(query.boolean("instances"))
    result = evaluate(
        db_session(),
        org,
        year=year,
        as_of=as_of,
        calendar=working_calendar(),
        rubric=scoring_rubric(),
    )
    return json_response(result.as_json(instances=with_instances))


@bp.get("/self-inspections")
def self_inspections() -> Response:
    _user, org = _reader()
    year = _year(_query())
    session = db_session()
    cover = selfinspection.coverage(session, org, year).as_json()
    records = [
        selfinspection.record_as_dict(r)
        for r in selfinspection.self_inspections(session, org, year)
    ]
    return json_response({"coverage": cover, "records": records})


@bp.get("/inspections")
def inspections() -> Response:
    _user, org = _reader()
    year = _year(_query())
    session = db_session()
    return json_response(
        {
            "draws": [_draw_json(d) for d in insp.draws(session, org, year)],
            "items": [insp.inspection_as_dict(r) for r in insp.inspections(session, org, year)],
        }
    )


@bp.post("/inspections/sample")
def sample() -> Response:
    user = caller()
    body = Fields(json_body(), typed=True, allowed=_SAMPLE_FIELDS)
    year = _year(body)
    include = body.values.get("include", [])
    if not isinstance(include, list) or not all(
        isinstance(u, str) and 0 < len(u) <= 32 for u in include
    ):
        raise DomainError("invalid_body", "“include” phải là danh sách mã đơn vị.")
    session = db_session()
    org = session.get_one(Organization, user.organization_id)
    draw = insp.draw_sample(
        session,
        org,
        year,
        user,
        now=SystemClock().now(),
        today=_today(),
        calendar=working_calendar(),
        rubric=scoring_rubric(),
        trail=audit_trail(),
        fraction=body.text("fraction", max_length=16) or "0.2",
        seed=body.text("seed", max_length=500),
        weights=body.choice("weights", ("uniform", "risk")) or "uniform",
        include=[u.strip().upper() for u in include],
    )
    session.commit()
    return json_response(_draw_json(draw), 201)


@bp.get("/inspections/replay/<int(min=0, max=9223372036854775807):seq>")
def replay(seq: int) -> Response:
    _user, org = _reader()
    result = insp.replay(db_session(), org, seq)
    return json_response(result.as_json())


# --- self-inspections, the year, inspections: the pages' actions --------------------------


def _now() -> datetime:
    return SystemClock().now()


def _org_of(user: User) -> Organization:
    return db_session().get_one(Organization, user.organization_id)


def _self_inspection(user: User, record_id: int) -> SelfInspection:
    """The record, if the caller may read it: the oversight area, or a member of its unit."""
    session = db_session()
    record = selfinspection.load_self_inspection(session, _org_of(user), record_id)
    person = person_of(user)
    readable = Engine.may_open("oversight", user) is None or (
        oversight_refusal("fill_self_inspection", person, record.organization_id, record.unit.code)
        is None
    )
    if not readable:
        raise DomainError("not_found", f"Không có phiếu tự kiểm tra số {record_id}.")
    return record


@bp.post("/self-inspections/open")
def open_self_inspections() -> Response:
    user = caller()
    body = Fields(json_body(), typed=True, allowed={"year"})
    year = _year(body)
    session = db_session()
    opened = selfinspection.open_self_inspections(
        session,
        _org_of(user),
        year,
        user,
        now=_now(),
        today=_today(),
        calendar=working_calendar(),
        rubric=scoring_rubric(),
        trail=audit_trail(),
    )
    session.commit()
    return json_response(
        {"year": year, "created": list(opened.created), "existing": list(opened.existing)}, 201
    )


@bp.get(f"/self-inspections/<{ID}:record_id>")
def self_inspection(record_id: int) -> Response:
    return json_response(
        selfinspection.record_as_dict(_self_inspection(caller(), record_id), full=True)
    )


@bp.post(f"/self-inspections/<{ID}:record_id>/answers")
def fill_self_inspection(record_id: int) -> Response:
    user = caller()
    _self_inspection(user, record_id)
    body = Fields(json_body(), typed=True, allowed={"answers", "expected_version"})
    answers = body.values.get("answers")
    if not isinstance(answers, dict):
        raise DomainError("invalid_body", "“answers” phải là một đối tượng: mã tiêu chí → trả lời.")
    session = db_session()
    record = selfinspection.fill_self_inspection(
        session,
        _org_of(user),
        record_id,
        user,
        answers,
        now=_now(),
        rubric=scoring_rubric(),
        trail=audit_trail(),
        expected_version=body.integer("expected_version"),
    )
    session.commit()
    return json_response(selfinspection.record_as_dict(record))


@bp.post(f"/self-inspections/<{ID}:record_id>/submit")
def submit_self_inspection(record_id: int) -> Response:
    user = caller()
    _self_inspection(user, record_id)
    body = Fields(json_body(), typed=True, allowed={"expected_version"})
    session = db_session()
    record = selfinspection.submit_self_inspection(
        session,
        _org_of(user),
        record_id,
        user,
        now=_now(),
        rubric=scoring_rubric(),
        trail=audit_trail(),
        expected_version=body.integer("expected_version"),
    )
    session.commit()
    return json_response(selfinspection.record_as_dict(record))


@bp.post(f"/self-inspections/<{ID}:record_id>/decision")
def decide_self_inspection(record_id: int) -> Response:
    user = caller()
    _self_inspection(user, record_id)
    body = Fields(json_body(), typed=True, allowed={"acknowledge", "reason", "expected_version"})
    session = db_session()
    record = selfinspection.decide_self_inspection(
        session,
        _org_of(user),
        record_id,
        user,
        acknowledge=body.required_boolean("acknowledge"),
        reason=body.text("reason") or "",
        now=_now(),
        trail=audit_trail(),
        expected_version=body.integer("expected_version"),
    )
    session.commit()
    return json_response(selfinspection.record_as_dict(record))


@bp.post("/years/<int(min=2000, max=2100):year>/close")
def close_year(year: int) -> Response:
    user = caller()
    session = db_session()
    closure = selfinspection.close_year(
        session, _org_of(user), year, user, now=_now(), trail=audit_trail()
    )
    session.commit()
    return json_response({"year": year, "closed_at": closure.closed_at.isoformat()})


def _visible_inspection(user: User, inspection_id: int) -> Inspection:
    _reader()
    return insp.load_inspection(db_session(), _org_of(user), inspection_id)


def _inspection_step(change: Callable[[Session, Organization, User], Inspection]) -> Response:
    user = caller()
    session = db_session()
    record = change(session, _org_of(user), user)
    session.commit()
    return json_response(insp.inspection_as_dict(record))


@bp.post(f"/inspections/<{ID}:inspection_id>/plan")
def plan_inspection(inspection_id: int) -> Response:
    _visible_inspection(caller(), inspection_id)
    body = Fields(
        json_body(), typed=True, allowed={"plan", "team", "scheduled_on", "expected_version"}
    )
    team = body.values.get("team", [])
    if not isinstance(team, list) or not all(isinstance(m, str) for m in team):
        raise DomainError("invalid_body", "“team” phải là danh sách tên thành viên đoàn.")
    plan_text = body.required_text("plan")
    scheduled = body.day("scheduled_on")
    version = body.integer("expected_version")
    return _inspection_step(
        lambda s, org, user: insp.plan_inspection(
            s,
            org,
            inspection_id,
            user,
            plan_text=plan_text,
            team=[clean_text(m, "team", max_length=255) for m in team],
            scheduled_on=scheduled,
            now=_now(),
            trail=audit_trail(),
            expected_version=version,
        )
    )


@bp.post(f"/inspections/<{ID}:inspection_id>/findings")
def inspection_findings(inspection_id: int) -> Response:
    _visible_inspection(caller(), inspection_id)
    body = Fields(json_body(), typed=True, allowed={"findings", "expected_version"})
    findings = body.required_text("findings")
    version = body.integer("expected_version")
    return _inspection_step(
        lambda s, org, user: insp.record_findings(
            s,
            org,
            inspection_id,
            user,
            findings=findings,
            now=_now(),
            trail=audit_trail(),
            expected_version=version,
        )
    )


def _orders(value: Any) -> list[insp.CorrectiveOrder]:
    if not isinstance(value, list):
        raise DomainError("invalid_body", "“corrective” phải là danh sách việc khắc phục.")
    orders = []
    for item in value:
        if not isinstance(item, dict):
            raise DomainError("invalid_body", "Mỗi việc khắc phục cần “description” và “due”.")
        fields = Fields(item, typed=True, allowed={"description", "due"})
        due = fields.day("due", required=True)
        assert due is not None
        orders.append(insp.CorrectiveOrder(fields.required_text("description"), due))
    return orders


@bp.post(f"/inspections/<{ID}:inspection_id>/conclusion")
def conclude_inspection(inspection_id: int) -> Response:
    _visible_inspection(caller(), inspection_id)
    body = Fields(
        json_body(),
        typed=True,
        allowed={"number", "conclusion", "corrective", "expected_version"},
    )
    number = body.required_text("number", max_length=64)
    conclusion = body.required_text("conclusion")
    orders = _orders(body.values.get("corrective", []))
    version = body.integer("expected_version")
    return _inspection_step(
        lambda s, org, user: insp.conclude_inspection(
            s,
            org,
            inspection_id,
            user,
            number=number,
            conclusion=conclusion,
            corrective=orders,
            now=_now(),
            trail=audit_trail(),
            expected_version=version,
        )
    )


@bp.post(f"/inspections/<{ID}:inspection_id>/close")
def close_inspection(inspection_id: int) -> Response:
    _visible_inspection(caller(), inspection_id)
    body = Fields(json_body(), typed=True, allowed={"expected_version"})
    version = body.integer("expected_version")
    return _inspection_step(
        lambda s, org, user: insp.close_inspection(
            s, org, inspection_id, user, now=_now(), trail=audit_trail(), expected_version=version
        )
    )
