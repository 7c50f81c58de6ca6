"""A simulated clinic-year: ~300 patients, the clock advanced day by day, nurses reacting to alerts.

The services are called directly (no broker, for speed): each day one 09:00 beat (scan, alerts
and no-shows, dispatch, send); then the day's appointments (the visit is recorded when the
patient comes); then a simulated nurse who books a refill some days after an alert appears
(sooner when urgent, through a clinician when the safe window has closed); `appointment_book`
plans the booking's reminders in its own transaction. 10 % of appointments are no-shows and 5 % of reminder
sends fail for good (every retry), from a seeded random generator.

The year also brings what a clinic meets besides refills: new pumps implanted with their theatre
fill (and a few registered without it, which the nurses escalate and a clinician completes),
pumps replaced in one step, dose changes planned days or weeks ahead, nurses' typos refused at the
refill (a tenfold dose, a visit dated next week), and one impossible row planted in the database
(an ERI of 9999-12-01) that the scan must carry past.

Asserted: no patient reaches their alarm date without either a completed refill or an urgent
alert raised at least `urgent_alert_days` (7) before it (a situation that began later than that —
a planned dose change recorded late — is counted apart, with the warning it got); every active
pump always has a forecast or an open urgent alert; no reminder is delivered twice.
"""

import datetime as dt
import os
import random
import smtplib
from collections import Counter
from decimal import Decimal

import factory.random
import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db.models import Min

from pumps.models import Implant
from refills import services
from refills.alerts.reads import alert_list_open
from refills.alerts.scan import alerts_scan
from refills.alerts.services import alert_resolve
from refills.models import Alert, Appointment, ClinicSettings, Reminder
from refills.reminders import delivery
from refills.reminders.delivery import SendOutcome, reminder_mark_failed, reminder_send
from refills.reminders.dispatch import reminders_dispatch
from refills.reminders.planning import reminders_scan
from refills.reminders.reads import reminder_figures
from refills.selectors import implant_get_expected_residual, refill_slot_proposals
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
WEEK = dt.timedelta(days=7)


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=LONDON)


