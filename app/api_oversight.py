"""/api/v1 routes of the evaluation, the self-inspection coverage and the inspection draws:
what the oversight pages show, for programs. Registered on the API blueprint by app/api.py;
described in app/openapi.py. Each view parses input, calls workflow/ and answers JSON."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import request
from werkzeug.wrappers import Response

from app.api import bp
from app.api_support import Fields, caller, json_body, json_response
from app.clock import SystemClock
from app.dashboard import working_calendar
from app.database import audit_trail, db_session
from app.oversight import scoring_rubric
from workflow import inspections as insp
from workflow import selfinspection
from workflow.clock import ward_date
from workflow.engine import Engine
from workflow.errors import DomainError
from workflow.evaluation import evaluate
from workflow.models import Inspection, InspectionDraw, Organization, User
from workflow.oversight import year_end

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


def _inspection_json(record: Inspection) -> dict[str, Any]:
    return {
        "id": record.id,
        "unit": record.unit.code,
        "year": record.year,
        "state": record.state,
        "version": record.version,
        "plan": record.plan_text,
        "team": list(record.team),
        "scheduled_on": record.scheduled_on.isoformat() if record.scheduled_on else None,
        "findings": record.findings,
        "conclusion_number": record.conclusion_number,
        "conclusion": record.conclusion_text,
        "corrective_actions": [
            {
                "instance": a.instance_id,
                "task_number": a.instance.plan_task.number,
                "description": a.description,
                "state": a.instance.state,
                "due": a.instance.due_date.isoformat() if a.instance.due_date else None,
            }
            for a in record.corrective_actions
        ],
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
        {
            "id": r.id,
            "unit": r.unit.code,
            "state": r.state,
            "round": r.round,
            "version": r.version,
            "return_reason": r.return_reason,
        }
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
            "items": [_inspection_json(r) for r in insp.inspections(session, org, year)],
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
