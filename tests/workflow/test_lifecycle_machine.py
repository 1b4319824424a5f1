"""The engine's plain-statement path stays true to the lifecycle machine and to the ORM.

- Lifecycle (python-statemachine) is the one definition of states and transitions: the table
  the engine validates against is read from it, and driving the machine itself over every
  (state, event) gives the same targets and refusals as that table and the issue's lifecycle.
- `fire` writes without the ORM's unit of work, yet a copy of the instance in the session
  shows the new state and version, and shows the old ones again once the savepoint it changed
  in rolls back.
- The version check in the UPDATE's WHERE clause writes nothing (no state, no remark, no
  outbox row) when the row moved.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from statemachine.exceptions import TransitionNotAllowed

from workflow import engine as engine_module
from workflow.errors import DomainError
from workflow.lifecycle import Lifecycle, machine_for, target_of, transitions_from
from workflow.models import Notification, Remark, TaskInstance

from ._helpers import EVENTS, LIFECYCLE, STATES, drive_to_reviewed
from .conftest import Ward


class Slot:
    """A bare model object for the machine."""

    def __init__(self, state: str) -> None:
        self.state = state


@pytest.mark.parametrize("state", STATES)
def test_the_engines_table_is_the_machines(state: str) -> None:
    assert {str(s.value) for s in Lifecycle.states} == set(STATES)
    for event in EVENTS:
        slot = Slot(state)
        try:
            machine_for(slot).send(event)
            driven: str | None = slot.state
        except TransitionNotAllowed:
            driven = None
        assert target_of(state, event) == driven == LIFECYCLE.get((state, event)), event
    assert transitions_from(state) == [e for e in EVENTS if (state, e) in LIFECYCLE]


def counts(ward: Ward, instance_id: int) -> tuple[Any, ...]:
    session = ward.session
    row = session.execute(
        select(TaskInstance.state, TaskInstance.version).where(TaskInstance.id == instance_id)
    ).one()
    remarks = session.scalar(
        select(func.count()).select_from(Remark).where(Remark.instance_id == instance_id)
    )
    outbox = session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(Notification.instance_id == instance_id)
    )
    return (*row, remarks, outbox, ward.log_size())


@pytest.mark.db
def test_the_sessions_copy_follows_fire_and_its_rollback(ward: Ward) -> None:
    inst = ward.instance(11, "VP")
    state, version = inst.state, inst.version
    assert state == "assigned"
    savepoint = ward.session.begin_nested()
    ward.clock.advance_to(ward.clock.now() + timedelta(minutes=5))
    out = ward.engine.fire(inst.id, "start", ward.user("vp.canbo"))
    assert (inst.state, inst.version) == ("in_progress", version + 1) == (out.after, out.version)
    assert inst.updated_at == ward.clock.now()
    assert inst not in ward.session.dirty, "set as stored, not as a pending change"
    assert counts(ward, inst.id)[:2] == ("in_progress", version + 1)
    savepoint.rollback()
    assert (inst.state, inst.version) == (state, version)
    assert counts(ward, inst.id)[:2] == (state, version)


@pytest.mark.db
def test_a_moved_row_writes_nothing(ward: Ward) -> None:
    """What the version check does if the row moved between the read and the write (the
    lock makes it unreachable through `fire`): the write reports it and adds nothing."""
    inst = ward.instance(11, "VP")
    drive_to_reviewed(ward, inst)
    ward.session.flush()
    before = counts(ward, inst.id)
    conn = ward.session.connection()
    row = engine_module._read_instance(conn, inst.id)
    inputs = engine_module._Inputs(
        reason="Bổ sung", assessment="", findings="", recommendation="", due=None, explanation=""
    )
    actor = ward.user("vhxh.truong")
    change = engine_module._change(
        "return_for_rework", "returned", row, actor, inputs, ward.clock.now()
    )
    assert change.remark is not None and change.outbox is not None
    moved = dataclasses.replace(change, expected_version=row.version - 1)
    with pytest.raises(DomainError) as info:
        ward.engine._write(conn, moved)
    assert info.value.code == "stale_version"
    assert counts(ward, inst.id) == before
    # The same change at the version read does write the state, the remark and the outbox.
    ward.engine._write(conn, change)
    after = counts(ward, inst.id)
    assert after[:2] == ("returned", row.version + 1)
    assert after[2] == before[2] + 1 and after[3] > before[3]