def regimen(rng: random.Random, reservoir: Decimal, threshold: Decimal) -> tuple[Decimal, str, int]:
    """A realistic dose (100–800 mcg/day) and the weakest strength lasting about three months or more.

    Clinics choose the concentration so that refills come every 1–6 months, most often 3–4
    (docs/domain.md "The patient's path"); a high dose in a small pump may still need 6-weekly refills.
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
        # The year's other events: day -> patients to implant / replace; a planned dose change
        # recorded on a day (implant -> when it was recorded, when it takes effect).
        self.new_pumps: dict[dt.date, list] = {}
        self.replacements: dict[dt.date, list[int]] = {}
        self.late_situations: list[tuple[int, dt.date, int | None]] = []
        self.changes_recorded: dict[int, dt.date] = {}
        self.serials = 0

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
            if self.rng.random() < 0.03:
                self.replacements.setdefault(START + dt.timedelta(days=self.rng.randrange(20, DAYS - 30)), []).append(
                    implant.pk
                )
        # New patients through the year, implanted with their theatre fill (one in six without it).
        for _ in range(max(2, PATIENTS // 20)):
            day = START + dt.timedelta(days=self.rng.randrange(5, DAYS - 60))
            self.new_pumps.setdefault(day, []).append(factories.PatientFactory(phone="+447700900999"))
        # One impossible value planted straight into the database, bypassing every check.
        poisoned = Implant.objects.order_by("pk").first()
        Implant.objects.filter(pk=poisoned.pk).update(eri_reported_on=dt.date(9999, 12, 1))
        self.poisoned = poisoned.pk

    def serial(self) -> str:
        self.serials += 1
        return f"SIM{self.serials:06d}"

    def implant_new(self, patient, today: dt.date) -> None:
        name, reservoir = PUMPS[self.rng.randrange(len(PUMPS))]
        model = factories.pump_model(name, reservoir)
        dose, concentration, _days = regimen(self.rng, model.reservoir_ml, model.alarm_threshold_ml)
        filled = self.rng.random() >= 1 / 6
        fill = (
            {
                "fill_drug": self.drugs[concentration],
                "fill_volume_ml": model.reservoir_ml,
                "fill_drug_lot": "SIM-THEATRE",
                "starting_daily_dose_mcg": dose,
            }
            if filled
            else {}
        )
        with time_machine.travel(at(today, 17), tick=False):
            implant = services.implant_register_with_fill(
                patient=patient,
                recorded_by=self.clinician,
                pump_model=model,
                serial_number=self.serial(),
                implanted_on=today,
                surgeon="Ms S",
                hospital="City",
                catheter_tip_level="T10",
                **fill,
            )
        self.regimens[implant.pk] = (dose, concentration)
        self.figures["pumps implanted" if filled else "pumps implanted without their fill"] += 1

    def replace(self, implant_pk: int, today: dt.date) -> None:
        old = Implant.objects.select_related("pump_model", "patient").get(pk=implant_pk)
        if old.explanted_on is not None or old.patient.status != "active":
            return
        dose, concentration = self.regimens[implant_pk]
        with time_machine.travel(at(today, 17), tick=False):
            new = services.implant_replace(
                implant=old,
                explanted_on=today,
                reason="Battery at elective replacement",
                recorded_by=self.clinician,
                pump_model=old.pump_model,
                serial_number=self.serial(),
                surgeon="Ms S",
                hospital="City",
                catheter_tip_level="T10",
                fill_drug=self.drugs[concentration],
                fill_volume_ml=old.pump_model.reservoir_ml,
                fill_drug_lot="SIM-THEATRE",
                starting_daily_dose_mcg=dose,
            )
        self.regimens[new.pk] = (dose, concentration)
        self.planned.pop(implant_pk, None)
        self.figures["pumps replaced"] += 1

    def plan_dose_change(self, implant, today: dt.date) -> None:
        """A clinician plans a +10 % rise 7 to 30 days ahead (recorded now, in force later)."""
        dose, concentration = self.regimens[implant.pk]
        new = min(Decimal(800), (dose * Decimal("1.1")).quantize(1))
        if new == dose:
            return
        effective = at(today + dt.timedelta(days=self.rng.randrange(7, 31)), self.rng.randrange(8, 23))
        with time_machine.travel(at(today, 16), tick=False):
            services.dose_change_record(
                implant=implant,
                daily_dose_mcg=new,
                effective_at=effective,
                prescribed_by=self.clinician,
                titration_confirmed=True,
                reason="Planned rise after review",
            )
        self.regimens[implant.pk] = (new, concentration)
        self.changes_recorded[implant.pk] = today
        self.figures["dose changes planned ahead"] += 1

    def refill(self, implant, when: dt.datetime, *, residual: Decimal, appointment=None) -> None:
        dose, concentration = self.regimens[implant.pk]
        titrated = False
        if appointment is not None and self.rng.random() < 0.1:  # a titration at the visit
            dose = max(Decimal(100), min(Decimal(800), (dose * Decimal(self.rng.choice(["0.9", "1.1"]))).quantize(1)))
            titrated = dose != self.regimens[implant.pk][0]
            self.regimens[implant.pk] = (dose, concentration)
        # A titration names the clinician who prescribed it; the regimens span 100–800 mcg/day
        # whatever the patient's origin, so a dose outside their usual range is confirmed by them.
        if appointment is not None and self.rng.random() < 0.03:
            # A nurse's typo: a tenfold dose (a change nobody prescribed; above 2000 mcg/day a hard
            # bound too), or the visit dated next week. Refused, nothing saved.
            typo = {"daily_dose_after_mcg": dose * 10} if self.rng.random() < 0.5 else {"performed_at": when + WEEK}
            with pytest.raises(ValidationError):
                refill_visit_record(
                    **{
                        "implant": implant,
                        "performed_at": when,
                        "performed_by": self.nurse,
                        "actual_residual_ml": residual,
                        "volume_added_ml": implant.pump_model.reservoir_ml,
                        "drug": self.drugs[concentration],
                        "drug_lot": "SIM-LOT",
                        "daily_dose_after_mcg": dose,
                        **typo,
                    }
                )
            self.figures["typos refused"] += 1
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
            reminders_scan(now=now)
            result = alerts_scan(now=now)
            self.figures["no-shows marked"] += result.no_shows
            collector = Collector()
            reminders_dispatch(now=now, enqueue=collector)
            for reminder_id, token in collector.calls:
                self.send(reminder_id, token, now)

    def send(self, reminder_id: int, token: str, now: dt.datetime) -> None:
        """The send task's policy, synchronously: retries of a transient error, then failed."""
        if self.rng.random() < 0.05:
            self.doomed.add(reminder_id)
        for attempt in range(send_reminder_task.max_retries + 1):
            try:
                outcome = reminder_send(reminder_id=reminder_id, claim_token=token, now=now)
            except smtplib.SMTPException as exc:
                self.figures["send attempts failed"] += 1
                if attempt == send_reminder_task.max_retries:
                    reminder_mark_failed(reminder_id=reminder_id, error=repr(exc), now=now)
                continue
            if outcome in (SendOutcome.SENT, SendOutcome.DUPLICATE):
                self.delivered[reminder_id] += 1
            return

    # -- the nurse ---------------------------------------------------------------------------
    def nurse_round(self, today: dt.date) -> None:
        now = at(today, 15, 30)
        with time_machine.travel(now, tick=False):
            for alert in alert_list_open(audience="nurses").select_related("implant__pump_model"):
                if alert.kind == Alert.Kind.REMINDER_FAILED:
                    alert_resolve(alert=alert, by=self.nurse, note="Phoned the patient", now=now)
                    self.figures["failed reminders phoned"] += 1
                    continue
                if alert.kind == Alert.Kind.NO_FORECAST and alert.implant_id and alert.implant.fill_drug_id is None:
                    # The nurse asks the surgeon's team for the theatre fill; a clinician records it.
                    dose, concentration = self.regimens[alert.implant_id]
                    implant = alert.implant
                    services.implant_fill_record(
                        implant=implant,
                        recorded_by=self.clinician,
                        fill_drug=self.drugs[concentration],
                        fill_volume_ml=implant.pump_model.reservoir_ml,
                        fill_drug_lot="SIM-THEATRE",
                        starting_daily_dose_mcg=dose,
                        titration_confirmed=True,
                    )
                    self.figures["theatre fills recorded after an alert"] += 1
                    continue
                if alert.kind == Alert.Kind.RECORD_ATTENTION:
                    continue  # the planted row: an admin corrects it; the clinic carries on meanwhile
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
        appointment_book(
            patient=implant.patient,
            implant=implant,
            kind="refill",
            starts_at=starts_at,
            booked_by=by,
            outside_window_reason=reason,
            now=now,
        )
        self.figures["refills booked"] += 1
        self.planned.pop(implant_pk)

    # -- the patients ----------------------------------------------------------------------
    def appointments(self, today: dt.date) -> None:
        for appointment in (
            Appointment.objects.filter(
                starts_at__gte=at(today, 0), starts_at__lt=at(today + dt.timedelta(days=1), 0), status="booked"
            )
            .select_related("implant__pump_model")
            .order_by("starts_at", "pk")
        ):  # one order: the same draws
            if self.rng.random() < 0.1:
                self.figures["no-shows"] += 1
                continue
            when = appointment.starts_at + dt.timedelta(minutes=20)
            with time_machine.travel(when, tick=False):
                # The nurse aspirates about what the history expects (±0.4 mL of pump accuracy).
                expected = implant_get_expected_residual(implant=appointment.implant, on=when.date(), before=when)
                noise = Decimal(str(round(self.rng.gauss(0, 0.4), 2)))
                residual = max(Decimal(0), (expected if expected is not None else Decimal("3.0")) + noise)
                self.refill(appointment.implant, when, residual=residual, appointment=appointment)
            self.figures["refills done"] += 1
            if self.rng.random() < 0.1:
                self.plan_dose_change(appointment.implant, today)

    # -- the invariant ----------------------------------------------------------------------
    def check_net(self, today: dt.date) -> None:
        """Every active pump of an active patient has a forecast or an open urgent alert."""
        silent = (
            Implant.objects.valid()
            .filter(explanted_on__isnull=True, patient__status="active", forecast_due_by__isnull=True)
            .exclude(alerts__kind=Alert.Kind.NO_FORECAST, alerts__resolved_at__isnull=True)
        )
        assert not silent.exists(), f"{today}: pumps with neither a forecast nor an urgent alert: {list(silent)}"

    def check_alarms(self, today: dt.date, urgent_days: int) -> None:
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
            recorded = self.changes_recorded.get(implant_pk)
            if recorded is not None and (alarm_on - recorded).days < urgent_days:
                # The alarm date moved inside the urgent margin by a change recorded that late.
                self.late_situations.append((patient_pk, alarm_on, warning))
                assert first is not None, f"patient {patient_pk}: no urgent alert before the alarm {alarm_on}"
                continue
            self.reached_alarm.append((patient_pk, alarm_on, warning))
            assert warning is not None and warning >= urgent_days, (
                f"patient {patient_pk} reached the alarm date {alarm_on} unrefilled with "
                f"{warning} days of urgent warning"
            )


