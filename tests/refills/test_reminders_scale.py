"""The scan and the dispatcher are set-based: the same number of queries for 5 or 50 pumps."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from refills.alerts.scan import alerts_scan
from refills.models import Alert, Reminder
from refills.reminders.dispatch import reminders_dispatch, reminders_recover_stuck
from refills.reminders.planning import reminders_scan
from tests import factories
from tests.helpers import refill_record
from tests.refills.reminder_helpers import Collector, local

pytestmark = pytest.mark.django_db


def clinic_of(size: int, nurse, *, first: int) -> None:
    """`size` pumps refilled on 6 Jan 2025 (due by 1 Apr): every other one booked for 27 Mar, one
    SMS patient, a battery near its end; the rest unbooked (each batch alike)."""
    for i in range(first, first + size):
        patient = factories.PatientFactory(reminder_channel="sms" if i == first + 1 else "email")
        implant = factories.ImplantFactory(
            patient=patient, implanted_on=dt.date(2019, 11, 1) if i == first + 2 else dt.date(2024, 4, 2)
        )
        refill_record(implant=implant, by=nurse, at=local(2025, 1, 6))
        if i % 2 == 0:
            factories.AppointmentFactory(implant=implant, starts_at=local(2025, 3, 27, 10), booked_by=nurse)


def beat_queries(now) -> tuple[int, int, int]:
    with CaptureQueriesContext(connection) as scan:
        reminders_scan(now=now)
        alerts_scan(now=now)
    with CaptureQueriesContext(connection) as dispatch:
        reminders_dispatch(now=now, enqueue=Collector())
    with CaptureQueriesContext(connection) as recover:
        reminders_recover_stuck(now=now)
    return len(scan.captured_queries), len(dispatch.captured_queries), len(recover.captured_queries)


def test_scan_and_dispatch_query_counts_do_not_grow_with_the_clinic(nurse, django_assert_max_num_queries):
    # given a clinic of 5 pumps: the first beat creates its reminders and alerts
    clinic_of(5, nurse, first=0)
    now = local(2025, 3, 13, 9)  # the 14-day reminders of the 27 Mar bookings are due
    with django_assert_max_num_queries(41):
        small = beat_queries(now)
    with django_assert_max_num_queries(41):
        small_again = beat_queries(now + dt.timedelta(minutes=1))
    # when the clinic grows to 50 pumps and the next beats run
    clinic_of(45, nurse, first=5)
    with django_assert_max_num_queries(41):
        large = beat_queries(now + dt.timedelta(minutes=2))
    with django_assert_max_num_queries(41):
        large_again = beat_queries(now + dt.timedelta(minutes=3))
    # then the work grew with the clinic, the number of queries did not
    assert Reminder.objects.count() == 2 * 25
    assert Reminder.objects.filter(status="sending").count() == 25
    assert Alert.objects.filter(kind="refill_unbooked").count() == 25
    assert Alert.objects.filter(kind="battery_window").count() == 2
    assert small == large and small_again == large_again
