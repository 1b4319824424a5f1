"""Random sequences of actions by random demo people, with random (sometimes missing or wrong)
inputs, on two task instances: one led by VP, one of VHXH's own tasks waiting for its date.

After every step: each instance's stored state is one of the eight; a success added exactly
one audit entry (and bumped the instance's version); a refusal (DomainError) added none,
changed nothing, in the database or in memory. At the end of every run the ward's log is
exported with a signed checkpoint and verifies, and its tail is exactly the successful
actions, in order.

Each run works inside a savepoint of the `ward` fixture's transaction, rolled back in
teardown, so the 0.7 s ward setup is paid once for all runs.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import select

from audit.checkpoint import NoteSigner, generate_key
from audit.export import ENTRIES_FILE, export_log
from audit.ledger import Ledger
from audit.verify import verify_export
from workflow.errors import DomainError
from workflow.models import Evidence, Remark, TaskInstance, User

from ._helpers import EVENTS, LIFECYCLE, STATES, snapshot
from .conftest import ORIGIN, PDF, Ward

ACTORS = (
    "vp.canbo",
    "vp.truong",
    "kthtdt.canbo",
    "vhxh.canbo",
    "vhxh.thamdinh1",
    "vhxh.thamdinh2",
    "vhxh.truong",
    "lanhdao",
    "kiemtoan",
    "quantri",
)
TASKS = (("VP", 11), ("VHXH", 4))  # task 4 of VHXH starts at awaiting_schedule

texts = st.sampled_from([None, "", "   ", "Nội dung đầy đủ"])
recommendations = st.sampled_from([None, "", "accept", "return", "có lẽ"])
dues = st.sampled_from([None, date(2025, 12, 31), date(2026, 6, 30)])  # before/after the start
versions = st.sampled_from(["none", "current", "stale"])
payloads = st.sampled_from(
    [PDF, PDF + b"% 2", b"\x89PNG\r\n\x1a\n" + b"\0" * 16, b"", b"MZ\x90\x00 not a document"]
)

SETTINGS = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class EngineMachine(RuleBasedStateMachine):
    def __init__(
        self, ward: Ward, signer: NoteSigner, verifier: str, out_dir: Path, tally: Counter[str]
    ) -> None:
        super().__init__()
        self.ward = ward
        self.session = ward.session
        self.signer, self.verifier, self.out_dir = signer, verifier, out_dir
        self.savepoint = self.session.begin_nested()
        self.users: dict[str, User] = {name: ward.user(name) for name in ACTORS}
        self.instances: list[int] = [ward.instance(number, unit).id for unit, number in TASKS]
        self.ledger = Ledger(ORIGIN)
        self.base_size = self.ledger.size(self.session)
        self.actions: list[str] = []  # the audit action of every success, in order
        self.evidence: list[int] = []
        self.last_refusal: str | None = None
        self.tally = tally  # successes by action and refusals by code, over all runs

    # --- the harness --------------------------------------------------------------------

    def inst(self, index: int) -> TaskInstance:
        return self.session.get_one(TaskInstance, self.instances[index])

    def attempt(self, index: int, action: str, call: Callable[[], Any]) -> Any:
        """Run one engine call; check what a success and what a refusal may change."""
        self.ward.clock.advance_to(self.ward.clock.now() + timedelta(minutes=1))
        self.session.flush()
        inst = self.inst(index)
        before = snapshot(self.session, inst.id, history=False)
        in_memory = (inst.state, inst.version)
        try:
            result = call()
        except DomainError as err:
            assert err.code and err.message, err
            assert (inst.state, inst.version) == in_memory, f"{action} refused but changed it"
            assert not self.session.new and not self.session.dirty, f"{action} left changes"
            assert snapshot(self.session, inst.id, history=False) == before, f"{action} wrote"
            self.tally[f"refused:{err.code}"] += 1
            self.last_refusal = err.code
            return None
        size = before["log_size"]
        assert self.ledger.size(self.session) == size + 1, f"{action}: not exactly one entry"
        entry = self.ledger.entry(self.session, size)
        assert (entry.action, entry.object_id) == (action, str(inst.id))
        assert self.stored()[inst.id][1] == before["row"][1] + 1, f"{action}: same version"
        self.actions.append(action)
        self.tally[action] += 1
        return result

    def fire(self, index: int, event: str, actor: str, **inputs: Any) -> Any:
        inst = self.inst(index)
        state = inst.state
        out = self.attempt(
            index,
            f"task.{event}",
            lambda: self.ward.engine.fire(inst.id, event, self.users[actor], **inputs),
        )
        if out is not None:
            assert (out.before, out.after) == (state, LIFECYCLE[(state, event)])
        return out

    # --- moving the work forward -------------------------------------------------------

    def advance(self, index: int, data: st.DataObject) -> None:
        """What the pages offer: while a product lacks both a file and an explanation, a lead
        member covers it; otherwise someone fires an event the page offers them, with
        complete inputs, and it succeeds (unless a submission still lacks evidence)."""
        inst = self.inst(index)
        missing = self.uncovered(inst) if inst.state == "in_progress" else []
        if missing and data.draw(st.booleans(), label="cover"):
            members = [
                a for a in ACTORS if self.ward.engine.may("add_evidence", inst, self.users[a])
            ]
            self.cover(
                index,
                data.draw(st.sampled_from(members)),
                data.draw(st.sampled_from(missing)),
                data.draw(st.booleans(), label="explain"),
            )
            return
        offered = [
            (actor, event)
            for actor in ACTORS
            for event in self.ward.engine.enabled_events(inst, self.users[actor])
        ]
        if not offered:
            assert inst.state in ("accepted", "cancelled"), f"nobody may act on {inst.state}"
            return
        # The ward leader may cancel any open task; leave that to fire_anything, or runs
        # would rarely get past the first steps.
        offered = [pair for pair in offered if pair[1] != "cancel"] or offered
        actor, event = data.draw(st.sampled_from(offered), label="offered")
        inputs = {
            "reason": "Lý do",
            "assessment": "Đạt",
            "findings": "Nhận xét",
            "recommendation": data.draw(st.sampled_from(["accept", "return"])),
            "due": date(2026, 6, 30),
            "expected_version": inst.version,
        }
        if self.fire(index, event, actor, **inputs) is None:
            assert (event, self.last_refusal) == ("submit", "evidence_missing")
            assert missing

    def uncovered(self, inst: TaskInstance) -> list[str]:
        files = self.session.scalars(
            select(Evidence.product).where(
                Evidence.instance_id == inst.id, Evidence.withdrawn_at.is_(None)
            )
        )
        explained = self.session.scalars(
            select(Remark.product).where(
                Remark.instance_id == inst.id, Remark.kind == "explanation"
            )
        )
        covered = set(files) | set(explained)
        return [p["name"] for p in inst.plan_task.products if p["name"] not in covered]

    def cover(self, index: int, member: str, product: str, explain: bool) -> None:
        inst, actor = self.inst(index), self.users[member]
        if explain:
            done = self.attempt(
                index,
                "evidence.explained",
                lambda: self.ward.engine.explain_missing(
                    inst.id, actor, product=product, text="Chưa phát sinh trong kỳ"
                ),
            )
        else:
            done = self.attempt(
                index,
                "evidence.added",
                lambda: self.ward.engine.add_evidence(
                    inst.id, actor, data=PDF, filename="bao-cao.pdf", product=product
                ),
            )
            if done is not None:
                self.evidence.append(done.id)
        assert done is not None, self.last_refusal

    @rule(data=st.data())
    def advance_the_vp_task(self, data: st.DataObject) -> None:
        self.advance(0, data)

    @rule(data=st.data())
    def advance_the_vhxh_task(self, data: st.DataObject) -> None:
        self.advance(1, data)

    # --- anything, by anyone --------------------------------------------------------------

    @rule(
        index=st.integers(0, len(TASKS) - 1),
        event=st.sampled_from(EVENTS),
        actor=st.sampled_from(ACTORS),
        reason=texts,
        assessment=texts,
        findings=texts,
        recommendation=recommendations,
        due=dues,
        version=versions,
    )
    def fire_anything(
        self,
        index: int,
        event: str,
        actor: str,
        version: str,
        **inputs: Any,
    ) -> None:
        current = self.inst(index).version
        expected = {"none": None, "current": current, "stale": current - 1}[version]
        self.fire(index, event, actor, expected_version=expected, **inputs)

    @rule(
        index=st.integers(0, len(TASKS) - 1),
        actor=st.sampled_from(ACTORS),
        product=st.integers(0, 3),
        explain=st.booleans(),
        text=texts,
        data_bytes=payloads,
    )
    def touch_a_product(
        self,
        index: int,
        actor: str,
        product: int,
        explain: bool,
        text: str | None,
        data_bytes: bytes,
    ) -> None:
        """Upload a file (maybe empty or of a refused type) or write an explanation (maybe
        blank), for a product of the task or one it does not have."""
        inst = self.inst(index)
        names = [p["name"] for p in inst.plan_task.products]
        name = names[product] if product < len(names) else "Sản phẩm không có trong kế hoạch"
        user = self.users[actor]
        if explain:
            self.attempt(
                index,
                "evidence.explained",
                lambda: self.ward.engine.explain_missing(
                    inst.id, user, product=name, text=text or ""
                ),
            )
            return
        added = self.attempt(
            index,
            "evidence.added",
            lambda: self.ward.engine.add_evidence(
                inst.id, user, data=data_bytes, filename="minh-chung.pdf", product=name
            ),
        )
        if added is not None:
            self.evidence.append(added.id)

    @rule(actor=st.sampled_from(ACTORS), data=st.data())
    def withdraw_evidence(self, actor: str, data: st.DataObject) -> None:
        if not self.evidence:
            return
        evidence_id = data.draw(st.sampled_from([*self.evidence, 10**9]), label="evidence")
        row = self.session.get(Evidence, evidence_id)
        index = self.instances.index(row.instance_id) if row is not None else 0
        self.attempt(
            index,
            "evidence.withdrawn",
            lambda: self.ward.engine.withdraw_evidence(evidence_id, self.users[actor]),
        )

    # --- invariants ---------------------------------------------------------------------

    def stored(self) -> dict[int, tuple[Any, ...]]:
        """Each instance's row as the database holds it (not the identity map)."""
        rows = self.session.execute(
            select(
                TaskInstance.id,
                TaskInstance.state,
                TaskInstance.version,
                TaskInstance.submission_round,
                TaskInstance.submitted_by_id,
                TaskInstance.reviewed_by_id,
            ).where(TaskInstance.id.in_(self.instances))
        )
        return {row[0]: tuple(row[1:]) for row in rows}

    @invariant()
    def states_are_defined_and_four_eyes_hold(self) -> None:
        stored = self.stored()
        for index in range(len(self.instances)):
            inst = self.inst(index)
            state, version, round_, submitted_by, reviewed_by = stored[inst.id]
            assert state in STATES
            assert (inst.state, inst.version) == (state, version)
            if state in ("evidence_submitted", "reviewed", "accepted"):
                assert submitted_by is not None and round_ >= 1
            if state in ("reviewed", "accepted"):
                assert reviewed_by not in (None, submitted_by)
            if state == "accepted":
                history = self.ledger.history(self.session, "task_instance", inst.id)
                last = {e.action: e.actor_user for e in history}
                decider, reviewer = last["task.accept"], last["task.review"]
                assert len({decider, reviewer, last["task.submit"]}) == 3, last

    def teardown(self) -> None:
        try:
            self.check_export()
        finally:
            self.savepoint.rollback()
            # A savepoint's rollback expires only the objects flushed inside it; one loaded
            # afterwards still shows the rolled-back rows. Start the next run from the database.
            self.session.expire_all()

    def check_export(self) -> None:
        size = self.ledger.size(self.session)
        assert size == self.base_size + len(self.actions)
        self.ledger.checkpoint(self.session, self.signer, now=self.ward.clock.now())
        summary = export_log(self.session, ORIGIN, self.out_dir, self.verifier)
        assert summary.size == size
        report = verify_export(self.out_dir, self.verifier)
        assert report.ok, report.problem
        assert (report.size, report.covered) == (size, size)
        lines = (self.out_dir / ENTRIES_FILE).read_bytes().splitlines()
        tail = [json.loads(line)["action"] for line in lines[self.base_size :]]
        assert tail == self.actions


@pytest.mark.db
def test_random_action_sequences(ward: Ward, tmp_path: Path) -> None:
    signer_text, verifier_text = generate_key("test.cchc.example")
    signer = NoteSigner.from_text(signer_text)
    runs = itertools.count()
    tally: Counter[str] = Counter()

    def machine() -> EngineMachine:
        out_dir = tmp_path / f"export-{next(runs)}"
        return EngineMachine(ward, signer, verifier_text, out_dir, tally)

    run_state_machine_as_test(machine, settings=SETTINGS)
    # The runs did something: actions succeeded and others were refused.
    assert tally["task.start"] > 0 and tally["evidence.added"] > 0
    assert tally["refused:not_permitted"] > 0 and tally["refused:invalid_transition"] > 0
