"""Shared fixtures for the tests of definitions/: the calendar, catalogs and the seed plan."""

import pytest

from definitions.calendar import WorkingCalendar, load_calendar
from definitions.products import ProductVocabulary, load_products
from definitions.units import UnitCatalog, load_units


@pytest.fixture(scope="session")
def calendar() -> WorkingCalendar:
    return load_calendar()


@pytest.fixture(scope="session")
def units() -> UnitCatalog:
    return load_units()


@pytest.fixture(scope="session")
def products() -> ProductVocabulary:
    return load_products()
