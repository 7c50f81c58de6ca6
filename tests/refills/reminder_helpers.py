"""Shared builders for the reminder tests: a patient with a refilled pump, a booking, one beat."""

import datetime as dt
from zoneinfo import ZoneInfo

from django.core import mail

from refills.alerts.scan import alerts_scan
from refills.models import Reminder
from refills.reminders.delivery import reminder_send
from refills.reminders.dispatch import reminders_dispatch
from refills.reminders.planning import reminders_scan
from refills.services import appointment_book
from tests import factories
from tests.helpers import refill_record

LONDON = ZoneInfo("Europe/London")
UTC = dt.UTC


def local(y, m, d, h=10, minute=0) -> dt.datetime:
    return dt.datetime(y, m, d, h, minute, tzinfo=LONDON)


def refilled_implant(
    *,
    nurse,
    on: dt.datetime,
    reservoir: str = "20",
    added: str = "20",
    dose: str = "400",
    concentration: str = "2000",
    pump: str = "SynchroMed II",
    implanted_on: dt.date = dt.date(2024, 4, 2),
    **patient_fields,
):
    """An active implant refilled at `on` through the lead's service (so the forecast is stored)."""
    patient = factories.PatientFactory(**patient_fields)
    implant = factories.ImplantFactory(
        patient=patient, pump_model=factories.pump_model(pump, reservoir), implanted_on=implanted_on
    )
    refill_record(implant=implant, by=nurse, at=on, added=added, dose=dose, concentration=concentration)
    implant.refresh_from_db()
    return implant


def book(*, implant, nurse, starts_at, now, kind="refill", **kw):
    return appointment_book(
        patient=implant.patient, implant=implant, kind=kind, starts_at=starts_at, booked_by=nurse, now=now, **kw
    )


class Collector:
    """An `enqueue` for the dispatcher that keeps (id, token) instead of publishing to a broker."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []

    def __call__(self, *, reminder_id: int, claim_token: str) -> None:
        self.calls.append((reminder_id, claim_token))


def beat(now: dt.datetime) -> dict:
    """One beat of everything, in order, with the sends run synchronously."""
    scan = reminders_scan(now=now)
    alerts = alerts_scan(now=now)
    collector = Collector()
    dispatch = reminders_dispatch(now=now, enqueue=collector)
    outcomes = [reminder_send(reminder_id=i, claim_token=t, now=now) for i, t in collector.calls]
    return {"scan": scan, "alerts": alerts, "dispatch": dispatch, "outcomes": outcomes}


def patient_emails(patient) -> list:
    return [m for m in mail.outbox if m.to == [patient.email]]


def rows(appointment) -> dict[int, Reminder]:
    return {r.offset_days: r for r in Reminder.objects.filter(appointment=appointment)}
