"""Database engines and sessions: SQLite (embedded default) and PostgreSQL, configured alike."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from audit.ledger import enable_append_at_commit
from workflow.models import Organization

DATABASE_URL_ENV = "CCHC_DATABASE_URL"
DEFAULT_SQLITE_NAME = "cchc.sqlite"


def default_database_url(instance_dir: Path) -> str:
    """The URL from CCHC_DATABASE_URL, or the SQLite file under the instance folder."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    return f"sqlite:///{instance_dir / DEFAULT_SQLITE_NAME}"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; on SQLite, WAL mode, enforced foreign keys and immediate transactions.

    SQLite transactions start with BEGIN IMMEDIATE: a writer takes the database's write lock
    when it begins, so two writers queue (busy_timeout) instead of one failing when it
    upgrades a read lock. The audit log relies on this to serialise appends on SQLite.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if is_sqlite(url):
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **kwargs)
    _configure_postgresql(engine)
    # The engine's audit appends may go with their transaction's COMMIT (docs/audit.md).
    enable_append_at_commit(engine)
    return engine


def _configure_postgresql(engine: Engine) -> None:
    # The audit log's functions and the literals of an append sent with its COMMIT are
    # written for standard_conforming_strings = on (PostgreSQL's default since 9.1); a server
    # or role configured with the old behaviour would read their backslashes as escapes.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SET standard_conforming_strings = on")
        finally:
            cursor.close()
        dbapi_connection.commit()  # a SET rolled back with its transaction would not hold


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and ignores SAVEPOINT semantics;
    # SQLAlchemy's documented recipe takes it over and emits BEGIN itself.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            if engine.url.database not in (None, "", ":memory:"):
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def lock_row(session: Session, key: InstrumentedAttribute[int], value: int) -> bool:
    """Lock the row whose `key` (its primary key column) is `value` until the transaction
    ends, by a statement of its own; False if there is no such row. FOR NO KEY UPDATE: the
    row's writers queue, while rows that refer to it can still be written. On SQLite, BEGIN
    IMMEDIATE has already serialised the whole transaction: nothing is sent, and True."""
    if session.connection().dialect.name == "sqlite":
        return True
    found = session.execute(select(key).where(key == value).with_for_update(key_share=True)).first()
    return found is not None


def hold_ward(session: Session, organization_id: int) -> None:
    """Lock the ward's row until the transaction ends, so that actions that check the ward's
    records and then write (one sample draw a year, at least one administrator left) run one
    after the other: the second checks what the first committed."""
    lock_row(session, Organization.id, organization_id)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)
