"""Concurrent writers, threads and processes, never fork or gap a log."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.export import export_log
from audit.ledger import Ledger
from audit.schema import audit_entry
from audit.verify import verify_export
from workflow.db import make_engine

pytestmark = pytest.mark.db
ORIGIN = "test.example/concurrent"


def _check_log(url: str, expected: int, keys: Any, tmp_path: Path) -> None:
    engine = make_engine(url)
    try:
        with Session(engine) as session, session.begin():
            seqs = session.scalars(select(audit_entry.c.seq).order_by(audit_entry.c.seq)).all()
            assert seqs == list(range(expected))
            Ledger(ORIGIN).checkpoint(session, keys.signer, now=_now())
        with Session(engine) as session:
            summary = export_log(session, ORIGIN, tmp_path / "export", keys.verifier_text)
        assert summary.size == expected
        report = verify_export(tmp_path / "export", keys.verifier_text)
        assert report.ok, report.problem
        assert report.size == expected and report.covered == expected
    finally:
        engine.dispose()


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 6, 1, tzinfo=UTC)


def _load_workers(monkeypatch: pytest.MonkeyPatch) -> Any:
    # Spawned processes import the worker by module name, so its folder goes on sys.path
    # (inherited by the children through multiprocessing's preparation data).
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import _audit_workers  # type: ignore[import-not-found]

    return _audit_workers


def test_threads_append_without_gaps(
    fresh_db_url: str, keys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workers = _load_workers(monkeypatch)
    threads, each = 6, 15
    with ThreadPoolExecutor(threads) as pool:
        results = list(
            pool.map(lambda w: workers.append_many(fresh_db_url, ORIGIN, w, each), range(threads))
        )
    assert sorted(s for r in results for s in r) == list(range(threads * each))
    _check_log(fresh_db_url, threads * each, keys, tmp_path)


def test_processes_append_without_gaps(
    fresh_db_url: str, keys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workers = _load_workers(monkeypatch)
    procs, each = 3, 15
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(procs) as pool:
        results = pool.starmap(
            workers.append_many, [(fresh_db_url, ORIGIN, w, each) for w in range(procs)]
        )
    assert sorted(s for r in results for s in r) == list(range(procs * each))
    _check_log(fresh_db_url, procs * each, keys, tmp_path)
