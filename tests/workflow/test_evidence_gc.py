"""Collecting evidence files that no record points at: only old orphans, never a file named by
an evidence row, a KPI measurement or any audit entry (a generated report, say)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from workflow.evidence import LocalEvidenceStore, collect_unreferenced
from workflow.models import Evidence
from workflow.trail import SYSTEM, AuditTrail

from .conftest import PDF, Ward

pytestmark = pytest.mark.db


def _path(root: Path, sha256: str) -> Path:
    return root / sha256[:2] / sha256[2:4] / sha256


def _modified(root: Path, sha256: str, when: datetime) -> None:
    stamp = when.timestamp()
    os.utime(_path(root, sha256), (stamp, stamp))


def test_only_old_unreferenced_files_go(ward: Ward, tmp_path: Path) -> None:
    root = tmp_path / "evidence"  # the ward fixture's store
    store = LocalEvidenceStore(root)
    now = ward.clock.now()
    instance = ward.instance(12, "VP")
    ward.engine.fire(instance.id, "start", ward.user("vp.canbo"))
    ward.fill_evidence(instance, "vp.canbo")  # referenced by evidence rows
    in_log = store.store(b"%PDF-1.4 bao cao dinh ky\n").sha256  # named only by an audit entry
    AuditTrail().record(
        ward.session,
        ward.org,
        now=now,
        actor=SYSTEM,
        action="report.generated",
        object_type="report",
        object_id="q1",
        details={"file": {"sha256": in_log, "size": 24}},
    )
    old_orphan = store.store(PDF + b"rolled back").sha256
    new_orphan = store.store(PDF + b"in flight").sha256
    for blob in root.glob("??/??/*"):
        _modified(root, blob.name, now - timedelta(days=3))
    _modified(root, new_orphan, now - timedelta(hours=1))
    kept = [in_log, new_orphan, *ward.session.scalars(select(Evidence.sha256))]

    listed = collect_unreferenced(ward.session, root, now=now, min_age=timedelta(hours=24))
    assert [b.sha256 for b in listed.unreferenced] == [old_orphan]
    assert (listed.removed, listed.too_recent) == (0, 1)
    assert _path(root, old_orphan).exists()  # a dry run removes nothing

    done = collect_unreferenced(
        ward.session, root, now=now, min_age=timedelta(hours=24), delete=True
    )
    assert ([b.sha256 for b in done.unreferenced], done.removed) == ([old_orphan], 1)
    assert not _path(root, old_orphan).exists()
    assert all(_path(root, sha256).exists() for sha256 in kept)
