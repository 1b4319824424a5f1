"""The transition's read stays a handful of index lookups however long a task's history is;
the transition rewrites no index it need not, and the reads by state go through the ward."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, inspect
from sqlalchemy.orm import Session

from definitions.calendar import load_calendar
from workflow import deadlines, queries, reports
from workflow.engine import _read_sql
from workflow.trail import AuditTrail

from .conftest import Ward

pytestmark = pytest.mark.db


def _sqlite_plan(conn: Connection, statement: str, parameters: Any) -> list[str]:
    """SQLite's query plan for `statement`: its steps, in words."""
    return [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]


@pytest.mark.parametrize("submission", [False, True])
def test_the_read_of_written_explanations_goes_by_instance_and_kind(
    engine: Engine, submission: bool
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's planner scans tables this small whatever the indexes")
    with engine.connect() as conn:
        plan = _sqlite_plan(conn, _read_sql(False, submission), (1,))
    remark_lookups = [step for step in plan if step.startswith("SEARCH x ")]
    # Without the (instance_id, kind) index (migration 0010) each of these visited every
    # remark of the instance: comments, findings and returns included.
    assert remark_lookups, plan
    assert all(
        "ix_remark_instance_kind (instance_id=? AND kind=?)" in step for step in remark_lookups
    ), plan


# The columns every lifecycle transition writes (state, version, updated_at): an index holding
# one of them is rewritten on every transition, two more B-tree pages at each commit.
_MOVED_BY_EVERY_TRANSITION = {"state", "version", "updated_at"}


def test_no_index_of_task_instance_is_rewritten_by_every_transition(engine: Engine) -> None:
    indexes = inspect(engine).get_indexes("task_instance")
    assert indexes, "task_instance has its unit and plan-task indexes"
    rewritten = {
        index["name"]: sorted(set(index["column_names"]) & _MOVED_BY_EVERY_TRANSITION)
        for index in indexes
        if set(index["column_names"]) & _MOVED_BY_EVERY_TRANSITION
    }
    # Migration 0015 dropped the index on state: every query filtering on it goes through the
    # ward's units or plan tasks (the test below).
    assert rewritten == {}


def _statements_on_instances(session: Session, run: Callable[[], object]) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []
    conn = session.connection()

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM task_instance" in statement or "JOIN task_instance" in statement:
            seen.append((statement, parameters))

    event.listen(conn, "before_cursor_execute", grab)
    try:
        run()
    finally:
        event.remove(conn, "before_cursor_execute", grab)
    return seen


# The indexes by which a ward's instances are reached, and the column each is looked up by.
_WARD_KEYS = {
    "ix_task_instance_unit_due": "unit_id",
    "ix_task_instance_plan_task_id": "plan_task_id",
    "pk_task_instance": "id",  # SQLite's rowid: "USING INTEGER PRIMARY KEY"
}


def _sqlite_reads_of_instances(session: Session, statement: str, parameters: Any) -> list[str]:
    """How SQLite reaches task_instance in `statement`: each step, in words."""
    plan = _sqlite_plan(session.connection(), statement, parameters)
    steps = [s for s in plan if re.match(r"(SCAN|SEARCH) task_instance\b", s)]
    return [
        "by the ward"
        if any(s.startswith(f"SEARCH task_instance USING INDEX {ix} ") for ix in _WARD_KEYS)
        or s.startswith("SEARCH task_instance USING INTEGER PRIMARY KEY")
        else s
        for s in steps
    ]


def _looked_up_by_key(node: dict[str, Any]) -> bool:
    """A PostgreSQL plan node reading task_instance by one of _WARD_KEYS with a condition on
    its column (not a walk through the whole index)."""
    column = _WARD_KEYS.get(node.get("Index Name", ""))
    return column is not None and f"({column} = " in node.get("Index Cond", "")


def _pg_reads_of_instances(session: Session, statement: str, parameters: Any) -> list[str]:
    """How PostgreSQL reaches task_instance in `statement` when it may not scan the table
    (its tables here are too small for the planner to prefer an index): each step."""
    conn = session.connection()
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    try:
        [[explained]] = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters)
    finally:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = on")
    steps: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        children = node.get("Plans", [])
        if node.get("Relation Name") == "task_instance":
            lookups = [node, *(c for c in children if c["Node Type"] == "Bitmap Index Scan")]
            by_ward = any(_looked_up_by_key(n) for n in lookups)
            steps.append("by the ward" if by_ward else json.dumps(node)[:400])
        for child in children:
            walk(child)

    walk(explained[0]["Plan"])
    return steps


def test_the_ward_scoped_reads_by_state_reach_instances_through_the_wards_index(
    ward: Ward,
) -> None:
    """Without an index on state (migration 0015), every read filtering on it must still go
    to a ward's instances by its units or its plan's tasks, not through the whole table."""
    session = ward.session
    explain = (
        _sqlite_reads_of_instances
        if session.get_bind().dialect.name == "sqlite"
        else _pg_reads_of_instances
    )
    calendar = load_calendar()
    today = date(2026, 6, 1)
    reads: dict[str, Callable[[], object]] = {
        "review queue": lambda: reports.review_queue(
            session, ward.org, today=today, calendar=calendar
        ),
        "task list by state": lambda: queries.list_instances(session, ward.org, state="reviewed"),
        "work list by state": lambda: reports.work_list(
            session, ward.org, today=today, calendar=calendar, state="reviewed"
        ),
        "deadline check": lambda: deadlines.tick_tasks(
            session,
            ward.org,
            today=today,
            now=ward.clock.now(),
            calendar=calendar,
            trail=AuditTrail(),
        ),
    }
    for name, run in reads.items():
        statements = _statements_on_instances(session, run)
        assert statements, name
        for statement, parameters in statements:
            steps = explain(session, statement, parameters)
            assert steps, (name, statement)
            assert set(steps) == {"by the ward"}, (name, steps)