def test_a_clinic_year_no_patient_runs_dry_unwarned_and_no_reminder_goes_twice(monkeypatch, capsys):
    # The same seed gives the same year: the names the factories make (Faker) come from it too.
    factory.random.reseed_random(SEED)
    rng = random.Random(SEED)
    clinic = Clinic(rng)
    with time_machine.travel(at(START, 8), tick=False):
        clinic.populate()
    urgent_days = ClinicSettings.load().urgent_alert_days

    real_deliver = delivery._deliver

    def deliver(*, reminder, clinic: ClinicSettings):
        if reminder.pk in clinic_state.doomed:
            raise smtplib.SMTPServerDisconnected("simulated mail outage")
        return real_deliver(reminder=reminder, clinic=clinic)

    clinic_state = clinic
    monkeypatch.setattr(delivery, "_deliver", deliver)

    for offset in range(DAYS):
        today = START + dt.timedelta(days=offset)
        clinic.check_alarms(today, urgent_days)
        clinic.beat(at(today, 9))
        clinic.check_net(today)
        clinic.appointments(today)
        for patient in clinic.new_pumps.get(today, []):
            clinic.implant_new(patient, today)
        for implant_pk in clinic.replacements.get(today, []):
            clinic.replace(implant_pk, today)
        clinic.nurse_round(today)

    # no reminder was delivered twice, and every delivery is a sent row counted once
    figures = reminder_figures()
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
            f"minimum days of urgent warning: {min(warned) if warned else 'n/a'}\n"
            f"  situations that began inside the urgent margin: {len(clinic.late_situations)} "
            f"(warnings {sorted(w for _, _, w in clinic.late_situations)})\n"
            f"  pumps implanted {clinic.figures['pumps implanted']}, without their fill "
            f"{clinic.figures['pumps implanted without their fill']} (fills recorded after the alert "
            f"{clinic.figures['theatre fills recorded after an alert']}), replaced {clinic.figures['pumps replaced']}, "
            f"dose changes planned ahead {clinic.figures['dose changes planned ahead']}, "
            f"typos refused {clinic.figures['typos refused']}; the planted row raised "
            f"{alerts.get(Alert.Kind.RECORD_ATTENTION, 0)} record-attention alert(s)"
        )
    poisoned = Implant.objects.get(pk=clinic.poisoned)
    assert Alert.objects.filter(kind=Alert.Kind.RECORD_ATTENTION, patient_id=poisoned.patient_id).exists()
    assert clinic.figures["pumps implanted"] > 0 and clinic.figures["pumps replaced"] > 0
    assert clinic.figures["refills done"] > PATIENTS  # the year ran: every patient came back at least once
