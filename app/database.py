"""One SQLAlchemy session per request; the request boundary commits once or rolls back."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from workflow.db import make_engine, session_factory
from workflow.trail import AuditTrail

_EXT = "cchc.db"
_TRAIL = "cchc.trail"


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions: sessionmaker[Session] = session_factory(engine)


def init_app(app: Flask, trail: AuditTrail) -> None:
    app.extensions[_EXT] = Database(make_engine(app.config["CCHC_DATABASE_URL"]))
    app.extensions[_TRAIL] = trail
    app.teardown_appcontext(_close_session)


def database_of(app: Flask) -> Database:
    db: Database = app.extensions[_EXT]
    return db


def database() -> Database:
    return database_of(current_app)


def audit_trail() -> AuditTrail:
    """The deployment's audit trail (its checkpoint signer, loaded once at start)."""
    trail: AuditTrail = current_app.extensions[_TRAIL]
    return trail


def db_session() -> Session:
    if "db_session" not in g:
        g.db_session = database().sessions()
    session: Session = g.db_session
    return session


def _close_session(_exc: BaseException | None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        # Whatever the view did not commit is discarded: nothing half-done survives a request.
        session.rollback()
        session.close()
