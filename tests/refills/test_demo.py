"""The demo clinic: idempotent, every stage of the path present, a calendar that looks real, quick."""

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from demo.clinic import seed_clinic, stages
from patients.models import AshworthScore, Patient, ScreeningTrial
from patients.selectors import trial_get_summary
from pumps.models import DosePrescription, Implant
from pumps.selectors import dose_get_in_force, implant_get_active, implant_get_replacement_plan
from refills.models import Appointment, ClinicSettings, RefillVisit
from refills.selectors import appointment_get_next, clinic_closed_days, patient_list_due_for_refill
from tests import factories

pytestmark = pytest.mark.django_db

WEDNESDAY = dt.date(2025, 11, 26)
# A Sunday, and the day British clocks go forward: weekends and DST must not break the calendar.
DST_SUNDAY = dt.date(2026, 3, 29)
# Wall-clock time depends on the machine's load (never asserted); the number of queries does not:
# it is the guard against a seed that grows slow (measured ~8,200 queries, a few seconds on a quiet machine:
# each refill reads the pump's whole history, four queries, for its preview and again for the
# forecast it stores). Counted exactly: Django's query log keeps only the last 9,000.
SEED_QUERY_BUDGET = 9_500
FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class QueryCounter:
    """Every query run on the default connection while active (no cap, unlike the query log)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)

    def __enter__(self):
        self._wrapping = connection.execute_wrapper(self)
        self._wrapping.__enter__()
        return self

    def __exit__(self, *exc):
        return self._wrapping.__exit__(*exc)


@dataclass(frozen=True)
class Seeded:
    today: dt.date
    users: dict
    first: dict
    second: dict
    queries: int
    second_queries: int


@pytest.fixture(scope="module", params=[WEDNESDAY, DST_SUNDAY], ids=["wednesday", "dst-sunday"])
def seeded(request, django_db_setup, django_db_blocker):
    """The demo clinic seeded twice, once per module and date, rolled back at the end.

    Seeding takes seconds: every test reads the same clinic inside this outer transaction
    (each test's own transaction is a savepoint in it), and nothing outlives the module.
    """
    today = request.param
    with django_db_blocker.unblock(), override_settings(PASSWORD_HASHERS=FAST_HASHERS), transaction.atomic():
        users = {
            "nurse": factories.NurseFactory(username="nurse"),
            "clinician": factories.ClinicianFactory(username="clinician"),
            "admin": factories.ClinicAdminFactory(username="admin"),
            "patient1": factories.PatientUserFactory(username="patient1", email="patient1@example.org"),
            "patient2": factories.PatientUserFactory(username="patient2", email="patient2@example.org"),
        }
        with QueryCounter() as first_queries:
            first = seed_clinic(today=today, users=users)
        with QueryCounter() as second_queries:
            second = seed_clinic(today=today, users=users)
        yield Seeded(
            today=today,
            users=users,
            first=first,
            second=second,
            queries=first_queries.count,
            second_queries=second_queries.count,
        )
        transaction.set_rollback(True)


def _patient(stage: str, index: int = 0) -> Patient:
    return Patient.objects.get(mrn=stages()[stage][index])


def _local_day(moment: dt.datetime) -> dt.date:
    return timezone.localdate(moment)


def _without_created(counts: dict) -> dict:
    return {kind: n for kind, n in counts.items() if kind != "patients_created"}


def test_seeding_twice_creates_nothing_new_and_is_quick(seeded):
    assert seeded.first["patients_created"] == 40
    assert seeded.second["patients_created"] == 0
    assert _without_created(seeded.first) == _without_created(seeded.second)
    assert seeded.first["patients"] == Patient.objects.count() == 40
    assert seeded.first["implants"] == Implant.objects.count() >= 30
    assert seeded.first["refill_visits"] == RefillVisit.objects.count() >= 100
    assert seeded.first["appointments"] == Appointment.objects.count() >= 80
    assert seeded.queries < SEED_QUERY_BUDGET, seeded.queries
    assert seeded.second_queries < 100, seeded.second_queries


def test_a_run_on_a_later_day_or_without_a_users_dict_adds_nothing(seeded):
    later = seed_clinic(today=seeded.today + dt.timedelta(days=3))  # staff found by username

    assert later["patients_created"] == 0
    assert _without_created(later) == _without_created(seeded.first)


def test_every_stage_of_the_path_is_present(seeded):
    today = seeded.today
    days = dt.timedelta

    # awaiting a trial: referred, no trial, no pump; one has the trial day booked
    waiting = [Patient.objects.get(mrn=m) for m in stages()["awaiting_trial"]]
    assert all(p.referred_on and not p.trials.exists() and not p.implants.exists() for p in waiting)
    assert Appointment.objects.filter(patient__in=waiting, kind="trial", status="booked").exists()

    # a positive trial: 50 then 75 mcg, assessments at 0/1/2/4/6/8 h, MAS per muscle group and Penn
    trial = _patient("trial_positive").trials.get()
    assert trial.verdict == ScreeningTrial.Verdict.POSITIVE
    assert [s.dose_mcg for s in trial.steps.order_by("given_at")] == [Decimal(50), Decimal(75)]
    for step in trial.steps.all():
        assert sorted(int(a.hours_after) for a in step.assessments.all()) == [0, 1, 2, 4, 6, 8]
        assert all(a.penn_score is not None for a in step.assessments.all())
    assert AshworthScore.objects.filter(assessment__trial=trial).values("muscle_group").distinct().count() >= 8
    summary = trial_get_summary(trial_id=trial.pk)
    assert summary.best_mas_change is not None and summary.best_mas_change <= Decimal("-1")
    assert summary.suggested_starting_dose_mcg == Decimal(150)

    # a negative trial: up to 100 mcg, no meaningful change
    negative = _patient("trial_negative").trials.get()
    assert negative.verdict == ScreeningTrial.Verdict.NEGATIVE
    assert max(s.dose_mcg for s in negative.steps.all()) == Decimal(100)

    # implanted last week from that kind of trial, filled in theatre, forecast in force: the fill is
    # the implant's (its forecast starts there), no refill yet, the starting dose from the trial
    fresh = implant_get_active(patient=_patient("implanted_last_week"))
    assert today - days(10) <= fresh.implanted_on < today
    assert fresh.refill_visits.count() == 0
    assert (fresh.fill_volume_ml, fresh.fill_drug.concentration_mcg_per_ml) == (Decimal(20), Decimal(500))
    assert dose_get_in_force(implant=fresh, at=timezone.now()).daily_dose_mcg == Decimal(150)
    assert fresh.forecast_due_by > today

    # the worklist: the overdue pump with nothing booked is on top; alarm in a few days
    worklist = list(patient_list_due_for_refill(today=today))
    top = worklist[0]
    assert top.patient.mrn == stages()["overdue_unbooked"][0]
    assert top.forecast_due_by < today < top.forecast_alarm_on <= today + days(7)
    assert top.has_booked_refill is False
    assert top.patient.has_withdrawal_risk_flag
    assert all(i.forecast_due_by >= today for i in worklist[1:])

    by_mrn = {i.patient.mrn: i for i in worklist}
    for mrn in stages()["due_soon_booked"]:
        implant = by_mrn[mrn]
        assert today <= implant.forecast_due_by <= today + days(14), mrn
        assert implant.has_booked_refill, mrn
        assert today < _local_day(implant.booked_refill_at) <= implant.forecast_due_by + days(3), mrn
    for mrn in stages()["due_soon_unbooked"]:
        implant = by_mrn[mrn]
        assert today <= implant.forecast_due_by <= today + days(14), mrn
        assert not implant.has_booked_refill, mrn

    # a no-show last week, nothing rebooked since
    no_show = Appointment.objects.get(status=Appointment.Status.NO_SHOW)
    assert today - days(10) <= _local_day(no_show.starts_at) < today
    assert no_show.patient.mrn == stages()["no_show"][0]
    assert not by_mrn[no_show.patient.mrn].has_booked_refill

    # batteries: near the end (SynchroMed II ~6.5 years), and an ERI with the replacement booked
    for mrn in stages()["near_battery_end"]:
        implant = implant_get_active(patient=Patient.objects.get(mrn=mrn))
        plan = implant_get_replacement_plan(implant=implant)
        assert implant.pump_model.name == "SynchroMed II"
        assert plan.plan_by <= today + days(90) < plan.hard_stop_on <= today + days(270), mrn
    eri_implant = implant_get_active(patient=_patient("eri"))
    assert today - days(60) <= eri_implant.eri_reported_on < today
    assert eri_implant.refill_visits.valid().order_by("-performed_at").first().battery_status == "eri"
    replacement = Appointment.objects.get(implant=eri_implant, kind="replacement", status="booked")
    assert _local_day(replacement.starts_at) < implant_get_replacement_plan(implant=eri_implant).stops_on

    # explanted (with a reason, no pump now) and replaced (old explanted, new one active)
    explanted = _patient("explanted").implants.get()
    assert explanted.explanted_on < today and "infection" in explanted.explant_reason
    assert implant_get_active(patient=_patient("explanted")) is None
    replaced = _patient("replaced").implants.order_by("implanted_on")
    assert [i.explanted_on is None for i in replaced] == [False, True]
    assert replaced[0].explanted_on == replaced[1].implanted_on

    # other pump models: Codman 3000 (constant flow), Prometra, 40 mL reservoirs
    active = Implant.objects.filter(explanted_on__isnull=True)
    assert active.filter(pump_model__name="Codman 3000", pump_model__flow="constant").count() == 1
    assert active.filter(pump_model__name="Prometra II").count() >= 3
    assert active.filter(pump_model__reservoir_ml=40).count() >= 5

    # left the clinic: transferred and deceased are kept, but off the worklist
    for stage, status in (("transferred", "transferred"), ("deceased", "deceased")):
        patient = _patient(stage)
        assert patient.status == status
        assert patient.mrn not in by_mrn
    assert Patient.objects.filter(risk_high_sci=True).count() >= 3
    assert Patient.objects.filter(risk_communication_difficulty=True).count() >= 2
    assert Patient.objects.filter(risk_previous_withdrawal=True).count() >= 1


def test_refill_histories_are_realistic(seeded):
    today = seeded.today
    visits = RefillVisit.objects.all()

    # doses and concentrations of real practice
    assert {v.concentration_mcg_per_ml for v in visits} == {Decimal(500), Decimal(1000), Decimal(2000)}
    assert all(Decimal(100) <= v.daily_dose_after_mcg <= Decimal(800) for v in visits)
    assert all(v.volume_added_ml == v.reservoir_ml for v in visits)
    # histories of one to two years for several patients (from the fill in theatre, when recorded)
    spans = [
        (max(dates) - min(dates)).days
        for dates in (
            [_local_day(v.performed_at) for v in implant.refill_visits.all()]
            + ([implant.implanted_on] if implant.fill_volume_ml else [])
            for implant in Implant.objects.all()
        )
    ]
    assert sum(1 for span in spans if span >= 365) >= 4
    assert max(spans) <= 2 * 366
    # residual discrepancies: mostly small, a few flagged above 2 mL
    flagged = visits.filter(discrepancy_flagged=True)
    assert flagged.count() >= 3
    assert all(abs(v.discrepancy_ml) > 2 for v in flagged)
    small = visits.filter(discrepancy_flagged=False, discrepancy_ml__isnull=False).exclude(discrepancy_ml=0)
    assert small.count() >= 50
    # every refill sat inside the safe window of the fill before it, or a clinician said why
    for appointment in Appointment.objects.filter(kind="refill", visit__isnull=False):
        earlier = (
            appointment.implant.refill_visits.filter(performed_at__lt=appointment.visit.performed_at)
            .order_by("-performed_at")
            .first()
        )
        if earlier is not None and not appointment.outside_window_reason:
            assert _local_day(appointment.starts_at) <= earlier.due_by
    # dose changes by phone between refills, by a clinician
    by_phone = DosePrescription.objects.filter(reason__contains="by phone")
    assert by_phone.count() >= 3
    assert all(p.prescribed_by.username == "clinician" for p in by_phone)
    assert not RefillVisit.objects.filter(performed_at__date__gte=today + dt.timedelta(days=1)).exists()


def test_the_calendar_looks_like_a_working_clinic(seeded):
    today = seeded.today
    booked = Appointment.objects.filter(status="booked")

    days = [_local_day(a.starts_at) for a in Appointment.objects.all()]
    assert all(day.weekday() < 5 for day in days), "no appointment at the weekend"
    holidays = clinic_closed_days(start=min(days), end=max(days), clinic=ClinicSettings.load())
    assert not [day for day in days if day in holidays], "no appointment on a public holiday"
    assert all(_local_day(a.starts_at) > today for a in booked)
    per_day = Counter(_local_day(a.starts_at) for a in booked)
    next_three_weeks = [today + dt.timedelta(days=i) for i in range(1, 22)]
    weekdays = [d for d in next_three_weeks if d.weekday() < 5 and d not in holidays]
    assert all(per_day[d] >= 2 for d in weekdays[:10]), {d: per_day[d] for d in weekdays}
    assert {a.kind for a in booked} == {"refill", "review", "trial", "replacement"}
    assert not booked.filter(starts_at__time__lt=dt.time(8, 0)).exists()
    # at most one booked refill per pump (the database constraint holds too)
    assert booked.filter(kind="refill").values("implant").distinct().count() == booked.filter(kind="refill").count()


def test_demo_patient_accounts_see_their_own_upcoming_refill(seeded):
    now = timezone.make_aware(dt.datetime.combine(seeded.today, dt.time(7, 0)))

    for key in ("patient1", "patient2"):
        patient = Patient.objects.get(user=seeded.users[key])
        assert patient.reminder_consent is True
        assert patient.email == f"{key}@example.org"
        assert implant_get_active(patient=patient) is not None
        assert appointment_get_next(patient=patient, now=now) is not None
        refill = Appointment.objects.get(patient=patient, kind="refill", status="booked")
        assert now < refill.starts_at < now + dt.timedelta(days=21)
