"""Domain signals (blinker), sent only after the change they announce has committed.

One namespace, `workflow.signals.workflow`. Every signal's sender is the TaskInstance's id
(an int: the ORM object may be expired after commit); keyword arguments: `event` (the
lifecycle event or alert kind), `actor` (username or "system"), `state` (the new state) and,
for contributions, `request_id`.

- task-assigned, task-started, evidence-submitted, task-reviewed, task-accepted,
  task-returned: lifecycle transitions.
- contribution-requested, contribution-provided: coordination with other units.
- deadline-approaching, task-overdue: sent by the deadline check (`cchc tick`).

Receivers run after commit, so they cannot undo or join the change; the audit entry is not a
signal side effect (the engine writes it inside the transaction). A receiver that raises is
logged (logger "workflow.signals") and the others still run: the change is committed by then,
and the caller's commit must not report a failure for it. A coroutine function cannot be a
receiver (blinker's send would raise; here it is logged like any failing receiver).
"""

from __future__ import annotations

import logging
from inspect import iscoroutinefunction
from typing import Any

from blinker import NamedSignal, Namespace
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

workflow = Namespace()

task_assigned: NamedSignal = workflow.signal("task-assigned")
task_started: NamedSignal = workflow.signal("task-started")
evidence_submitted: NamedSignal = workflow.signal("evidence-submitted")
task_reviewed: NamedSignal = workflow.signal("task-reviewed")
task_accepted: NamedSignal = workflow.signal("task-accepted")
task_returned: NamedSignal = workflow.signal("task-returned")
contribution_requested: NamedSignal = workflow.signal("contribution-requested")
contribution_provided: NamedSignal = workflow.signal("contribution-provided")
deadline_approaching: NamedSignal = workflow.signal("deadline-approaching")
task_overdue: NamedSignal = workflow.signal("task-overdue")

_PENDING = "cchc.pending_signals"
_log = logging.getLogger(__name__)


def send_after_commit(session: Session, signal: NamedSignal, sender: Any, **kwargs: Any) -> None:
    """Queue a signal on the session; it is sent when the session commits, and dropped when
    the transaction (or savepoint) it was queued in rolls back."""
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_PENDING, []).append((transaction, signal, sender, kwargs))


@event.listens_for(Session, "after_commit")
def _send_pending(session: Session) -> None:
    # SQLAlchemy also calls this when a savepoint is released: nothing is announced until the
    # session's own transaction commits.
    if session.in_nested_transaction():
        return
    pending = session.info.pop(_PENDING, [])
    for _transaction, signal, sender, kwargs in pending:
        _send_each(signal, sender, kwargs)


def _send_each(signal: NamedSignal, sender: Any, kwargs: dict[str, Any]) -> None:
    """What blinker's send does, each receiver on its own: one that fails is logged and does
    not keep the signal from the others."""
    if signal.is_muted:
        return
    for receiver in signal.receivers_for(sender):
        try:
            if iscoroutinefunction(receiver):
                raise TypeError("a coroutine function cannot receive workflow signals")
            receiver(sender, **kwargs)
        except Exception:
            _log.exception(
                "receiver %r of signal %s failed for task instance %r (the change is committed)",
                receiver,
                signal.name,
                sender,
            )


@event.listens_for(Session, "after_transaction_end")
def _forget_pending(session: Session, transaction: SessionTransaction) -> None:
    # The session's transaction ended without a commit (rollback or close): its changes are
    # gone, and so are their signals. After a commit the list was already sent and emptied.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


def _inside(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: SessionTransaction) -> None:
    # Only what was queued inside the transaction or savepoint that rolled back is dropped:
    # the changes of an enclosing transaction still commit, and so do their signals.
    pending = session.info.get(_PENDING)
    if pending:
        session.info[_PENDING] = [p for p in pending if not _inside(p[0], previous_transaction)]
