"""The lifecycle of a task instance as a python-statemachine StateMachine.

The machine knows only which transitions exist. Who may fire them, and with what, is decided
by workflow.permissions and checked by the engine.

`Lifecycle` is the one definition of the states and transitions. The engine does not build a
machine per transition (about 0.13 ms to build and 0.1 ms to send, more than a whole bare
transaction on SQLite): it validates each event against the table read once from this class
(`target_of`, `transitions_from`), and tests/workflow/test_lifecycle_machine.py drives the
machine itself over every state and event to check that the table says what it does.
"""

from __future__ import annotations

from typing import Any

from statemachine import State, StateMachine

from workflow.states import TaskState


class Lifecycle(StateMachine):
    """assigned → in_progress → evidence_submitted → reviewed → accepted | returned;
    returned → in_progress (rework). awaiting_schedule waits for a due date set by VHXH or the
    ward leader; any open state may be cancelled by the ward leader."""

    # `initial` only matters for a model without a stored state; instances are always created
    # with one (awaiting_schedule or assigned).
    awaiting_schedule = State(value=TaskState.AWAITING_SCHEDULE.value, initial=True)
    assigned = State(value=TaskState.ASSIGNED.value)
    in_progress = State(value=TaskState.IN_PROGRESS.value)
    evidence_submitted = State(value=TaskState.EVIDENCE_SUBMITTED.value)
    reviewed = State(value=TaskState.REVIEWED.value)
    returned = State(value=TaskState.RETURNED.value)
    accepted = State(value=TaskState.ACCEPTED.value, final=True)
    cancelled = State(value=TaskState.CANCELLED.value, final=True)

    schedule = awaiting_schedule.to(assigned)
    start = assigned.to(in_progress)
    submit = in_progress.to(evidence_submitted)
    review = evidence_submitted.to(reviewed)
    return_for_rework = evidence_submitted.to(returned) | reviewed.to(returned)
    accept = reviewed.to(accepted)
    rework = returned.to(in_progress)
    cancel = (
        awaiting_schedule.to(cancelled)
        | assigned.to(cancelled)
        | in_progress.to(cancelled)
        | evidence_submitted.to(cancelled)
        | reviewed.to(cancelled)
        | returned.to(cancelled)
    )


EVENTS: tuple[str, ...] = (
    "schedule",
    "start",
    "submit",
    "review",
    "return_for_rework",
    "accept",
    "rework",
    "cancel",
)

EVENT_LABELS: dict[str, str] = {
    "schedule": "Xác định thời hạn",
    "start": "Bắt đầu thực hiện",
    "submit": "Nộp sản phẩm",
    "review": "Thẩm định",
    "return_for_rework": "Trả lại để hoàn thiện",
    "accept": "Nghiệm thu",
    "rework": "Hoàn thiện lại",
    "cancel": "Hủy nhiệm vụ",
}


def machine_for(model: Any) -> Lifecycle:
    """A machine bound to a model object's `state` attribute (SQLAlchemy does not run
    __init__ on loaded rows, so the library's model mixin cannot be used)."""
    return Lifecycle(model, state_field="state")


def transitions_from(state: str) -> list[str]:
    """The events the lifecycle allows from a stored state, in EVENTS order."""
    return [event for event in EVENTS if (state, event) in _TRANSITIONS]


def target_of(state: str, event: str) -> str | None:
    """The state `event` leads to from `state`, or None when the lifecycle has no such move."""
    return _TRANSITIONS.get((state, event))


def _transition_table() -> dict[tuple[str, str], str]:
    table: dict[tuple[str, str], str] = {}
    for state in Lifecycle.states:
        for transition in state.transitions:
            for event in transition.events:
                table[(str(state.value), str(event))] = str(transition.target.value)
    return table


_TRANSITIONS = _transition_table()
