"""The OpenAPI 3.1 document of /api/v1 (served at /api/v1/openapi.json). It is written by
hand next to app/api.py; tests/test_api_openapi.py checks that every route is in it and every
operation in it is a route, and runs schemathesis against it."""

from __future__ import annotations

from typing import Any

from app.api_support import MAX_ID, TEXT_MAX
from workflow.lifecycle import EVENTS
from workflow.states import RequestState, TaskState
from workflow.tokens import NAME_MAX_LENGTH

Schema = dict[str, Any]

NO_NUL = "^[^\\x00]*$"  # text may hold any character but NUL, which no database stores

# What workflow.evidence.sniff recognises: a download is served with one of these.
EVIDENCE_MEDIA_TYPES = (
    "application/pdf",
    "image/png",
    "image/jpeg",
    "application/x-ole-storage",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/zip",
)

_ERRORS = {
    400: "Bad input: malformed JSON, a field of the wrong type or format, an unknown field "
    "(invalid_json, invalid_body, invalid_parameter).",
    401: "No or bad credentials (unauthenticated, invalid_token).",
    403: "The engine refuses this person (not_permitted, self_review, same_reviewer), or a "
    "cookie-authenticated unsafe request lacks its CSRF header (csrf_failed).",
    404: "No such object, or it belongs to another ward (not_found).",
    409: "The object changed or is in the wrong state (stale_version, invalid_transition, "
    "invalid_state, already_*).",
    413: "The file or the request is larger than the upload limit (file_too_large).",
    415: "Wrong content type of the request body or of the file (unsupported_media_type, "
    "file_type_not_allowed).",
    422: "The engine refuses the input for what it says (reason_required, evidence_missing, "
    "unknown_product, ...).",
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **extra: Any) -> Schema:
    return {"type": [kind, "null"], **extra}


def _string(max_length: int) -> Schema:
    return {"type": "string", "maxLength": max_length, "pattern": NO_NUL}


def _text(max_length: int = TEXT_MAX) -> Schema:
    return {"type": ["string", "null"], "maxLength": max_length, "pattern": NO_NUL}


def _date() -> Schema:
    return {"type": ["string", "null"], "format": "date", "description": "YYYY-MM-DD"}


