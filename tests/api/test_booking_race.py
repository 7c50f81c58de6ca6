"""Two nurses book the same pump at the same moment: exactly one wins, the other gets a conflict.

The threaded tests need PostgreSQL's row locks (SQLite serialises whole-database writes, so it
proves nothing there): locally they are skipped on SQLite, in CI (ITB_REQUIRE_SERVICES=1) a
missing PostgreSQL fails them.
"""

import datetime as dt
import os
import threading

import pytest
from django.conf import settings
from django.db import connection

from refills.models import Appointment
from refills.services import BookingConflict, appointment_book
from tests.api.conftest import LONDON, JsonClient
from tests.conftest import require_service

SLOT = dt.datetime(2025, 3, 25, 10, 0, tzinfo=LONDON)


def run_together(*jobs):
    """Start the jobs in threads released by one barrier; each thread closes its connection."""
    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)

    def worker(index, job):
        try:
            barrier.wait(timeout=10)
            results[index] = job()
        except Exception as exc:  # the outcome under test may be an exception
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


# Skipped at collection on a local SQLite run, so no transactional set-up flushes the database for
# nothing; with ITB_REQUIRE_SERVICES=1 the test runs and `needs_postgresql` fails it instead.
ON_POSTGRESQL = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
postgresql_only = pytest.mark.skipif(
    not ON_POSTGRESQL and os.environ.get("ITB_REQUIRE_SERVICES") != "1",
    reason="PostgreSQL unavailable: the two-thread booking race needs row locks (set DATABASE_URL)",
)


def needs_postgresql():
    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "the two-thread booking race needs row locks (set DATABASE_URL)")


@postgresql_only
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_nurses_booking_one_pump_at_once_one_gets_409(world):
    needs_postgresql()
    second_nurse = type(world.nurse).objects.create_user(username="nurse2")
    second_nurse.groups.add(*world.nurse.groups.all())
    clients = []
    for user in (world.nurse, second_nurse):
        client = JsonClient()
        client.force_login(user)
        clients.append(client)
    body = {"patient": world.a.patient.pk, "kind": "refill", "starts_at": SLOT.isoformat()}

    responses = run_together(*(lambda c=c: c.call("POST", "/api/appointments/", body) for c in clients))

    assert sorted(r.status_code for r in responses) == [201, 409]
    conflict = next(r for r in responses if r.status_code == 409)
    assert conflict.json()["code"] == "booking_conflict"
    assert Appointment.objects.filter(implant=world.a.implant, kind="refill", status="booked").count() == 1


@postgresql_only
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_bookings_of_one_pump_at_once_in_the_service_one_raises_booking_conflict(world):
    needs_postgresql()

    def book():
        return appointment_book(patient=world.a.patient, kind="refill", starts_at=SLOT, booked_by=world.nurse)

    results = run_together(book, book)

    assert sorted(type(r).__name__ for r in results) == ["Appointment", "BookingConflict"]
    assert Appointment.objects.filter(implant=world.a.implant, kind="refill", status="booked").count() == 1


@pytest.mark.django_db
def test_booking_a_pump_that_already_has_a_refill_raises_booking_conflict(world):
    appointment_book(patient=world.a.patient, kind="refill", starts_at=SLOT, booked_by=world.nurse)

    with pytest.raises(BookingConflict, match="already booked"):
        appointment_book(
            patient=world.a.patient, kind="refill", starts_at=SLOT + dt.timedelta(days=1), booked_by=world.clinician
        )

    assert Appointment.objects.filter(implant=world.a.implant, kind="refill").count() == 1
