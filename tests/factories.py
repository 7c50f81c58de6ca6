"""factory_boy factories, chained Patient → Trial → Implant → RefillVisit (STYLE.md 12)."""

import datetime as dt
from decimal import Decimal

import factory
from django.contrib.auth.models import Group
from django.utils import timezone

from itbclinic.accounts.models import User
from itbclinic.accounts.roles import Role
from patients.models import Patient, ScreeningTrial, TrialAssessment, TrialStep
from pumps.models import DosePrescription, Drug, Implant, PumpModel
from refills.models import Appointment, RefillVisit

TEST_PASSWORD = "correct-horse-battery-staple-42"


def _role_granter(default: Role | None):
    def grant(obj, create, extracted, **kwargs):
        role = extracted or default
        if create and role:
            obj.groups.add(Group.objects.get(name=Role(role).value))

    return factory.PostGeneration(grant)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.org")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.django.Password(TEST_PASSWORD)
    role = _role_granter(None)


class NurseFactory(UserFactory):
    role = _role_granter(Role.NURSE)


class ClinicianFactory(UserFactory):
    role = _role_granter(Role.CLINICIAN)


class ClinicAdminFactory(UserFactory):
    role = _role_granter(Role.CLINIC_ADMIN)


class PatientUserFactory(UserFactory):
    role = _role_granter(Role.PATIENT)


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    mrn = factory.Sequence(lambda n: f"MRN{n:06d}")
    given_name = factory.Faker("first_name")
    family_name = factory.Faker("last_name")
    date_of_birth = dt.date(1975, 5, 17)
    spasticity_origin = Patient.Origin.SPINAL
    diagnosis = Patient.Diagnosis.MS
    email = factory.LazyAttribute(lambda o: f"{o.mrn.lower()}@example.org")
    phone = "+447911123456"
    reminder_consent = True
    reminder_channel = Patient.Channel.EMAIL


class ScreeningTrialFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ScreeningTrial

    patient = factory.SubFactory(PatientFactory)
    started_on = dt.date(2024, 3, 4)
    clinician = factory.SubFactory(ClinicianFactory)


class TrialStepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TrialStep

    trial = factory.SubFactory(ScreeningTrialFactory)
    given_at = factory.LazyFunction(lambda: timezone.make_aware(dt.datetime(2024, 3, 4, 9, 0)))
    dose_mcg = Decimal("50")
    volume_ml = Decimal("1")
    given_by = factory.SelfAttribute("trial.clinician")


class TrialAssessmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TrialAssessment

    trial = factory.SubFactory(ScreeningTrialFactory)
    hours_after = Decimal("0")
    assessed_at = factory.LazyFunction(lambda: timezone.make_aware(dt.datetime(2024, 3, 4, 8, 30)))
    penn_score = 3
    assessed_by = factory.SelfAttribute("trial.clinician")


def pump_model(name: str = "SynchroMed II", reservoir_ml: str = "20") -> PumpModel:
    """The catalogue rows come from the pumps data migration."""
    return PumpModel.objects.get(name=name, reservoir_ml=Decimal(reservoir_ml))


def drug(concentration: str = "2000") -> Drug:
    return Drug.objects.get(concentration_mcg_per_ml=Decimal(concentration))


class ImplantFactory(factory.django.DjangoModelFactory):
    """A pump row without its fill in theatre (no forecast until a refill); for a pump scheduled
    from its implant, register it through the service: `tests.helpers.implant_register_filled`."""

    class Meta:
        model = Implant

    patient = factory.SubFactory(PatientFactory)
    pump_model = factory.LazyFunction(pump_model)
    manufacturer = factory.SelfAttribute("pump_model.manufacturer")
    serial_number = factory.Sequence(lambda n: f"NGP{n:07d}")
    implanted_on = dt.date(2024, 4, 2)
    surgeon = "Ms A. Surgeon"
    hospital = "City Hospital"
    catheter_model = "8781"
    catheter_tip_level = "T10"
    recorded_by = factory.SubFactory(ClinicianFactory)


class DosePrescriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DosePrescription

    implant = factory.SubFactory(ImplantFactory)
    effective_at = factory.LazyAttribute(
        lambda o: timezone.make_aware(dt.datetime.combine(o.implant.implanted_on, dt.time(12, 0)))
    )
    daily_dose_mcg = Decimal("400")
    concentration_mcg_per_ml = Decimal("2000")
    prescribed_by = factory.SelfAttribute("implant.recorded_by")


class RefillVisitFactory(factory.django.DjangoModelFactory):
    """A refill matching docs/domain.md's first worked example (20 mL, 2000 mcg/mL, 400 mcg/day)."""

    class Meta:
        model = RefillVisit

    implant = factory.SubFactory(ImplantFactory)
    performed_at = factory.LazyFunction(lambda: timezone.make_aware(dt.datetime(2025, 1, 6, 10, 0)))
    performed_by = factory.SubFactory(NurseFactory)
    pump_serial = factory.SelfAttribute("implant.serial_number")
    reservoir_ml = factory.SelfAttribute("implant.pump_model.reservoir_ml")
    expected_residual_ml = Decimal("2.5")
    actual_residual_ml = Decimal("2.4")
    discrepancy_ml = Decimal("-0.1")
    volume_added_ml = Decimal("20")
    drug = factory.LazyFunction(drug)
    drug_lot = "LOT-1234"
    concentration_mcg_per_ml = Decimal("2000")
    daily_dose_before_mcg = Decimal("400")
    daily_dose_after_mcg = Decimal("400")
    alarm_threshold_ml = Decimal("2.0")
    alarm_on = dt.date(2025, 4, 6)
    empty_on = dt.date(2025, 4, 16)
    due_by = dt.date(2025, 4, 1)


class AppointmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Appointment

    implant = factory.SubFactory(ImplantFactory)
    patient = factory.SelfAttribute("implant.patient")
    kind = Appointment.Kind.REFILL
    starts_at = factory.LazyFunction(lambda: timezone.make_aware(dt.datetime(2025, 3, 27, 10, 0)))
    place = "ITB clinic room 2"
    booked_by = factory.SubFactory(NurseFactory)
