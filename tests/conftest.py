"""Shared fixtures: one migrated database per backend per test session, a rolled-back
transaction per test, and the same database tests on SQLite and PostgreSQL.

PostgreSQL runs when CCHC_TEST_DATABASE_URL is set (any database on the server: each test
session creates and drops its own uniquely named database next to it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from workflow.db import make_engine
from workflow.migrate import upgrade

PG_ENV = "CCHC_TEST_DATABASE_URL"
REPO = Path(__file__).resolve().parent.parent
SEED_NAME = "000_309758a01e80c9b6.txt"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _shared_dir() -> Path:
    """$CCHC_SHARED_DIR, else the workplace's `shared/` folder beside the checkout or above it."""
    env = os.environ.get("CCHC_SHARED_DIR")
    if env:
        return Path(env)
    for parent in REPO.parents:
        if (parent / "shared" / "testdata").is_dir():
            return parent / "shared"
    return REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A file of ../shared (conformance data, the seed plan); skip when absent, fail in CI."""
    path = _shared_dir().joinpath(*parts)
    if not path.exists():
        if in_ci():
            pytest.fail(f"{path} is missing and CI=true: conformance data must be present")
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="session")
def seed_path() -> Path:
    """The plan's text (../shared/seeds)."""
    return shared_path("seeds", SEED_NAME)


@pytest.fixture(scope="session")
def rfc6962_dir() -> Path:
    """The RFC 6962 conformance cases (../shared/testdata/rfc6962)."""
    return shared_path("testdata", "rfc6962")


def _backends() -> list[str]:
    return ["sqlite", "postgresql"] if os.environ.get(PG_ENV) else ["sqlite"]


def pytest_report_header(config: pytest.Config) -> str:
    if os.environ.get(PG_ENV):
        return f"database tests: SQLite and PostgreSQL ({PG_ENV} is set)"
    return f"database tests: SQLite only; PostgreSQL SKIPPED ({PG_ENV} is not set)"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not os.environ.get(PG_ENV):
        terminalreporter.write_line(
            f"NOTE: PostgreSQL was skipped: set {PG_ENV} to run every database test on it too.",
            yellow=True,
        )


def _create_pg_database(base_url: str) -> tuple[str, str]:
    url = make_url(base_url).set(drivername="postgresql+psycopg")
    name = f"cchc_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return name, url.set(database=name).render_as_string(hide_password=False)


def _drop_pg_database(base_url: str, name: str) -> None:
    url = make_url(base_url).set(drivername="postgresql+psycopg")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session", params=_backends())
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """URL of a freshly migrated database of one backend, for the whole test session."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite'}"
        upgrade(url)
        yield url
        return
    base = os.environ[PG_ENV]
    name, url = _create_pg_database(base)
    try:
        upgrade(url)
        yield url
    finally:
        _drop_pg_database(base, name)


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside an outer transaction that is rolled back after the test.

    Code under test may commit: with join_transaction_mode="create_savepoint" its commits
    release savepoints and the outer rollback still undoes everything.
    """
    connection = engine.connect()
    outer = connection.begin()
    sess = Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    try:
        yield sess
    finally:
        sess.close()
        outer.rollback()
        connection.close()


@pytest.fixture
def fresh_db_url(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[str]:
    """A separate, empty, migrated database of the same backend, for tests that must commit
    for real (concurrency, CLI runs, migrations)."""
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
        upgrade(url)
        yield url
        return
    base = os.environ[PG_ENV]
    name, url = _create_pg_database(base)
    try:
        upgrade(url)
        yield url
    finally:
        _drop_pg_database(base, name)
