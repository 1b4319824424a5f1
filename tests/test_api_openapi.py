"""The OpenAPI document of /api/v1 matches the implementation: every route is in it and every
operation in it is a route, its references resolve, and schemathesis, run in-process against
it, finds no server error and no answer the document does not describe."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from app import create_app
from app.cli import main
from app.database import audit_trail, database_of, db_session
from app.openapi import document
from workflow.accounts import find_user
from workflow.models import Organization
from workflow.tokens import create_token

try:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )
except ImportError:  # a dev dependency: the rest of this module runs without it
    schemathesis = None

PREFIX = "/api/v1"
IMPLICIT = {"HEAD", "OPTIONS"}  # Flask answers these for every route by itself
METHODS = {"get", "put", "post", "delete", "patch"}
# Examples per operation, generation mode and caller (raise it for a longer hunt).
EXAMPLES = int(os.environ.get("CCHC_API_FUZZ_EXAMPLES", "30"))


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The application without a database: routing and the document only."""
    monkeypatch.setenv("CCHC_INSTANCE_DIR", str(tmp_path / "instance"))
    monkeypatch.setenv("CCHC_DATABASE_URL", f"sqlite:///{tmp_path / 'unused.sqlite'}")
    application = create_app({"TESTING": True})
    yield application
    database_of(application).engine.dispose()


def _template(rule: str) -> str:
    """A Flask rule as an OpenAPI path: /x/<int(min=1):x_id> becomes /x/{x_id}."""
    return re.sub(r"<(?:[^:<>]+:)?(\w+)>", r"{\1}", rule)


def test_every_route_is_documented_and_every_operation_is_a_route(app: Flask) -> None:
    routes = {
        (_template(rule.rule)[len(PREFIX) :], method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(PREFIX + "/")
        for method in (rule.methods or set()) - IMPLICIT
    }
    documented = {
        (path, method)
        for path, item in document()["paths"].items()
        for method in item
        if method in METHODS
    }
    assert routes, "no /api/v1 routes found"
    assert sorted(routes - documented) == [], "routes missing from the document"
    assert sorted(documented - routes) == [], "documented operations without a route"


def test_the_served_document_is_the_document(app: Flask) -> None:
    response = app.test_client().get(f"{PREFIX}/openapi.json")
    assert response.status_code == 200
    assert response.get_json() == document(server_url=PREFIX)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_the_document_is_well_formed() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    operation_ids = []
    for path, item in doc["paths"].items():
        in_template = set(re.findall(r"{(\w+)}", path))
        for method, operation in item.items():
            operation_ids.append(operation["operationId"])
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == in_template, (method, path)
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    error = response["content"]["application/json"]["schema"]
                    assert error == {"$ref": "#/components/schemas/Error"}, (method, path, status)
            if operation.get("security") != []:
                assert "401" in operation["responses"], (method, path)
    assert len(operation_ids) == len(set(operation_ids))


# --- schemathesis -------------------------------------------------------------------------------


if schemathesis is None:

    def test_schemathesis_finds_no_server_error() -> None:
        pytest.skip(
            "schemathesis is not installed: add it to the dev dependencies "
            "(pip install -e '.[dev]') to fuzz the API against its OpenAPI document"
        )

else:
    CALLERS = ("vp.canbo", "lanhdao")  # a unit's member (task work) and the ward leader (audit)

    @pytest.fixture
    def fuzzed_app(
        fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[Flask]:
        monkeypatch.setenv("CCHC_DATABASE_URL", fresh_db_url)
        monkeypatch.setenv("CCHC_INSTANCE_DIR", str(tmp_path / "instance"))
        assert CliRunner().invoke(main, ["init", "--demo"], catch_exceptions=False).exit_code == 0
        application = create_app({"TESTING": True})
        yield application
        database_of(application).engine.dispose()

    def _token(app: Flask, username: str) -> tuple[int, dict[str, str]]:
        """A fresh token of `username`: its id and the headers that use it."""
        with app.app_context():
            session = db_session()
            user = find_user(session, username)
            assert user is not None
            org = session.get_one(Organization, user.organization_id)
            row, plaintext = create_token(
                session, org, user, name="schemathesis", now=datetime.now(UTC), trail=audit_trail()
            )
            session.commit()
            return row.id, {"Authorization": f"Bearer {plaintext}"}

    def _known_objects(app: Flask) -> dict[str, int]:
        """Objects for the fuzzer to aim at besides random ids (which are mostly not found): an
        instance in progress with one evidence file and one contribution request."""
        client = app.test_client()
        _id, member = _token(app, "vp.canbo")
        api = PREFIX
        rows = client.get(f"{api}/instances?number=12&unit=VP", headers=member).get_json()
        tid = rows["items"][0]["id"]
        started = client.post(
            f"{api}/instances/{tid}/events", headers=member, json={"event": "start"}
        )
        assert started.status_code == 200
        product = client.get(f"{api}/instances/{tid}", headers=member).get_json()["products"][0]
        evidence = client.post(
            f"{api}/instances/{tid}/evidence",
            headers=member,
            data={"product": product, "file": (io.BytesIO(b"%PDF-1.4\n%%EOF\n"), "a.pdf")},
            content_type="multipart/form-data",
        ).get_json()
        request = client.post(
            f"{api}/instances/{tid}/contributions", headers=member, json={"unit": "KTHTDT"}
        ).get_json()
        return {"instance_id": tid, "evidence_id": evidence["id"], "request_id": request["id"]}

    @pytest.mark.db
    @pytest.mark.slow
    def test_schemathesis_finds_no_server_error(fuzzed_app: Flask) -> None:
        """Every operation, with data that fits the document and data that does not, as two
        callers: never a 500, and every answer (status, content type, body) documented."""
        schema = schemathesis.openapi.from_wsgi(f"{PREFIX}/openapi.json", fuzzed_app)
        labels = {result.ok().label for result in schema.get_all_operations()}
        documented = {
            f"{method.upper()} {path}"
            for path, item in document()["paths"].items()
            for method in item
            if method in METHODS
        }
        # schemathesis leaves out the document's own address; everything else is fuzzed.
        assert labels == documented - {"GET /openapi.json"}
        known = _known_objects(fuzzed_app)
        failures: list[str] = []
        for username in CALLERS:
            for result in schema.get_all_operations():
                operation = result.ok()
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    # A fresh token each time: the fuzzer may revoke the one it is using.
                    spare, _headers = _token(fuzzed_app, username)
                    _id, headers = _token(fuzzed_app, username)
                    targets = {**known, "token_id": spare}
                    try:
                        _fuzz(operation, mode, headers, targets)()
                    except Exception as exc:
                        failures.append(f"{username} {mode.value} {operation.label}: {exc}")
        assert failures == [], "\n\n".join(failures)

    def _fuzz(
        operation: Any, mode: GenerationMode, headers: dict[str, str], targets: dict[str, int]
    ) -> Any:
        """A hypothesis test of one operation in one generation mode: random path ids, or the
        known objects' ids."""
        strategy = operation.as_strategy(generation_mode=mode)
        names = re.findall(r"{(\w+)}", operation.path)
        if names and all(name in targets for name in names):
            aimed = {name: targets[name] for name in names}
            strategy = st.one_of(
                strategy, operation.as_strategy(generation_mode=mode, path_parameters=aimed)
            )

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
        )
        def run(case: Any) -> None:
            case.call_and_validate(
                headers=headers,
                checks=[
                    not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                ],
            )

        return run
