"""Alembic environment: one migration history for the workflow and the audit ledger."""

from __future__ import annotations

from alembic import context

from audit.schema import metadata as audit_metadata
from workflow.db import make_engine
from workflow.models import Base

config = context.config
target_metadata = [Base.metadata, audit_metadata]


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


def _include(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Leave out of the comparison what the models do not describe on purpose: SQLite's rowid
    key of audit_entry (migration 0013), which PostgreSQL's table does not have."""
    table = getattr(getattr(obj, "table", None), "name", None)
    return not (type_ == "column" and name == "entry_key" and table == "audit_entry")


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        include_object=_include,
        render_as_batch=connection.dialect.name == "sqlite",  # type: ignore[attr-defined]
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
