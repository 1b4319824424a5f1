"""Shared fixtures for the tests of definitions/: the calendar, catalogs and the seed plan."""

import os
from pathlib import Path

import pytest

from definitions.calendar import WorkingCalendar, load_calendar
from definitions.products import ProductVocabulary, load_products
from definitions.units import UnitCatalog, load_units

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED_NAME = "000_309758a01e80c9b6.txt"


@pytest.fixture(scope="session")
def calendar() -> WorkingCalendar:
    return load_calendar()


@pytest.fixture(scope="session")
def units() -> UnitCatalog:
    return load_units()


@pytest.fixture(scope="session")
def products() -> ProductVocabulary:
    return load_products()


@pytest.fixture(scope="session")
def seed_path() -> Path:
    """The plan's text; tests that need it skip without it, except on CI where it must exist."""
    shared = Path(os.environ.get("CCHC_SHARED_DIR", REPO_ROOT.parent / "shared"))
    path = shared / "seeds" / SEED_NAME
    if not path.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the seed plan is missing: {path}")
        pytest.skip(f"the seed plan is not here: {path}")
    return path
