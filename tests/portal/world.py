"""Two patients with portal accounts, each with an implant, a refill and a booked appointment.

Shared by the portal, audit and security tests: patient A and patient B must never see each
other's objects.
"""

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth.models import Group
from django.utils import timezone

from itbclinic.accounts.roles import Role
from patients.models import Patient
from portal.models import CarerLink
from portal.services import calendar_feed_create
from pumps.models import DrugPumpInterval
from refills.models import Alert, Appointment, AppointmentChangeRequest
from refills.services import implant_forecast_refresh
from tests import factories

FROZEN_NOW = timezone.make_aware(dt.datetime(2025, 3, 1, 10, 0))


@dataclass
class Side:
    user: object
    patient: Patient
    implant: object
    refill: object
    appointment: Appointment
    change_request: AppointmentChangeRequest
    alert: Alert
    carer: object
    carer_link: CarerLink
    feed_token: str
    trial: object = None
    extra: dict = field(default_factory=dict)


def make_side(*, mrn: str, given: str, family: str, appointment_at: dt.datetime, nurse) -> Side:
    user = factories.PatientUserFactory(username=f"{given.lower()}.{family.lower()}", first_name=given)
    patient = factories.PatientFactory(mrn=mrn, given_name=given, family_name=family, user=user)
    implant = factories.ImplantFactory(patient=patient)
    factories.DosePrescriptionFactory(implant=implant)
    refill = factories.RefillVisitFactory(implant=implant, performed_by=nurse)
    # Written by a factory, not the refill service: store the forecast the service would have.
    implant_forecast_refresh(implant=implant)
    appointment = factories.AppointmentFactory(implant=implant, starts_at=appointment_at, booked_by=nurse)
    change_request = AppointmentChangeRequest.objects.create(
        appointment=appointment, requested_by=user, preferred_dates="2025-03-25", message="Earlier please"
    )
    alert = Alert.objects.create(
        kind=Alert.Kind.CHANGE_REQUEST,
        patient=patient,
        implant=implant,
        appointment=appointment,
        key_date=dt.date(2025, 2, 20),
        message="seed",
    )
    carer = factories.PatientUserFactory(username=f"carer.of.{given.lower()}")
    link = CarerLink.objects.create(
        carer=carer, patient=patient, consent_recorded_at=FROZEN_NOW, consent_recorded_by=nurse, consent_note="yes"
    )
    _feed, token = calendar_feed_create(user=user, patient=patient, now=FROZEN_NOW)
    trial = factories.ScreeningTrialFactory(patient=patient)
    extra = {
        "step": factories.TrialStepFactory(trial=trial),
        "assessment": factories.TrialAssessmentFactory(trial=trial),
        "prescription": implant.prescriptions.first(),
    }
    return Side(user, patient, implant, refill, appointment, change_request, alert, carer, link, token, trial, extra)


@dataclass
class World:
    a: Side
    b: Side
    nurse: object
    clinician: object
    clinic_admin: object


def make_world() -> World:
    # One catalogue row of each kind exists for the admin and API routes of the catalogue.
    DrugPumpInterval.objects.get_or_create(
        drug=factories.drug("2000"), pump_model=factories.pump_model(), defaults={"max_interval_days": 180}
    )
    nurse = factories.NurseFactory(username="nurse.nina")
    clinician = factories.ClinicianFactory(username="dr.clara")
    # The clinic admin works in the Django admin, which needs is_staff.
    clinic_admin = factories.ClinicAdminFactory(username="admin.ada", is_staff=True)
    a = make_side(
        mrn="MRN-A",
        given="Alice",
        family="Adams",
        appointment_at=timezone.make_aware(dt.datetime(2025, 3, 27, 10, 0)),
        nurse=nurse,
    )
    b = make_side(
        mrn="MRN-B",
        given="Bob",
        family="Brown",
        appointment_at=timezone.make_aware(dt.datetime(2025, 3, 28, 14, 30)),
        nurse=nurse,
    )
    return World(a=a, b=b, nurse=nurse, clinician=clinician, clinic_admin=clinic_admin)


def ensure_patient_group(user) -> None:
    user.groups.add(Group.objects.get(name=Role.PATIENT.value))


__all__ = ["FROZEN_NOW", "Decimal", "Side", "World", "make_side", "make_world"]
