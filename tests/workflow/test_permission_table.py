"""Every (state, event, actor) combination, for a task led by VP and for one led by VHXH.

The expected table below is written from the issue's rules ("who may do what") and
workflow/permissions.py, not computed from them:

- start, rework: members of the lead unit (its head is a member too);
- submit: the lead unit's head (the 2026 plan's policy requires the head);
- review, and return_for_rework from evidence_submitted: a VHXH reviewer;
- accept, and return_for_rework from reviewed: the approver (head of VHXH), except for VHXH's
  own tasks, which the ward leader decides;
- schedule: VHXH's leadership (head or approver) or the ward leader;
- cancel: the ward leader, from any open state.

Every combination is fired with complete, valid inputs, so the only refusals come from the
transition and permission rules: invalid_transition (the lifecycle has no such transition from
that state; checked before who the actor is), not_permitted (wrong role or unit), self_review
and same_reviewer (four eyes). Every combination the lifecycle allows is fired once more with
no inputs: a permitted person then gets the code of the first missing input (reason_required,
...), anyone else the same refusal as before.

The instance is put into each state by assigning its stored state (and the submission fields
that state implies), inside a savepoint rolled back after each combination.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from audit.ledger import Ledger
from workflow.errors import DomainError
from workflow.lifecycle import EVENTS as ENGINE_EVENTS
from workflow.models import Plan, TaskInstance, User
from workflow.states import TaskState

from ._helpers import EVENTS, FULL_INPUTS, LIFECYCLE, STATES
from .conftest import ORIGIN, Ward

ACTORS = (
    "vp.canbo",  # member of VP
    "vp.truong",  # head of VP
    "kthtdt.canbo",  # member of another unit
    "vhxh.thamdinh1",  # VHXH member and reviewer
    "vhxh.truong",  # VHXH member, head and approver
    "lanhdao",  # ward leader
    "kiemtoan",  # auditor
    "quantri",  # administrator
)
OK = "ok"


def only(*allowed: str) -> dict[str, str]:
    assert set(allowed) <= set(ACTORS)
    return {actor: OK if actor in allowed else "not_permitted" for actor in ACTORS}


# Who may fire each event where the lifecycle allows it. A key (event, state) overrides the
# event's row in that state.
Rules = dict[Any, dict[str, str]]

VP_LED: Rules = {
    "schedule": only("vhxh.truong", "lanhdao"),
    "start": only("vp.canbo", "vp.truong"),
    "submit": only("vp.truong"),
    "review": only("vhxh.thamdinh1"),
    ("return_for_rework", "evidence_submitted"): only("vhxh.thamdinh1"),
    ("return_for_rework", "reviewed"): only("vhxh.truong"),
    "accept": only("vhxh.truong"),
    "rework": only("vp.canbo", "vp.truong"),
    "cancel": only("lanhdao"),
}

# VHXH's own task: its reviewer (a VHXH member) works on it and may still review it; its head
# is the approver, but nobody decides on their own unit's work, so the ward leader decides.
VHXH_LED: Rules = {
    "schedule": only("vhxh.truong", "lanhdao"),
    "start": only("vhxh.thamdinh1", "vhxh.truong"),
    "submit": only("vhxh.truong"),
    "review": only("vhxh.thamdinh1"),
    ("return_for_rework", "evidence_submitted"): only("vhxh.thamdinh1"),
    ("return_for_rework", "reviewed"): only("lanhdao"),
    "accept": only("lanhdao"),
    "rework": only("vhxh.thamdinh1", "vhxh.truong"),
    "cancel": only("lanhdao"),
}


# Two more situations, to put the four-eyes codes in the table as well.
# VHXH's task where the reviewer vhxh.thamdinh1 gave evidence (vhxh.thamdinh2 reviews it):
# thamdinh1 may neither review nor return it.
VHXH_LED_REVIEWER_GAVE_EVIDENCE: Rules = {
    **VHXH_LED,
    "review": {**only(), "vhxh.thamdinh1": "self_review"},
    ("return_for_rework", "evidence_submitted"): {**only(), "vhxh.thamdinh1": "self_review"},
}
# VP's task whose reviewer was vhxh.truong (who has since become the approver, or held both
# roles): the approver may not decide on the submission they reviewed.
VP_LED_REVIEWED_BY_THE_APPROVER: Rules = {
    **VP_LED,
    "accept": {**only(), "vhxh.truong": "same_reviewer"},
    ("return_for_rework", "reviewed"): {**only(), "vhxh.truong": "same_reviewer"},
}

# What an allowed event refuses when its inputs are missing (permission is checked first).
REQUIRED = {
    "schedule": "due_required",
    "review": "findings_required",
    "return_for_rework": "reason_required",
    "accept": "assessment_required",
    "cancel": "reason_required",
}


def expected(rules: Rules, state: str, event: str, actor: str) -> str:
    if (state, event) not in LIFECYCLE:
        return "invalid_transition"
    row = rules.get((event, state), rules.get(event))
    assert row is not None, f"no rule for {event}"
    return row[actor]


def expected_without_inputs(rules: Rules, state: str, event: str, actor: str) -> str:
    want = expected(rules, state, event, actor)
    return REQUIRED.get(event, OK) if want == OK else want


@dataclass(frozen=True)
class Scenario:
    """A task instance and the people its current submission implies."""

    number: int
    unit: str
    uploader: str  # gave the evidence (while in_progress)
    submitter: str  # submitted it (evidence_submitted and later)
    reviewer: str  # reviewed it (reviewed and later)
    rules: Rules
    states: tuple[str, ...] = STATES


SCENARIOS = {
    "VP": Scenario(11, "VP", "vp.canbo", "vp.truong", "vhxh.thamdinh1", VP_LED),
    "VHXH": Scenario(1, "VHXH", "vhxh.canbo", "vhxh.truong", "vhxh.thamdinh1", VHXH_LED),
    "VHXH-reviewer-gave-evidence": Scenario(
        1,
        "VHXH",
        "vhxh.thamdinh1",
        "vhxh.truong",
        "vhxh.thamdinh2",
        VHXH_LED_REVIEWER_GAVE_EVIDENCE,
        ("evidence_submitted", "reviewed"),
    ),
    "VP-reviewed-by-the-approver": Scenario(
        11,
        "VP",
        "vp.canbo",
        "vp.truong",
        "vhxh.truong",
        VP_LED_REVIEWED_BY_THE_APPROVER,
        ("evidence_submitted", "reviewed"),
    ),
}

SUBMITTED = ("evidence_submitted", "reviewed", "accepted", "returned")
REVIEWED = ("reviewed", "accepted", "returned")


def put_in_state(ward: Ward, inst: TaskInstance, state: str, s: Scenario) -> None:
    """Set the stored state directly, with the submission fields that state implies."""
    inst.state = state
    submitted = state in SUBMITTED
    inst.submission_round = 1 if submitted else 0
    inst.submitted_by_id = ward.user(s.submitter).id if submitted else None
    inst.submitted_at = ward.clock.now() if submitted else None
    inst.reviewed_by_id = ward.user(s.reviewer).id if state in REVIEWED else None
    inst.recommendation = "accept" if state in REVIEWED else None
    inst.accepted_at = ward.clock.now() if state == "accepted" else None
    ward.session.flush()


def stored(ward: Ward, instance_id: int) -> tuple[str, int]:
    """State and version as the database holds them (not the identity map)."""
    row = ward.session.execute(
        select(TaskInstance.state, TaskInstance.version).where(TaskInstance.id == instance_id)
    ).one()
    return row.state, row.version


def test_the_table_covers_every_state_and_event() -> None:
    assert set(STATES) == {s.value for s in TaskState}
    assert set(EVENTS) == set(ENGINE_EVENTS)
    assert set(LIFECYCLE.values()) <= set(STATES)
    for s in SCENARIOS.values():
        for state in STATES:
            for event in EVENTS:
                for actor in ACTORS:
                    assert expected(s.rules, state, event, actor)  # a rule for everyone


class Table:
    """Fires one combination inside a savepoint and collects every way it went wrong."""

    def __init__(self, ward: Ward, scenario: Scenario, lead: str) -> None:
        self.ward, self.s, self.lead = ward, scenario, lead
        self.users: dict[str, User] = {name: ward.user(name) for name in ACTORS}
        self.ledger = Ledger(ORIGIN)
        self.problems: list[str] = []
        self.outcomes: dict[str, int] = {}

    def run(self, inst: TaskInstance, state: str, event: str, actor: str, complete: bool) -> None:
        e, session = self.ward.engine, self.ward.session
        rules = self.s.rules
        want = (expected if complete else expected_without_inputs)(rules, state, event, actor)
        where = f"{self.lead}, {state}, {event} by {actor}" + ("" if complete else ", no inputs")
        problem = self.problems.append
        savepoint = session.begin_nested()
        try:
            put_in_state(self.ward, inst, state, self.s)
            version, size = inst.version, self.ledger.size(session)
            inputs = FULL_INPUTS if complete else {}
            try:
                out = e.fire(inst.id, event, self.users[actor], **inputs)
            except DomainError as err:
                got = err.code
                if not err.message or not any(ord(ch) > 127 for ch in err.message):
                    problem(f"{where}: message not in Vietnamese: {err.message!r}")
                if (inst.state, inst.version) != (state, version):
                    problem(f"{where}: refusal changed the instance in memory")
                if stored(self.ward, inst.id) != (state, version):
                    problem(f"{where}: refusal changed the stored instance")
                if self.ledger.size(session) != size:
                    problem(f"{where}: refusal wrote to the audit log")
                if session.new or session.dirty:
                    problem(f"{where}: refusal left pending changes")
            else:
                got = OK
                target = LIFECYCLE[(state, event)]
                if (out.before, out.after, out.version) != (state, target, version + 1):
                    problem(f"{where}: outcome {out}")
                if stored(self.ward, inst.id) != (target, version + 1):
                    problem(f"{where}: stored {stored(self.ward, inst.id)}")
                if self.ledger.size(session) != size + 1 or out.audit_seq != size:
                    problem(f"{where}: not exactly one audit entry")
                entry = self.ledger.entry(session, size).content()
                if (
                    entry["action"] != f"task.{event}"
                    or entry["actor"]["user"] != actor
                    or entry["object"] != {"type": "task_instance", "id": str(inst.id)}
                    or entry["before"]["state"] != state
                    or entry["after"]["state"] != target
                ):
                    problem(f"{where}: audit entry {entry}")
            if got != want:
                problem(f"{where}: expected {want}, got {got}")
            self.outcomes[got] = self.outcomes.get(got, 0) + 1
        finally:
            savepoint.rollback()
            # A savepoint's rollback expires only what was flushed inside it.
            session.expire(inst)

    def check_enabled_events(self, inst: TaskInstance, state: str, actor: str) -> None:
        savepoint = self.ward.session.begin_nested()
        try:
            put_in_state(self.ward, inst, state, self.s)
            enabled = self.ward.engine.enabled_events(inst, self.users[actor])
        finally:
            savepoint.rollback()
            self.ward.session.expire(inst)
        allowed = {ev for ev in EVENTS if expected(self.s.rules, state, ev, actor) == OK}
        if len(enabled) != len(set(enabled)) or set(enabled) != allowed:
            self.problems.append(
                f"{self.lead}, {state}: enabled_events({actor}) = {enabled}, "
                f"expected {sorted(allowed)}"
            )


@pytest.mark.db
@pytest.mark.parametrize("lead", list(SCENARIOS))
def test_permission_table(ward: Ward, lead: str) -> None:
    s = SCENARIOS[lead]
    inst = ward.instance(s.number, s.unit)
    # Evidence for every product, so that submit's own requirement is met.
    ward.engine.fire(inst.id, "start", ward.user(s.uploader))
    ward.fill_evidence(inst, s.uploader)
    ward.session.flush()

    table = Table(ward, s, lead)
    for state in s.states:
        for actor in ACTORS:
            table.check_enabled_events(inst, state, actor)
            for event in EVENTS:
                table.run(inst, state, event, actor, complete=True)
                if (state, event) in LIFECYCLE:
                    table.run(inst, state, event, actor, complete=False)

    assert not table.problems, "\n".join(table.problems)
    # Every combination ran, and the expected outcomes all occurred.
    wanted: dict[str, int] = {}
    for state in s.states:
        for event in EVENTS:
            for actor in ACTORS:
                code = expected(s.rules, state, event, actor)
                wanted[code] = wanted.get(code, 0) + 1
                if (state, event) in LIFECYCLE:
                    code = expected_without_inputs(s.rules, state, event, actor)
                    wanted[code] = wanted.get(code, 0) + 1
    assert table.outcomes == wanted


@pytest.mark.db
def test_members_submit_when_the_plans_policy_allows_it(ward: Ward) -> None:
    e, u = ward.engine, ward.user
    inst = ward.instance(11, "VP")
    e.fire(inst.id, "start", u("vp.canbo"))
    ward.fill_evidence(inst, "vp.canbo")
    assert e.enabled_events(inst, u("vp.canbo")) == []

    plan = ward.session.scalars(select(Plan)).one()
    plan.policy = {**plan.policy, "submit_requires_head": False}
    ward.session.flush()

    assert "submit" in e.enabled_events(inst, u("vp.canbo"))
    assert "submit" not in e.enabled_events(inst, u("kthtdt.canbo"))
    with pytest.raises(DomainError) as info:
        e.fire(inst.id, "submit", u("kthtdt.canbo"))
    assert info.value.code == "not_permitted"
    out = e.fire(inst.id, "submit", u("vp.canbo"))
    assert out.after == "evidence_submitted"
    assert inst.submitted_by_id == u("vp.canbo").id
