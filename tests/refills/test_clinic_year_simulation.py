"""A simulated clinic-year: ~300 patients, the clock advanced day by day, nurses reacting to alerts.

The services are called directly (no broker, for speed): each day one 09:00 beat (scan, alerts
and no-shows, dispatch, send); then the day's appointments (the visit is recorded when the
patient comes); then a simulated nurse who books a refill some days after an alert appears
(sooner when urgent, through a clinician when the safe window has closed), calling the reminder
hook in the booking's transaction as `appointment_book` will. 10 % of appointments are no-shows and 5 % of reminder
sends fail for good (every retry), from a seeded random generator.

Asserted: no patient reaches their alarm date without either a completed refill or an urgent
alert raised at least `urgent_alert_days` (7) before it; no reminder is delivered twice.
"""

import datetime as dt
import os
import random
import smtplib
from collections import Counter
from decimal import Decimal

import pytest
import time_machine
from django.db.models import Min

from refills import reminders
from refills.models import Alert, Appointment, ClinicSettings, Reminder
from refills.selectors import refill_slot_proposals
from refills.services import appointment_book, refill_visit_record
from refills.tasks import send_reminder_task
from tests import factories
from tests.refills.reminder_helpers import LONDON, Collector

# A few minutes on a 2-core machine: beyond the suite's default 300 s timeout on a busy one.
pytestmark = [pytest.mark.django_db, pytest.mark.slow, pytest.mark.timeout(1500)]

PATIENTS = int(os.environ.get("ITB_SIM_PATIENTS", "300"))
SEED = int(os.environ.get("ITB_SIM_SEED", "20250106"))
START = dt.date(2025, 1, 6)
DAYS = int(os.environ.get("ITB_SIM_DAYS", "365"))
PUMPS = [("SynchroMed II", "20"), ("SynchroMed II", "40"), ("Prometra II", "20"), ("Prometra II", "40")]
CONCENTRATIONS = ["500", "1000", "2000"]


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=LONDON)


def regimen(rng: random.Random, reservoir: Decimal, threshold: Decimal) -> tuple[Decimal, str, int]:
    """A realistic dose (100–800 mcg/day) and the weakest strength lasting about three months or more.

    Clinics choose the concentration so that refills come every 1–6 months, most often 3–4
    (DOMAIN.md "The patient's path"); a high dose in a small pump may still need 6-weekly refills.
    """
    dose = Decimal(rng.randrange(100, 801, 10))
    for concentration in CONCENTRATIONS:
        days = int((reservoir - threshold) / (dose / Decimal(concentration)))
        if days >= 84:
            return dose, concentration, days
    return dose, "2000", int((reservoir - threshold) / (dose / Decimal(2000)))


