"""Correct a record in one step: mark it entered in error with a reason and enter it again.

Each correction runs in one transaction: the wrong record is marked entered in error
(`care_record_mark_entered_in_error` or `core.records.clinical_record_mark_entered_in_error`),
then the corrected one is recorded through the same service as the normal form, so every rule
that refuses an impossible entry refuses an impossible correction too, and then nothing changes:
the old record stays valid. The forecast is recomputed by those services. Entered-in-error rows
are never deleted: the patient page shows them struck through, with their reason.
"""

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from simple_history.utils import update_change_reason

from core.records import clinical_record_mark_entered_in_error
from itbclinic.accounts.models import User
from pumps.models import DosePrescription, Implant
from pumps.services import implant_record_eri

from .models import Appointment, ClinicSettings, RefillVisit, ReservoirEmptying
from .services import (
    care_record_mark_entered_in_error,
    dose_change_record,
    implant_forecast_refresh,
    implant_register_with_fill,
    refill_visit_record,
)

# Written by refill_visit_record when a refill changes the dose: part of that refill's record.
SET_AT_REFILL = "Set at refill visit"


def _reason_or_error(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"correction_reason": "Say what was wrong with the record."})
    return reason


@transaction.atomic
def refill_visit_correct(
    *, visit: RefillVisit, by: User, correction_reason: str, now: dt.datetime | None = None, **fields: Any
) -> RefillVisit:
    """The refill `visit` was wrong: it is marked entered in error and `fields` recorded in its place.

    The corrected refill keeps who performed it and the appointment it completed; it completes no
    other booking (the next booked refill is for the refill after this one).
    """
    reason = _reason_or_error(correction_reason)
    visit = RefillVisit.objects.select_for_update().select_related("implant").get(pk=visit.pk)
    if visit.entered_in_error:
        raise ValidationError("This refill was already marked entered in error.")
    implant = visit.implant
    if not implant.is_active:
        raise ValidationError("This pump is explanted: its refills can no longer be corrected here.")
    completed = Appointment.objects.filter(visit=visit).first()
    doses_set_here = list(
        DosePrescription.objects.valid().filter(implant=implant, effective_at=visit.performed_at, reason=SET_AT_REFILL)
    )
    care_record_mark_entered_in_error(record=visit, by=by, reason=reason)
    for dose in doses_set_here:
        clinical_record_mark_entered_in_error(record=dose, by=by, reason=f"Its refill was entered in error: {reason}")
    if completed is not None:
        # The one-to-one link moves to the corrected refill below (saved: the history keeps it).
        completed.visit = None
        completed.save(update_fields=["visit", "updated_at"])
    corrected = refill_visit_record(
        implant=implant,
        performed_by=visit.performed_by,
        appointment=completed,
        complete_booking=False,
        now=now,
        **fields,
    )
    if completed is not None:
        completed.visit = corrected
        completed.save(update_fields=["visit", "updated_at"])
    return corrected


@transaction.atomic
def dose_prescription_correct(
    *,
    prescription: DosePrescription,
    by: User,
    correction_reason: str,
    now: dt.datetime | None = None,
    **fields: Any,
) -> DosePrescription:
    """A dose change was wrong: marked entered in error, and the corrected one prescribed by `by`."""
    reason = _reason_or_error(correction_reason)
    prescription = DosePrescription.objects.select_for_update().select_related("implant").get(pk=prescription.pk)
    if prescription.entered_in_error:
        raise ValidationError("This dose was already marked entered in error.")
    if prescription.reason == SET_AT_REFILL:
        raise ValidationError("This dose was set at a refill: correct that refill instead.")
    care_record_mark_entered_in_error(record=prescription, by=by, reason=reason)
    return dose_change_record(implant=prescription.implant, prescribed_by=by, now=now, **fields)


@transaction.atomic
def implant_eri_correct(
    *, implant: Implant, eri_on: dt.date | None, by: User, correction_reason: str, now: dt.datetime | None = None
) -> Implant:
    """The ERI date was wrong (another date) or the ERI was never reported (`eri_on` None).

    The ERI is a date on the implant, not a row of its own: the old date and the reason are kept
    in the implant's history (django-simple-history), the battery plan follows the new date.
    """
    reason = _reason_or_error(correction_reason)
    implant = Implant.objects.select_for_update().get(pk=implant.pk)
    if implant.eri_reported_on is None:
        raise ValidationError("No ERI is recorded for this pump.")
    if eri_on == implant.eri_reported_on:
        raise ValidationError({"eri_on": "This is the date already recorded."})
    if eri_on is None:
        implant.eri_reported_on = None
        implant._change_reason = f"ERI entered in error: {reason}"[:100]  # type: ignore[attr-defined]
        implant.save(update_fields=["eri_reported_on", "updated_at"])
    else:
        clinic = ClinicSettings.load()
        implant = implant_record_eri(
            implant=implant, eri_on=eri_on, by=by, now=now, skew_minutes=clinic.clock_skew_minutes
        )
        update_change_reason(implant, f"ERI date corrected: {reason}"[:100])
    implant_forecast_refresh(implant=implant)
    return implant


@transaction.atomic
def implant_correct(
    *, implant: Implant, by: User, correction_reason: str, now: dt.datetime | None = None, **fields: Any
) -> Implant:
    """A pump registered with wrong details (model, serial, date, fill): marked entered in error and
    registered again with `fields` (those of `implant_register_with_fill`).

    Only before its first refill or emptying: after that the refills belong to the pump as it was
    recorded, and the admin corrects it. Its booked appointments move to the corrected record.
    """
    reason = _reason_or_error(correction_reason)
    implant = Implant.objects.select_for_update().select_related("patient").get(pk=implant.pk)
    if implant.entered_in_error:
        raise ValidationError("This pump was already marked entered in error.")
    if implant.explanted_on is not None:
        raise ValidationError("This pump is explanted: ask the clinic admin to correct it.")
    if (
        RefillVisit.objects.valid().filter(implant=implant).exists()
        or ReservoirEmptying.objects.valid().filter(implant=implant).exists()
    ):
        raise ValidationError(
            "This pump already has refills recorded: correct those, or ask the clinic admin to correct the pump."
        )
    booked = list(Appointment.objects.valid().filter(implant=implant, status=Appointment.Status.BOOKED))
    starting = list(DosePrescription.objects.valid().filter(implant=implant))
    clinical_record_mark_entered_in_error(record=implant, by=by, reason=reason)
    for dose in starting:
        clinical_record_mark_entered_in_error(record=dose, by=by, reason=f"Its pump was entered in error: {reason}")
    corrected = implant_register_with_fill(patient=implant.patient, recorded_by=by, now=now, **fields)
    for appointment in booked:
        appointment.implant = corrected
        appointment.save(update_fields=["implant", "updated_at"])
    return corrected
