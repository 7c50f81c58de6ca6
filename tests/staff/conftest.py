"""A small clinic for the staff pages, on a frozen clock (Thursday 20 March 2025, 09:00 London).

`refilled` follows docs/domain.md's worked example: 20 mL SynchroMed II, 2000 mcg/mL, 400 mcg/day,
refilled 2025-01-06 → alarm 2025-04-06, empty 2025-04-16, due by 2025-04-01; with the default
21-day window the safe window is 2025-03-11 … 2025-04-01.
"""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tests import factories
from tests.helpers import refill_record

LONDON = ZoneInfo("Europe/London")
NOW = dt.datetime(2025, 3, 20, 9, 0, tzinfo=LONDON)
TODAY = NOW.date()


def at(y, m, d, h=10, minute=0) -> dt.datetime:
    return dt.datetime(y, m, d, h, minute, tzinfo=LONDON)


def pump_refilled_on(day: dt.date, nurse, **patient):
    """A patient with an active pump last refilled on `day` (docs/domain.md's 20 mL example)."""
    implant = factories.ImplantFactory(implanted_on=dt.date(2024, 6, 3), patient=factories.PatientFactory(**patient))
    refill_record(implant=implant, by=nurse, at=at(day.year, day.month, day.day))
    implant.refresh_from_db()
    return implant


@pytest.fixture
def frozen(clock):
    return clock(NOW)


@pytest.fixture
def refilled(db, nurse, frozen):
    return pump_refilled_on(dt.date(2025, 1, 6), nurse, given_name="Grace", family_name="Hopper", mrn="MRN-GH")


@pytest.fixture
def overdue(db, nurse, frozen):
    # Refilled 2024-12-01: due by 2025-02-24, alarm 2025-03-01 (both passed on 2025-03-20).
    return pump_refilled_on(dt.date(2024, 12, 1), nurse, given_name="Alan", family_name="Turing", mrn="MRN-AT")


@pytest.fixture
def nurse_client(client, nurse):
    client.force_login(nurse)
    return client


@pytest.fixture
def clinician_client(client, clinician):
    client.force_login(clinician)
    return client
