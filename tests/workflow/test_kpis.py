"""Measured KPI values: entered with evidence by the right people, audited, and read by the
evaluation as of a date."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from definitions.calendar import load_calendar
from definitions.rubric import load_rubric
from workflow import kpis
from workflow.errors import DomainError
from workflow.evaluation import evaluate
from workflow.evidence import LocalEvidenceStore
from workflow.trail import AuditTrail

from .conftest import PDF, Ward

pytestmark = pytest.mark.db


def measure(ward: Ward, tmp_path: Path, who: str, code: str, value: str, **kw: object) -> object:
    args: dict[str, object] = {
        "measured_on": date(2026, 6, 15),
        "data": PDF,
        "filename": "C:\\ket-qua\\Báo cáo SIPAS.pdf",
    }
    args.update(kw)
    return kpis.record_measurement(
        ward.session,
        ward.org,
        2026,
        code,
        ward.user(who),
        value=value,
        now=ward.clock.now(),
        store=LocalEvidenceStore(tmp_path / "ev"),
        trail=AuditTrail(),
        **args,  # type: ignore[arg-type]
    )


def refused(ward: Ward, code: str, call: object) -> None:
    size = ward.log_size()
    with pytest.raises(DomainError) as caught:
        call()  # type: ignore[operator]
    assert caught.value.code == code, caught.value
    assert ward.log_size() == size


def test_the_lead_unit_or_vhxh_enters_a_value_with_evidence(ward: Ward, tmp_path: Path) -> None:
    refused(
        ward, "not_permitted", lambda: measure(ward, tmp_path, "vp.canbo", "online_payment", "91")
    )
    refused(ward, "not_found", lambda: measure(ward, tmp_path, "vhxh.canbo", "nope", "1"))
    refused(
        ward,
        "invalid_value",
        lambda: measure(ward, tmp_path, "ttpvhcc.canbo", "online_payment", "9x"),
    )
    refused(
        ward,
        "invalid_value",
        lambda: measure(ward, tmp_path, "ttpvhcc.canbo", "online_payment", "91.123"),
    )
    refused(
        ward,
        "evidence_missing",
        lambda: measure(ward, tmp_path, "ttpvhcc.canbo", "online_payment", "91", data=b""),
    )
    refused(
        ward,
        "file_type_not_allowed",
        lambda: measure(ward, tmp_path, "ttpvhcc.canbo", "online_payment", "91", data=b"MZ"),
    )
    refused(
        ward,
        "invalid_date",
        lambda: measure(
            ward, tmp_path, "ttpvhcc.canbo", "online_payment", "91", measured_on=date(2025, 12, 31)
        ),
    )
    size = ward.log_size()
    row = measure(ward, tmp_path, "ttpvhcc.canbo", "online_payment", "91,5%")
    assert ward.log_size() == size + 1
    assert (row.value, row.evidence_filename) == ("91.5", "Báo cáo SIPAS.pdf")  # type: ignore[attr-defined]
    measure(
        ward, tmp_path, "vhxh.thamdinh1", "sipas_satisfaction", "93", measured_on=date(2026, 7, 1)
    )

    def kpi_results(day: date) -> dict[str, tuple[Decimal | None, bool | None]]:
        ev = evaluate(
            ward.session,
            ward.org,
            year=2026,
            as_of=day,
            calendar=load_calendar(),
            rubric=load_rubric(),
        )
        return {k.code: (k.value, k.met) for k in ev.kpis}

    june = kpi_results(date(2026, 6, 30))
    assert june["online_payment"] == (Decimal("91.5"), True)  # >= 90
    assert june["sipas_satisfaction"] == (None, None)  # measured later
    assert kpi_results(date(2026, 7, 1))["sipas_satisfaction"] == (Decimal(93), False)  # >= 95
