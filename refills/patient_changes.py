"""A patient's contact details, address or status changed from the staff pages.

The patient's row is written by `patients.services`; the care schedule's part follows in the
same transaction: the reminders of every booked future appointment are planned again, so a
withdrawn consent, a removed email or a patient marked transferred or deceased cancels the
pending reminders at once (the level-triggered scan and the delivery check would catch it a few
minutes later; here nothing waits for them).
"""

import datetime as dt
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from patients.models import Patient
from patients.services import PATIENT_CONTACT_FIELDS, patient_status_change, patient_update

from .models import Appointment
from .reminders.planning import reminders_materialise_for_appointment


def _patient_reminders_replan(*, patient: Patient, now: dt.datetime) -> None:
    booked = Appointment.objects.filter(patient=patient, status=Appointment.Status.BOOKED, starts_at__gt=now)
    for appointment in booked.order_by("starts_at")[:50]:
        reminders_materialise_for_appointment(appointment=appointment, now=now)


@transaction.atomic
def patient_contact_change(*, patient: Patient, data: Mapping[str, Any], now: dt.datetime | None = None) -> Patient:
    """Email, phone, postal address and reminder consent/channel; nothing else may be set here."""
    now = now or timezone.now()
    patient = patient_update(
        patient=patient, data=data, allowed=PATIENT_CONTACT_FIELDS, change_reason="Contact details"
    )
    _patient_reminders_replan(patient=patient, now=now)
    return patient


@transaction.atomic
def patient_status_record(*, patient: Patient, status: str, reason: str, now: dt.datetime | None = None) -> Patient:
    """Active, transferred or deceased; a patient who is not active gets no more reminders."""
    now = now or timezone.now()
    patient = patient_status_change(patient=patient, status=status, reason=reason)
    _patient_reminders_replan(patient=patient, now=now)
    return patient
