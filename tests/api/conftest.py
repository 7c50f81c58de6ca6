"""The API's test world: two patients (A and B) with every kind of record, staff of each role."""

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from rest_framework.throttling import SimpleRateThrottle

from patients.models import AshworthScore
from pumps.models import DrugPumpInterval
from refills.models import Appointment
from refills.services import implant_forecast_refresh
from tests import factories

LONDON = ZoneInfo("Europe/London")
# A Monday. Implants of the world were refilled on 2025-01-06 (docs/domain.md's first worked example):
# due by 2025-04-01, so the safe window runs 2025-03-11 to 2025-04-01.
NOW = dt.datetime(2025, 3, 3, 10, 0, tzinfo=LONDON)

ROLES = ("anonymous", "patient", "nurse", "clinician", "clinic_admin")


@dataclass
class Side:
    """One patient and one of each of their records."""

    patient: object
    user: object
    implant: object
    dose: object
    visit: object
    trial: object
    step: object
    assessment: object
    appointment: object

    def ids(self) -> dict[str, int]:
        return {
            "patient": self.patient.pk,
            "implant": self.implant.pk,
            "dose": self.dose.pk,
            "visit": self.visit.pk,
            "trial": self.trial.pk,
            "step": self.step.pk,
            "assessment": self.assessment.pk,
            "appointment": self.appointment.pk,
        }


@dataclass
class World:
    a: Side
    b: Side
    nurse: object
    clinician: object
    clinic_admin: object
    patient_without_pump: object
    pump_model: object
    drug: object
    interval: object
    users: dict = field(default_factory=dict)

    def ids(self, side: Side) -> dict[str, int]:
        """The ids a route's placeholders name: `side`'s records and the catalogue rows."""
        return {
            **side.ids(),
            "pump_model": self.pump_model.pk,
            "drug": self.drug.pk,
            "interval": self.interval.pk,
        }


def make_side(*, mrn: str, clinician, nurse) -> Side:
    user = factories.PatientUserFactory()
    patient = factories.PatientFactory(mrn=mrn, user=user)
    implant = factories.ImplantFactory(patient=patient, recorded_by=clinician)
    dose = factories.DosePrescriptionFactory(implant=implant)
    visit = factories.RefillVisitFactory(implant=implant, performed_by=nurse)
    implant_forecast_refresh(implant=implant)
    trial = factories.ScreeningTrialFactory(patient=patient, clinician=clinician)
    step = factories.TrialStepFactory(trial=trial)
    baseline = factories.TrialAssessmentFactory(trial=trial)
    AshworthScore.objects.create(assessment=baseline, muscle_group="hip_adductors_l", score="3")
    after = factories.TrialAssessmentFactory(
        trial=trial,
        step=step,
        hours_after=Decimal("2"),
        penn_score=1,
        assessed_at=dt.datetime(2024, 3, 4, 11, 0, tzinfo=LONDON),
    )
    AshworthScore.objects.create(assessment=after, muscle_group="hip_adductors_l", score="1+")
    # A review that started an hour ago and is still "booked": it can be moved, cancelled or marked a no-show.
    appointment = factories.AppointmentFactory(
        patient=patient,
        implant=implant,
        kind=Appointment.Kind.REVIEW,
        starts_at=NOW - dt.timedelta(hours=1),
        booked_by=nurse,
    )
    return Side(
        patient=patient,
        user=user,
        implant=implant,
        dose=dose,
        visit=visit,
        trial=trial,
        step=step,
        assessment=after,
        appointment=appointment,
    )


@pytest.fixture
def frozen_now(clock):
    return clock(NOW)


@pytest.fixture
def world(db, frozen_now) -> World:
    nurse = factories.NurseFactory(username="nurse")
    clinician = factories.ClinicianFactory(username="clinician")
    clinic_admin = factories.ClinicAdminFactory(username="clinic_admin")
    a = make_side(mrn="MRN-A", clinician=clinician, nurse=nurse)
    b = make_side(mrn="MRN-B", clinician=clinician, nurse=nurse)
    interval = DrugPumpInterval.objects.create(
        drug=factories.drug("500"), pump_model=factories.pump_model(), max_interval_days=180
    )
    return World(
        a=a,
        b=b,
        nurse=nurse,
        clinician=clinician,
        clinic_admin=clinic_admin,
        patient_without_pump=factories.PatientFactory(mrn="MRN-C"),
        pump_model=factories.pump_model(),
        drug=factories.drug("2000"),
        interval=interval,
        users={"patient": a.user, "nurse": nurse, "clinician": clinician, "clinic_admin": clinic_admin},
    )


class JsonClient(Client):
    """Django's test client speaking JSON: `client.call("POST", path, {...})`."""

    def call(self, method: str, path: str, body=None, **extra):
        if body is None:
            return self.generic(method, path, **extra)
        return self.generic(method, path, json.dumps(body), content_type="application/json", **extra)


@pytest.fixture
def client_for(world):
    """A logged-in JSON client per role ("anonymous" is not logged in)."""
    clients = {}

    def _client_for(role: str, user=None) -> JsonClient:
        key = (role, getattr(user, "pk", None))
        if key not in clients:
            client = JsonClient()
            if role != "anonymous":
                client.force_login(user or world.users[role])
            clients[key] = client
        return clients[key]

    return _client_for


@pytest.fixture
def no_throttling(monkeypatch):
    """Hundreds of requests per minute from one user: throttling is tested in tests/security."""
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": None, "user": None})


def pytest_terminal_summary(terminalreporter):
    from tests.api.stats import FIGURES

    if FIGURES:
        terminalreporter.section("API figures")
        for name, value in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{name}: {value}")
