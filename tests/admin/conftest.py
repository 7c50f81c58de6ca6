"""Rows of every admin-registered model, and the two kinds of admin user."""

import datetime as dt
import itertools
from decimal import Decimal

import pytest
from django.utils import timezone

from patients.models import AshworthScore, Patient, ScreeningTrial, TrialAssessment, TrialStep
from pumps.models import DosePrescription, Drug, DrugPumpInterval, Implant, PumpModel
from refills.models import (
    Alert,
    Appointment,
    AppointmentChangeRequest,
    AppointmentNotice,
    ClinicSettings,
    ClosedDay,
    DeliveryAttempt,
    FieldSafetyFlag,
    FieldSafetyNotice,
    RefillVisit,
    Reminder,
    ReservoirEmptying,
    TaskRun,
)
from tests import factories

_seq = itertools.count(1)


def _aware(*args) -> dt.datetime:
    return timezone.make_aware(dt.datetime(*args))


def _assessment() -> TrialAssessment:
    assessment = factories.TrialAssessmentFactory()
    for group, score in (("hip_adductors_l", "3"), ("hip_adductors_r", "2")):
        AshworthScore.objects.create(assessment=assessment, muscle_group=group, score=score)
    return assessment


def _pump_model() -> PumpModel:
    n = next(_seq)
    return PumpModel.objects.create(
        manufacturer="Testco", name=f"Pump {n}", reservoir_ml=Decimal("20"), flow="programmable", alarm_threshold_ml=2
    )


def _drug() -> Drug:
    return Drug.objects.create(name=f"Compounded baclofen {next(_seq)}", concentration_mcg_per_ml=Decimal("1500"))


def _change_request() -> AppointmentChangeRequest:
    appointment = factories.AppointmentFactory()
    return AppointmentChangeRequest.objects.create(
        appointment=appointment, requested_by=factories.PatientUserFactory(), message="Can we move it?"
    )


def _reminder() -> Reminder:
    appointment = factories.AppointmentFactory()
    return Reminder.objects.create(
        appointment=appointment,
        patient=appointment.patient,
        offset_days=14,
        channel=Reminder.Channel.EMAIL,
        appointment_starts_at=appointment.starts_at,
        send_at=appointment.starts_at - dt.timedelta(days=14),
    )


def _delivery_attempt() -> DeliveryAttempt:
    reminder = _reminder()
    return DeliveryAttempt.objects.create(
        reminder=reminder, channel=reminder.channel, started_at=reminder.send_at, outcome="started"
    )


def _appointment_notice() -> AppointmentNotice:
    appointment = factories.AppointmentFactory()
    return AppointmentNotice.objects.create(
        appointment=appointment, patient=appointment.patient, kind="moved", channel="email", body="Hello,"
    )


def _alert() -> Alert:
    implant = factories.ImplantFactory()
    return Alert.objects.create(
        kind=Alert.Kind.REFILL_URGENT,
        severity=Alert.Severity.URGENT,
        patient=implant.patient,
        implant=implant,
        key_date=dt.date(2025, 3, 1),
        message="Alarm in 5 days, nothing booked",
    )


def _closed_day() -> ClosedDay:
    return ClosedDay.objects.create(date=dt.date(2025, 1, 1) + dt.timedelta(days=next(_seq)), reason="Bank holiday")


def _emptying():
    implant = factories.ImplantFactory()
    return ReservoirEmptying.objects.create(
        implant=implant,
        emptied_at=dt.datetime(2025, 3, 1, 9, tzinfo=dt.UTC),
        reason=ReservoirEmptying.Reason.MRI,
        recorded_by=implant.recorded_by,
    )


def _notice() -> FieldSafetyNotice:
    return FieldSafetyNotice.objects.create(
        title="Motor stall advisory",
        reference=f"FA-{next(_seq)}",
        manufacturer_text="Interrogate the pump at the next refill.",
        criteria="Drug lot LOT-B (1 pump)",
        issued_by=factories.ClinicianFactory(),
        issued_at=dt.datetime(2025, 3, 1, 9, tzinfo=dt.UTC),
    )


def _flag() -> FieldSafetyFlag:
    implant = factories.ImplantFactory()
    return FieldSafetyFlag.objects.create(notice=_notice(), patient=implant.patient, implant=implant)


MAKERS = {
    Patient: lambda: factories.PatientFactory(),
    ScreeningTrial: lambda: factories.ScreeningTrialFactory(),
    TrialStep: lambda: factories.TrialStepFactory(),
    TrialAssessment: _assessment,
    AshworthScore: lambda: _assessment().ashworth_scores.first(),
    PumpModel: _pump_model,
    Drug: _drug,
    DrugPumpInterval: lambda: DrugPumpInterval.objects.create(
        drug=_drug(), pump_model=factories.pump_model(), max_interval_days=180
    ),
    Implant: lambda: factories.ImplantFactory(),
    DosePrescription: lambda: factories.DosePrescriptionFactory(),
    RefillVisit: lambda: factories.RefillVisitFactory(),
    Appointment: lambda: factories.AppointmentFactory(),
    AppointmentChangeRequest: _change_request,
    Reminder: _reminder,
    DeliveryAttempt: _delivery_attempt,
    AppointmentNotice: _appointment_notice,
    Alert: _alert,
    ClinicSettings: ClinicSettings.load,
    ClosedDay: _closed_day,
    ReservoirEmptying: lambda: _emptying(),
    TaskRun: lambda: TaskRun.objects.create(name=f"task-{TaskRun.objects.count()}"),
    FieldSafetyNotice: _notice,
    FieldSafetyFlag: _flag,
}


@pytest.fixture
def make_row():
    def _make(model):
        return MAKERS[model]()

    return _make


@pytest.fixture
def superuser(db):
    return factories.UserFactory(is_staff=True, is_superuser=True, username="root")


@pytest.fixture
def admin_staff(db):
    """A clinic admin with access to the Django admin (is_staff)."""
    return factories.ClinicAdminFactory(is_staff=True, username="clinicadmin")


def changeform_data(response, **changes) -> dict:
    """The POST body a browser would send back from an admin change page, with `changes` applied."""
    form = response.context["adminform"].form
    data = {name: "" if form[name].value() is None else form[name].value() for name in form.fields}
    for inline in response.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({management.add_prefix(name): management[name].value() for name in management.fields})
    data.update(changes)
    return data