class Clinic:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.nurse = factories.NurseFactory()
        self.clinician = factories.ClinicianFactory()
        self.regimens: dict[int, tuple[Decimal, str]] = {}
        self.planned: dict[int, dt.date] = {}  # implant -> day the nurse will book
        self.delivered: Counter[int] = Counter()
        self.doomed: set[int] = set()
        self.figures = Counter()
        self.reached_alarm: list[tuple[int, dt.date, int | None]] = []
        self.checked: set[tuple[int, dt.date]] = set()
        self.drugs = {c: factories.drug(c) for c in CONCENTRATIONS}

    # -- set-up ---------------------------------------------------------------------------
    def populate(self) -> None:
        for i in range(PATIENTS):
            roll = self.rng.random()
            channel = "sms" if roll < 0.25 else "email"
            patient = factories.PatientFactory(
                reminder_channel=channel, reminder_consent=roll < 0.95 or roll >= 0.97, phone=f"+4477009{i:05d}"
            )
            name, reservoir = PUMPS[self.rng.randrange(len(PUMPS))]
            model = factories.pump_model(name, reservoir)
            implant = factories.ImplantFactory(
                patient=patient,
                pump_model=model,
                implanted_on=START - dt.timedelta(days=self.rng.randrange(200, 2400)),
            )
            dose, concentration, days = regimen(self.rng, model.reservoir_ml, model.alarm_threshold_ml)
            self.regimens[implant.pk] = (dose, concentration)
            # the last refill happened some time ago: due dates spread over the first cycle
            last = START - dt.timedelta(days=self.rng.randrange(0, max(1, days - 30)))
            # (at 07:00: on the first day that is before the 08:00 set-up, never in the future)
            self.refill(implant, at(last, 7), residual=Decimal("2.0"))

    def refill(self, implant, when: dt.datetime, *, residual: Decimal, appointment=None) -> None:
        dose, concentration = self.regimens[implant.pk]
        titrated = False
        if appointment is not None and self.rng.random() < 0.1:  # a titration at the visit
            dose = max(Decimal(100), min(Decimal(800), (dose * Decimal(self.rng.choice(["0.9", "1.1"]))).quantize(1)))
            titrated = dose != self.regimens[implant.pk][0]
            self.regimens[implant.pk] = (dose, concentration)
        # A titration names the clinician who prescribed it; the regimens span 100–800 mcg/day
        # whatever the patient's origin, so a dose outside their usual range is confirmed by them.
        refill_visit_record(
            implant=implant,
            performed_at=when,
            performed_by=self.nurse,
            actual_residual_ml=residual,
            volume_added_ml=implant.pump_model.reservoir_ml,
            drug=self.drugs[concentration],
            drug_lot="SIM-LOT",
            daily_dose_after_mcg=dose,
            appointment=appointment,
            prescriber=self.clinician if titrated else None,
            titration_confirmed=True,
        )

    # -- a beat: scan, alerts, dispatch, send (with failures) -------------------------------
    def beat(self, now: dt.datetime) -> None:
        with time_machine.travel(now, tick=False):
            reminders.reminders_scan(now=now)
            result = reminders.alerts_scan(now=now)
            self.figures["no-shows marked"] += result.no_shows
            collector = Collector()
            reminders.reminders_dispatch(now=now, enqueue=collector)
            for reminder_id, token in collector.calls:
                self.send(reminder_id, token, now)

    def send(self, reminder_id: int, token: str, now: dt.datetime) -> None:
        """The send task's policy, synchronously: retries of a transient error, then failed."""
        if self.rng.random() < 0.05:
            self.doomed.add(reminder_id)
        for attempt in range(send_reminder_task.max_retries + 1):
            try:
                outcome = reminders.reminder_send(reminder_id=reminder_id, claim_token=token, now=now)
            except smtplib.SMTPException as exc:
                self.figures["send attempts failed"] += 1
                if attempt == send_reminder_task.max_retries:
                    reminders.reminder_mark_failed(reminder_id=reminder_id, error=repr(exc), now=now)
                continue
            if outcome in (reminders.SendOutcome.SENT, reminders.SendOutcome.DUPLICATE):
                self.delivered[reminder_id] += 1
            return

    # -- the nurse ---------------------------------------------------------------------------
    def nurse_round(self, today: dt.date) -> None:
        now = at(today, 15, 30)
        with time_machine.travel(now, tick=False):
            for alert in reminders.alert_list_open(audience="nurses").select_related("implant__pump_model"):
                if alert.kind == Alert.Kind.REMINDER_FAILED:
                    reminders.alert_resolve(alert=alert, by=self.nurse, note="Phoned the patient", now=now)
                    self.figures["failed reminders phoned"] += 1
                    continue
                if alert.implant_id is None or alert.implant_id in self.planned:
                    continue
                delay = {
                    Alert.Kind.REFILL_URGENT: self.rng.randrange(0, 2),
                    Alert.Kind.NO_SHOW: self.rng.randrange(0, 3),
                }.get(alert.kind, self.rng.randrange(0, 5))
                self.planned[alert.implant_id] = today + dt.timedelta(days=delay)
            for implant_pk, day in list(self.planned.items()):
                if day <= today:
                    self.book(implant_pk, today, now)

    def book(self, implant_pk: int, today: dt.date, now: dt.datetime) -> None:
        from pumps.models import Implant

        implant = Implant.objects.select_related("pump_model", "patient").get(pk=implant_pk)
        booked = Appointment.objects.filter(implant=implant, kind="refill", status="booked").exists()
        if booked or implant.forecast_due_by is None:
            self.planned.pop(implant_pk)
            return
        urgent = implant.forecast_alarm_on - today <= dt.timedelta(days=10)
        days = [d for d in refill_slot_proposals(implant=implant, today=today, count=30) if d > today]
        if not days:
            return  # full: try again tomorrow
        day = min(days) if urgent else self.rng.choice(days[:5])
        taken = Appointment.objects.filter(starts_at__date=day, kind="refill", status="booked").count()
        starts_at = at(day, 9 + taken // 2, 30 * (taken % 2))
        by, reason = self.nurse, ""
        if day > implant.forecast_due_by:
            by, reason = self.clinician, "Overdue: first free slot"
            self.figures["bookings after due-by (clinician)"] += 1
        appointment = appointment_book(
            patient=implant.patient,
            implant=implant,
            kind="refill",
            starts_at=starts_at,
            booked_by=by,
            outside_window_reason=reason,
            now=now,
        )
        reminders.reminders_materialise_for_appointment(appointment=appointment, now=now)
        self.figures["refills booked"] += 1
        self.planned.pop(implant_pk)

    # -- the patients ----------------------------------------------------------------------
    def appointments(self, today: dt.date) -> None:
        for appointment in Appointment.objects.filter(
            starts_at__gte=at(today, 0), starts_at__lt=at(today + dt.timedelta(days=1), 0), status="booked"
        ).select_related("implant__pump_model"):
            if self.rng.random() < 0.1:
                self.figures["no-shows"] += 1
                continue
            when = appointment.starts_at + dt.timedelta(minutes=20)
            with time_machine.travel(when, tick=False):
                self.refill(appointment.implant, when, residual=Decimal("3.0"), appointment=appointment)
            self.figures["refills done"] += 1

    # -- the invariant ----------------------------------------------------------------------
    def check_alarms(self, today: dt.date, urgent_days: int) -> None:
        from pumps.models import Implant

        for implant_pk, patient_pk, alarm_on in Implant.objects.filter(forecast_alarm_on__lte=today).values_list(
            "pk", "patient_id", "forecast_alarm_on"
        ):
            if (implant_pk, alarm_on) in self.checked:
                continue
            self.checked.add((implant_pk, alarm_on))
            first = Alert.objects.filter(
                kind=Alert.Kind.REFILL_URGENT, implant_id=implant_pk, key_date__lte=alarm_on
            ).aggregate(first=Min("key_date"))["first"]
            warning = (alarm_on - first).days if first else None
            self.reached_alarm.append((patient_pk, alarm_on, warning))
            assert warning is not None and warning >= urgent_days, (
                f"patient {patient_pk} reached the alarm date {alarm_on} unrefilled with "
                f"{warning} days of urgent warning"
            )


def test_a_clinic_year_no_patient_runs_dry_unwarned_and_no_reminder_goes_twice(monkeypatch, capsys):
    rng = random.Random(SEED)
    clinic = Clinic(rng)
    with time_machine.travel(at(START, 8), tick=False):
        clinic.populate()
    urgent_days = ClinicSettings.load().urgent_alert_days

    real_deliver = reminders._deliver

    def deliver(*, reminder, clinic: ClinicSettings):
        if reminder.pk in clinic_state.doomed:
            raise smtplib.SMTPServerDisconnected("simulated mail outage")
        return real_deliver(reminder=reminder, clinic=clinic)

    clinic_state = clinic
    monkeypatch.setattr(reminders, "_deliver", deliver)

    for offset in range(DAYS):
        today = START + dt.timedelta(days=offset)
        clinic.check_alarms(today, urgent_days)
        clinic.beat(at(today, 9))
        clinic.appointments(today)
        clinic.nurse_round(today)

    # no reminder was delivered twice, and every delivery is a sent row counted once
    figures = reminders.reminder_figures()
    assert max(clinic.delivered.values()) == 1
    assert figures.duplicates == 0
    assert figures.sent == len(clinic.delivered)
    assert figures.failed == len(clinic.doomed)
    assert not Reminder.objects.filter(status="sending").exists()
    sent_keys = Reminder.objects.filter(status="sent").values_list(
        "appointment_id", "appointment_starts_at", "offset_days", "channel"
    )
    assert len(set(sent_keys)) == len(sent_keys)

    alerts = Counter(Alert.objects.values_list("kind", flat=True))
    warned = [w for _, _, w in clinic.reached_alarm]
    with capsys.disabled():
        print(
            f"\nclinic-year simulation (seed {SEED}, {PATIENTS} patients, {DAYS} days):\n"
            f"  refills booked {clinic.figures['refills booked']}, done {clinic.figures['refills done']}, "
            f"no-shows {clinic.figures['no-shows']} (marked {clinic.figures['no-shows marked']}), "
            f"booked after due-by by a clinician {clinic.figures['bookings after due-by (clinician)']}\n"
            f"  reminders sent {figures.sent}, failed {figures.failed} "
            f"(failed send attempts {clinic.figures['send attempts failed']}), "
            f"cancelled {figures.cancelled}, pending {figures.pending}, duplicates {figures.duplicates}\n"
            f"  alerts raised {sum(alerts.values())}: {dict(sorted(alerts.items()))}\n"
            f"  patients reaching the alarm date unrefilled: {len(warned)}; "
            f"minimum days of urgent warning: {min(warned) if warned else 'n/a'}"
        )
    assert clinic.figures["refills done"] > PATIENTS  # the year ran: every patient came back at least once
