"""The transition's read stays a handful of index lookups however long a task's history is."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from workflow.engine import _read_sql

pytestmark = pytest.mark.db


@pytest.mark.parametrize("submission", [False, True])
def test_the_read_of_written_explanations_goes_by_instance_and_kind(
    engine: Engine, submission: bool
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's planner scans tables this small whatever the indexes")
    with engine.connect() as conn:
        plan = [
            row[-1]
            for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + _read_sql(False, submission), (1,)
            )
        ]
    remark_lookups = [step for step in plan if step.startswith("SEARCH x ")]
    # Without the (instance_id, kind) index (migration 0010) each of these visited every
    # remark of the instance: comments, findings and returns included.
    assert remark_lookups, plan
    assert all(
        "ix_remark_instance_kind (instance_id=? AND kind=?)" in step for step in remark_lookups
    ), plan