def _object(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _closed(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    """A request body: unknown fields are refused (400)."""
    return {**_object(properties, required), "additionalProperties": False}


def _json(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _responses(ok: int, schema: Schema, description: str, *errors: int) -> dict[str, Any]:
    responses: dict[str, Any] = {str(ok): {"description": description, "content": _json(schema)}}
    for status in sorted({401, *errors}):
        responses[str(status)] = {
            "description": _ERRORS[status],
            "content": _json(_ref("Error")),
        }
    return responses


def _path_id(name: str, what: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"The {what}'s id.",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    }


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _operation(
    operation_id: str,
    summary: str,
    responses: dict[str, Any],
    *,
    tags: list[str],
    parameters: list[Schema] | None = None,
    body: dict[str, Any] | None = None,
    security: list[dict[str, list[str]]] | None = None,
) -> Schema:
    op: Schema = {
        "operationId": operation_id,
        "summary": summary,
        "tags": tags,
        "responses": responses,
    }
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
    if security is not None:
        op["security"] = security
    return op


_INSTANCE = _path_id("instance_id", "task instance")
_EVIDENCE = _path_id("evidence_id", "evidence file")
_REQUEST = _path_id("request_id", "coordination request")
_TOKEN = _path_id("token_id", "API token")

_SCHEMAS: dict[str, Schema] = {
    "Error": _object(
        {
            "error": _object(
                {
                    "code": {"type": "string", "description": "Stable, for programs."},
                    "message": {"type": "string", "description": "Vietnamese, for people."},
                },
                ["code", "message"],
            )
        },
        ["error"],
    ),
    "Me": _object(
        {
            "username": {"type": "string"},
            "full_name": {"type": "string"},
            "unit": _nullable("string"),
            "roles": {"type": "array", "items": {"type": "string"}},
            "organization": {"type": "string"},
            "areas": {"type": "object", "additionalProperties": {"type": "boolean"}},
        },
        ["username", "full_name", "unit", "roles", "organization", "areas"],
    ),
    "CsrfToken": _object(
        {"csrf_token": {"type": "string"}, "header": {"type": "string"}},
        ["csrf_token", "header"],
    ),
    "InstanceRow": _object(
        {
            "id": {"type": "integer"},
            "number": {"type": "integer"},
            "section": _nullable("string"),
            "unit": {"type": "string"},
            "period": {"type": "string"},
            "state": {"type": "string", "enum": [s.value for s in TaskState]},
            "due": _nullable("string", format="date"),
            "version": {"type": "integer"},
            "content": {"type": "string"},
        },
        ["id", "number", "section", "unit", "period", "state", "due", "version", "content"],
    ),
    "InstanceList": _object({"items": {"type": "array", "items": _ref("InstanceRow")}}, ["items"]),
    "InstanceDetail": _object(
        {
            "id": {"type": "integer"},
            "number": {"type": "integer"},
            "section": _nullable("string"),
            "content": {"type": "string"},
            "lead": {"type": "string"},
            "lead_text": {"type": "string"},
            "coordinators_text": {"type": "string"},
            "coordinators": {"type": "array", "items": {"type": "string"}},
            "timeframe": {"type": "string"},
            "products": {"type": "array", "items": {"type": "string"}},
            "period": {"type": "string"},
            "start": {"type": "string", "format": "date"},
            "due": _nullable("string", format="date"),
            "state": {"type": "string", "enum": [s.value for s in TaskState]},
            "version": {"type": "integer"},
            "round": {"type": "integer"},
            "assignee": _nullable("string"),
            "evidence": {
                "type": "array",
                "items": _object(
                    {
                        "id": {"type": "integer"},
                        "product": {"type": "string"},
                        "filename": {"type": "string"},
                        "sha256": {"type": "string"},
                        "size": {"type": "integer"},
                        "media_type": {"type": "string"},
                        "uploader": _nullable("string"),
                        "withdrawn": {"type": "boolean"},
                    },
                    ["id", "product", "filename", "sha256", "size", "withdrawn"],
                ),
            },
            "remarks": {
                "type": "array",
                "items": _object(
                    {
                        "kind": {"type": "string"},
                        "product": _nullable("string"),
                        "body": {"type": "string"},
                        "author": _nullable("string"),
                        "at": {"type": "string", "format": "date-time"},
                    },
                    ["kind", "body", "at"],
                ),
            },
            "contributions": {
                "type": "array",
                "items": _object(
                    {
                        "id": {"type": "integer"},
                        "unit": {"type": "string"},
                        "state": {"type": "string", "enum": [s.value for s in RequestState]},
                        "due": _nullable("string", format="date"),
                        "decline_reason": _nullable("string"),
                    },
                    ["id", "unit", "state"],
                ),
            },
            "history": {
                "type": "array",
                "items": _object(
                    {
                        "seq": {"type": "integer"},
                        "at": {"type": "string", "format": "date-time"},
                        "user": _nullable("string"),
                        "role": _nullable("string"),
                        "action": {"type": "string"},
                    },
                    ["seq", "at", "action"],
                ),
            },
            "enabled_events": {
                "type": "array",
                "items": {"type": "string", "enum": list(EVENTS)},
                "description": "The lifecycle events the caller may fire now.",
            },
            "may": {
                "type": "object",
                "additionalProperties": {"type": "boolean"},
                "description": "Whether the caller may add_evidence, explain, "
                "request_contribution now.",
            },
        },
        ["id", "number", "state", "version", "evidence", "history", "enabled_events", "may"],
    ),
    "FireEvent": _closed(
        {
            "event": {"type": "string", "enum": list(EVENTS)},
            "expected_version": {
                "type": ["integer", "null"],
                "minimum": 0,
                "maximum": MAX_ID,
                "description": "The version the caller saw; a different one is refused (409).",
            },
            "reason": _text(),
            "assessment": _text(),
            "findings": _text(),
            "recommendation": {**_text(64), "description": "review: accept or return"},
            "due": _date(),
            "explanation": _text(),
        },
        ["event"],
    ),
    "Outcome": _object(
        {
            "instance_id": {"type": "integer"},
            "event": {"type": "string"},
            "before": {"type": "string"},
            "after": {"type": "string"},
            "version": {"type": "integer"},
            "audit_seq": {"type": "integer"},
        },
        ["instance_id", "event", "before", "after", "version", "audit_seq"],
    ),
    "Evidence": _object(
        {
            "id": {"type": "integer"},
            "instance_id": {"type": "integer"},
            "product": {"type": "string"},
            "filename": {"type": "string"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "size": {"type": "integer"},
            "media_type": {"type": "string"},
            "uploader": _nullable("string"),
            "created_at": {"type": "string", "format": "date-time"},
            "withdrawn_at": _nullable("string", format="date-time"),
            "download": {"type": "string"},
        },
        ["id", "instance_id", "product", "filename", "sha256", "size", "media_type"],
    ),
    "Explanation": _object(
        {
            "id": {"type": "integer"},
            "instance_id": {"type": "integer"},
            "product": _nullable("string"),
            "text": {"type": "string"},
            "author": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
        },
        ["id", "instance_id", "product", "text", "author", "created_at"],
    ),
    "ContributionRequest": _object(
        {
            "id": {"type": "integer"},
            "instance_id": {"type": "integer"},
            "unit": {"type": "string"},
            "state": {"type": "string", "enum": [s.value for s in RequestState]},
            "due": _nullable("string", format="date"),
            "message": {"type": "string"},
            "decline_reason": _nullable("string"),
        },
        ["id", "instance_id", "unit", "state", "due", "message", "decline_reason"],
    ),
    "NotificationList": _object(
        {
            "unread": {"type": "integer"},
            "items": {
                "type": "array",
                "items": _object(
                    {
                        "id": {"type": "integer"},
                        "event": {"type": "string"},
                        "instance_id": _nullable("integer"),
                        "message": {"type": "string"},
                        "created_at": {"type": "string", "format": "date-time"},
                        "read": {"type": "boolean"},
                    },
                    ["id", "event", "instance_id", "message", "created_at", "read"],
                ),
            },
        },
        ["unread", "items"],
    ),
    "Marked": _object({"marked": {"type": "integer"}}, ["marked"]),
    "AuditEntry": _object(
        {
            "seq": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "actor": _object(
                {
                    "user": _nullable("string"),
                    "unit": _nullable("string"),
                    "role": _nullable("string"),
                },
                ["user", "unit", "role"],
            ),
            "action": {"type": "string"},
            "object": _object(
                {"type": {"type": "string"}, "id": {"type": "string"}}, ["type", "id"]
            ),
            "leaf_hash": {"type": "string", "description": "RFC 6962 leaf hash, hex"},
            "body": {"type": "object", "description": "The entry as logged (authoritative)."},
        },
        ["seq", "at", "actor", "action", "object", "leaf_hash", "body"],
    ),
    "AuditPage": _object(
        {
            "items": {"type": "array", "items": _ref("AuditEntry")},
            "page": {"type": "integer"},
            "per_page": {"type": "integer"},
            "total": {"type": "integer"},
            "pages": {"type": "integer"},
        },
        ["items", "page", "per_page", "total", "pages"],
    ),
    "AuditHistory": _object({"items": {"type": "array", "items": _ref("AuditEntry")}}, ["items"]),
    "Token": _object(
        {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "prefix": {"type": "string", "description": "The token's first characters."},
            "created_at": {"type": "string", "format": "date-time"},
            "expires_at": _nullable("string", format="date-time"),
            "revoked_at": _nullable("string", format="date-time"),
            "active": {"type": "boolean"},
        },
        ["id", "name", "prefix", "created_at", "expires_at", "revoked_at", "active"],
    ),
    "NewToken": {
        "allOf": [
            _ref("Token"),
            _object(
                {"token": {"type": "string", "description": "The secret: shown this once."}},
                ["token"],
            ),
        ]
    },
    "TokenList": _object({"items": {"type": "array", "items": _ref("Token")}}, ["items"]),
}

TAGS = (
    "instances",
    "evidence",
    "contributions",
    "notifications",
    "audit",
    "oversight",
    "session",
)
_TASKS, _EVID, _CONTRIB = ["instances"], ["evidence"], ["contributions"]
_NOTE, _AUDIT, _SELF = ["notifications"], ["audit"], ["session"]
_OVER = ["oversight"]
_YEAR_SCHEMA: Schema = {"type": "integer", "minimum": 2000, "maximum": 2100}
_YEAR: Schema = {
    "name": "year",
    "in": "query",
    "required": True,
    "schema": _YEAR_SCHEMA,
    "description": "The plan's year, e.g. 2026.",
}
# Evaluation figures, coverage, draws and inspections: documented field by field in
# docs/evaluation.md; objects here, so that new figures do not break clients.
_FIGURES = {"type": "object", "description": "See docs/evaluation.md."}
_RECORD = _path_id("record_id", "self-inspection")
_INSPECTION = _path_id("inspection_id", "inspection")
_VERSION = {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_ID}

_ANSWER_FIELDS: dict[str, Schema] = {
    "provide": {"type": "boolean", "description": "true: provide; false: decline."},
    "note": _text(),
    "reason": _text(),
}


def _paths() -> dict[str, Any]:
    return {
        "/openapi.json": {
            "get": _operation(
                "openapi",
                "This document.",
                {"200": {"description": "OpenAPI 3.1", "content": _json({"type": "object"})}},
                tags=_SELF,
                security=[],
            )
        },
        "/me": {
            "get": _operation(
                "me",
                "Who the caller is and which areas they may open.",
                _responses(200, _ref("Me"), "The caller."),
                tags=_SELF,
            )
        },
        "/csrf-token": {
            "get": _operation(
                "csrf_token",
                "The CSRF token a signed-in browser sends in X-CSRFToken on unsafe requests.",
                _responses(200, _ref("CsrfToken"), "The token."),
                tags=_SELF,
            )
        },
        "/instances": {
            "get": _operation(
                "list_instances",
                "The ward's task instances, by due date.",
                _responses(200, _ref("InstanceList"), "The instances.", 400),
                tags=_TASKS,
                parameters=[
                    _query("unit", _string(32), "Lead unit code."),
                    _query(
                        "state",
                        {"type": "string", "enum": [s.value for s in TaskState]},
                        "Lifecycle state.",
                    ),
                    _query(
                        "number",
                        {"type": "integer", "minimum": 1, "maximum": 1_000_000},
                        "The plan task's number.",
                    ),
                ],
            )
        },
        "/instances/{instance_id}": {
            "get": _operation(
                "show_instance",
                "One instance: task, evidence, remarks, contributions, history, and the "
                "events the caller may fire now.",
                _responses(200, _ref("InstanceDetail"), "The instance.", 404),
                tags=_TASKS,
                parameters=[_INSTANCE],
            )
        },
        "/instances/{instance_id}/events": {
            "post": _operation(
                "fire_event",
                "Fire a lifecycle event (the engine checks permission and inputs).",
                _responses(200, _ref("Outcome"), "Done.", 400, 403, 404, 409, 415, 422),
                tags=_TASKS,
                parameters=[_INSTANCE],
                body=_json(_ref("FireEvent")),
            )
        },
        "/instances/{instance_id}/evidence": {
            "post": _operation(
                "upload_evidence",
                "Attach an evidence file to a product (type checked on the content).",
                _responses(201, _ref("Evidence"), "Stored.", 400, 403, 404, 409, 413, 415, 422),
                tags=_EVID,
                parameters=[_INSTANCE],
                body={
                    "multipart/form-data": {
                        "schema": _closed(
                            {
                                "file": {
                                    "type": "string",
                                    "contentMediaType": "application/octet-stream",
                                },
                                "product": {**_string(1000), "minLength": 1},
                                "expected_version": {
                                    "type": "integer",
                                    "minimum": 0,
                                    "maximum": MAX_ID,
                                },
                            },
                            ["file", "product"],
                        )
                    }
                },
            )
        },
        "/evidence/{evidence_id}/download": {
            "get": _operation(
                "download_evidence",
                "The file, as an attachment (X-Content-SHA256 names its digest).",
                {
                    "200": {
                        "description": "The file.",
                        "content": {
                            media: {"schema": {"type": "string", "format": "binary"}}
                            for media in EVIDENCE_MEDIA_TYPES
                        },
                    },
                    **{k: v for k, v in _responses(200, {}, "", 404).items() if k != "200"},
                },
                tags=_EVID,
                parameters=[_EVIDENCE],
            )
        },
        "/evidence/{evidence_id}/withdraw": {
            "post": _operation(
                "withdraw_evidence",
                "Withdraw one's own evidence before submission.",
                _responses(200, _ref("Evidence"), "Withdrawn.", 403, 404, 409),
                tags=_EVID,
                parameters=[_EVIDENCE],
            )
        },
        "/instances/{instance_id}/explanations": {
            "post": _operation(
                "explain_missing",
                "A written explanation (giải trình) for a product without evidence.",
                _responses(201, _ref("Explanation"), "Recorded.", 400, 403, 404, 409, 415, 422),
                tags=_EVID,
                parameters=[_INSTANCE],
                body=_json(
                    _closed(
                        {
                            "product": _string(1000),
                            "text": _string(TEXT_MAX),
                        },
                        ["product", "text"],
                    )
                ),
            )
        },
        "/instances/{instance_id}/contributions": {
            "post": _operation(
                "request_contribution",
                "Ask a coordinating unit for a contribution.",
                _responses(
                    201,
                    _ref("ContributionRequest"),
                    "Requested.",
                    400,
                    403,
                    404,
                    409,
                    415,
                    422,
                ),
                tags=_CONTRIB,
                parameters=[_INSTANCE],
                body=_json(
                    _closed(
                        {
                            "unit": _string(32),
                            "due": _date(),
                            "message": _text(),
                        },
                        ["unit"],
                    )
                ),
            )
        },
        "/contributions/{request_id}/answer": {
            "post": _operation(
                "answer_contribution",
                "Provide (a note and/or files) or decline (with a reason) a request.",
                _responses(
                    200,
                    _ref("ContributionRequest"),
                    "Answered.",
                    400,
                    403,
                    404,
                    409,
                    413,
                    415,
                    422,
                ),
                tags=_CONTRIB,
                parameters=[_REQUEST],
                body={
                    **_json(_closed(_ANSWER_FIELDS, ["provide"])),
                    "multipart/form-data": {
                        "schema": _closed(
                            {
                                **_ANSWER_FIELDS,
                                "note": _string(TEXT_MAX),
                                "reason": _string(TEXT_MAX),
                                "files": {
                                    "type": "array",
                                    "items": {
                                        "type": "string",
                                        "contentMediaType": "application/octet-stream",
                                    },
                                },
                            },
                            ["provide"],
                        )
                    },
                },
            )
        },
        "/notifications": {
            "get": _operation(
                "list_notifications",
                "The caller's notifications, newest first, and the unread count.",
                _responses(200, _ref("NotificationList"), "Notifications.", 400),
                tags=_NOTE,
                parameters=[
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 500},
                        "At most this many (default 50).",
                    )
                ],
            )
        },
        "/notifications/read": {
            "post": _operation(
                "mark_notifications_read",
                "Mark all the caller's notifications read.",
                _responses(200, _ref("Marked"), "How many were unread.", 403),
                tags=_NOTE,
            )
        },
        "/audit/entries": {
            "get": _operation(
                "audit_entries",
                "The ward's audit log, newest first, filtered (auditors, ward leader, admin).",
                _responses(200, _ref("AuditPage"), "One page of entries.", 400, 403),
                tags=_AUDIT,
                parameters=[
                    _query("unit", _string(128), "Actor's unit."),
                    _query("user", _string(128), "Actor's username."),
                    _query("action", _string(128), "e.g. task.accept"),
                    _query("object_type", _string(64), "e.g. task_instance"),
                    _query(
                        "since",
                        {"type": "string", "format": "date"},
                        "From this day (Việt Nam time), inclusive.",
                    ),
                    _query(
                        "until",
                        {"type": "string", "format": "date"},
                        "Up to this day (Việt Nam time), inclusive.",
                    ),
                    _query("page", {"type": "integer", "minimum": 1, "maximum": 1_000_000}, ""),
                    _query("per_page", {"type": "integer", "minimum": 1, "maximum": 1000}, ""),
                ],
            )
        },
        "/audit/history/{object_type}/{object_id}": {
            "get": _operation(
                "audit_history",
                "Every entry about one object, oldest first.",
                _responses(200, _ref("AuditHistory"), "The object's history.", 400, 403, 404),
                tags=_AUDIT,
                parameters=[
                    {
                        "name": "object_type",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "maxLength": 64, "pattern": "^[^/\\x00]+$"},
                        "description": "task_instance, coordination_request, user, api_token…",
                    },
                    {
                        "name": "object_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "maxLength": 128, "pattern": "^[^/\\x00]+$"},
                    },
                ],
            )
        },
        "/evaluation": {
            "get": _operation(
                "evaluation",
                "The evaluation of the ward's plan as of a date: figures per unit, section and "
                "plan, KPIs, rubric scores, and the audit tree it was computed at.",
                _responses(200, _FIGURES, "The evaluation.", 400, 403, 404),
                tags=_OVER,
                parameters=[
                    _YEAR,
                    _query("as_of", {"type": "string", "format": "date"}, "Default: today."),
                    _query("instances", {"type": "boolean"}, "Also every instance evaluated."),
                ],
            )
        },
        "/self-inspections": {
            "get": _operation(
                "self_inspections",
                "The year's self-inspections and their coverage (x/N submitted, acknowledged).",
                _responses(200, _FIGURES, "Coverage and records.", 400, 403),
                tags=_OVER,
                parameters=[_YEAR],
            )
        },
        "/inspections": {
            "get": _operation(
                "inspections",
                "The year's inspection draws and inspections with their corrective actions.",
                _responses(200, _FIGURES, "Draws and inspections.", 400, 403),
                tags=_OVER,
                parameters=[_YEAR],
            )
        },
        "/inspections/sample": {
            "post": _operation(
                "sample_inspections",
                "Draw the year's units to inspect (at least ceil(0.2 × N)); one audit entry.",
                _responses(201, _FIGURES, "The recorded draw.", 400, 403, 404, 409, 415, 422),
                tags=_OVER,
                body=_json(
                    _closed(
                        {
                            "year": _YEAR_SCHEMA,
                            "fraction": {**_text(16), "description": 'e.g. "0.2"'},
                            "seed": {
                                **_text(500),
                                "description": "Default: the latest signed checkpoint.",
                            },
                            "weights": {"enum": ["uniform", "risk", None]},
                            "include": {
                                "type": "array",
                                "items": {
                                    "type": "string",
                                    "minLength": 1,
                                    "maxLength": 32,
                                    "pattern": NO_NUL,
                                },
                            },
                        },
                        ["year"],
                    )
                ),
            )
        },
        "/inspections/replay/{seq}": {
            "get": _operation(
                "replay_inspection_draw",
                "Run the draw recorded in an audit entry again; `identical` says if it matches.",
                _responses(200, _FIGURES, "The replay.", 400, 403, 404, 422),
                tags=_OVER,
                parameters=[
                    {
                        "name": "seq",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                        "description": "The draw's audit entry.",
                    }
                ],
            )
        },
        "/self-inspections/open": {
            "post": _operation(
                "open_self_inspections",
                "Open the year's self-inspection of every unit in scope, pre-filled from the "
                "evaluation (VHXH's head or approver, the ward leader).",
                _responses(
                    201, _FIGURES, "Created and already open units.", 400, 403, 404, 415, 422
                ),
                tags=_OVER,
                body=_json(_closed({"year": _YEAR_SCHEMA}, ["year"])),
            )
        },
        "/self-inspections/{record_id}": {
            "get": _operation(
                "self_inspection",
                "One self-inspection with its pre-filled evaluation and answers.",
                _responses(200, _FIGURES, "The record.", 400, 403, 404),
                tags=_OVER,
                parameters=[_RECORD],
            )
        },
        "/self-inspections/{record_id}/answers": {
            "post": _operation(
                "fill_self_inspection",
                "Save answers for some criteria (members of the unit, while in draft or returned).",
                _responses(200, _FIGURES, "Saved.", 400, 403, 404, 409, 415, 422),
                tags=_OVER,
                parameters=[_RECORD],
                body=_json(
                    _closed(
                        {
                            "answers": {
                                "type": "object",
                                "description": "criterion code → {self_score, evidence: "
                                "[{document, location}], explanation, shortcomings, "
                                "corrective_actions}",
                            },
                            "expected_version": _VERSION,
                        },
                        ["answers"],
                    )
                ),
            )
        },
        "/self-inspections/{record_id}/submit": {
            "post": _operation(
                "submit_self_inspection",
                "The unit head submits the self-inspection.",
                _responses(200, _FIGURES, "Submitted.", 400, 403, 404, 409, 415, 422),
                tags=_OVER,
                parameters=[_RECORD],
                body=_json(_closed({"expected_version": _VERSION})),
            )
        },
        "/self-inspections/{record_id}/decision": {
            "post": _operation(
                "decide_self_inspection",
                "Acknowledge, or return with a reason (VHXH's approver; the ward leader for VHXH).",
                _responses(200, _FIGURES, "Decided.", 400, 403, 404, 409, 415, 422),
                tags=_OVER,
                parameters=[_RECORD],
                body=_json(
                    _closed(
                        {
                            "acknowledge": {"type": "boolean"},
                            "reason": _text(),
                            "expected_version": _VERSION,
                        },
                        ["acknowledge"],
                    )
                ),
            )
        },
        "/years/{year}/close": {
            "post": _operation(
                "close_year",
                "Close the reform year: refused until every self-inspection is acknowledged.",
                _responses(200, _FIGURES, "Closed.", 400, 403, 404, 409, 422),
                tags=_OVER,
                parameters=[{**_YEAR, "in": "path"}],
            )
        },
        "/inspections/{inspection_id}/plan": {
            "post": _operation(
                "plan_inspection",
                "Set an inspection's plan, team and date.",
                _responses(200, _FIGURES, "Planned.", 400, 403, 404, 409, 415, 422),
                tags=_OVER,
                parameters=[_INSPECTION],
                body=_json(
                    _closed(
                        {
                            "plan": _string(TEXT_MAX),
                            "team": {"type": "array", "items": _string(255)},
                            "scheduled_on": _date(),
                            "expected_version": _VERSION,
                        },
                        ["plan"],
                    )
                ),
            )
        },
        "/inspections/{inspection_id}/findings": {
            "post": _operation(
                "inspection_findings",
                "Record an inspection's findings.",
                _responses(200, _FIGURES, "Recorded.", 400, 403, 404, 409, 415, 422),
                tags=_OVER,
                parameters=[_INSPECTION],
                body=_json(
                    _closed(
                        {"findings": _string(TEXT_MAX), "expected_version": _VERSION},
                        ["findings"],
                    )
                ),
            )
        },
        "/inspections/{inspection_id}/conclusion": {
            "post": _operation(
                "conclude_inspection",
                "The ward leader issues the conclusion notice; corrective actions become tasks.",
                _responses(200, _FIGURES, "Concluded.", 400, 403, 404, 409, 415, 422),
                tags=_OVER,
                parameters=[_INSPECTION],
                body=_json(
                    _closed(
                        {
                            "number": _string(64),
                            "conclusion": _string(TEXT_MAX),
                            "corrective": {
                                "type": "array",
                                "items": _closed(
                                    {
                                        "description": _string(TEXT_MAX),
                                        "due": {"type": "string", "format": "date"},
                                    },
                                    ["description", "due"],
                                ),
                            },
                            "expected_version": _VERSION,
                        },
                        ["number", "conclusion"],
                    )
                ),
            )
        },
        "/inspections/{inspection_id}/close": {
            "post": _operation(
                "close_inspection",
                "Close an inspection once its corrective tasks are accepted.",
                _responses(200, _FIGURES, "Closed.", 400, 403, 404, 409, 415, 422),
                tags=_OVER,
                parameters=[_INSPECTION],
                body=_json(_closed({"expected_version": _VERSION})),
            )
        },
        "/tokens": {
            "get": _operation(
                "list_tokens",
                "The caller's API tokens (never their secrets).",
                _responses(200, _ref("TokenList"), "Tokens, newest first."),
                tags=_SELF,
            ),
            "post": _operation(
                "create_token",
                "A new API token for the caller; the secret is in this answer only.",
                _responses(201, _ref("NewToken"), "Created.", 400, 403, 415, 422),
                tags=_SELF,
                body=_json(
                    _closed(
                        {
                            "name": _string(NAME_MAX_LENGTH),
                            "expires_on": {
                                **_date(),
                                "description": "Last day of validity (Việt Nam time).",
                            },
                        },
                        ["name"],
                    )
                ),
            ),
        },
        "/tokens/{token_id}": {
            "delete": _operation(
                "revoke_token",
                "Revoke one of the caller's tokens (a ward's administrator: any of the ward's).",
                _responses(200, _ref("Token"), "Revoked.", 403, 404, 409),
                tags=_SELF,
                parameters=[_TOKEN],
            )
        },
    }


def document(server_url: str = "/api/v1") -> dict[str, Any]:
    """The OpenAPI 3.1 document, with the API's base URL as its server."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CCHC — kế hoạch cải cách hành chính của phường",
            "version": "1",
            "description": "Task instances of the ward's plan, their lifecycle, evidence, "
            "contributions, notifications and the audit log. Authenticate with "
            "`Authorization: Bearer <token>` (create one with POST /tokens or `cchc token "
            "create`), or with the signed-in session cookie, whose unsafe requests must send "
            "the X-CSRFToken header (GET /csrf-token). Every error has the shape "
            '{"error": {"code", "message"}}: `code` is stable, `message` is Vietnamese. Text '
            "fields must not contain the NUL character (400).",
        },
        "servers": [{"url": server_url or "/"}],
        "security": [{"bearerAuth": []}, {"sessionCookie": []}],
        "tags": [{"name": name} for name in TAGS],
        "paths": _paths(),
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "sessionCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "session",
                    "description": "The pages' signed-in session; POST and DELETE also need "
                    "the X-CSRFToken header.",
                },
            },
        },
    }
