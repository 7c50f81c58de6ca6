"""A patient's timeline for the staff page: referral to today and what is booked ahead."""

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count
from django.utils import timezone

from core.formatting import format_concentration, format_count, format_dose, format_pump, format_volume
from core.records import ClinicalRecord
from patients.models import Patient, ScreeningTrial
from pumps.models import DosePrescription, Implant

from .clinic_time import clinic_day_start
from .models import (
    Appointment,
    RefillVisit,
    Reminder,
)


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    on: dt.date
    at: dt.datetime | None
    kind: str
    title: str
    detail: str = ""
    flag: str = ""
    # The row behind the event (the implant's for an ERI), for the "Correct this" link.
    record_id: int | None = None
    correctable: bool = False
    # Set when the record was entered in error: it stays on the timeline, struck through.
    error_reason: str = ""


def _error_reason(record: ClinicalRecord) -> str:
    return (record.entered_in_error_reason or "no reason given") if record.entered_in_error else ""


def patient_get_timeline(*, patient: Patient, now: dt.datetime) -> list[TimelineEvent]:
    """Referral to today and what is booked ahead, oldest first: one query per kind of record."""
    events: list[TimelineEvent] = []
    if patient.referred_on:
        events.append(TimelineEvent(on=patient.referred_on, at=None, kind="referral", title="Referred for ITB"))
    trials = (
        ScreeningTrial.objects.valid()
        .filter(patient=patient)
        .annotate(step_count=Count("steps", distinct=True), assessment_count=Count("assessments", distinct=True))
    )
    for trial in trials:
        events.append(
            TimelineEvent(
                on=trial.started_on,
                at=None,
                kind="trial",
                title=f"Screening trial ({trial.get_kind_display().lower()})",
                detail=f"{trial.step_count} dose(s), {trial.assessment_count} assessment(s); "
                f"verdict: {trial.get_verdict_display().lower()}",
                flag="ok" if trial.verdict == ScreeningTrial.Verdict.POSITIVE else "",
            )
        )
    active_implants: set[int] = set()
    for implant in Implant.objects.filter(patient=patient).select_related("pump_model"):
        active = not implant.entered_in_error and implant.explanted_on is None
        if active:
            active_implants.add(implant.pk)
        events.append(
            TimelineEvent(
                on=implant.implanted_on,
                at=None,
                kind="implant",
                title=f"Pump implanted: {format_pump(implant.pump_model)}",
                detail=f"Serial {implant.serial_number}, catheter tip {implant.catheter_tip_level}, "
                f"{implant.surgeon} at {implant.hospital}",
                record_id=implant.pk,
                correctable=active,
                error_reason=_error_reason(implant),
            )
        )
        if implant.entered_in_error:
            continue
        if implant.eri_reported_on:
            events.append(
                TimelineEvent(
                    on=implant.eri_reported_on,
                    at=None,
                    kind="eri",
                    title="ERI reported",
                    flag="warn",
                    record_id=implant.pk,
                    correctable=active,
                )
            )
        if implant.explanted_on:
            events.append(
                TimelineEvent(
                    on=implant.explanted_on,
                    at=None,
                    kind="explant",
                    title="Pump explanted",
                    detail=implant.explant_reason,
                )
            )
    for visit in RefillVisit.objects.filter(implant__patient=patient).select_related("drug"):
        detail = (
            f"{format_volume(visit.volume_added_ml)} of {format_concentration(visit.concentration_mcg_per_ml)}, "
            f"{format_dose(visit.daily_dose_after_mcg)}; residual {format_volume(visit.actual_residual_ml)}"
        )
        if visit.expected_residual_ml is not None:
            detail += f" (expected {format_volume(visit.expected_residual_ml)})"
        detail += f"; alarm {visit.alarm_on.day} {visit.alarm_on:%b %Y}"
        events.append(
            TimelineEvent(
                on=timezone.localdate(visit.performed_at),
                at=visit.performed_at,
                kind="refill",
                title="Refill" + (": residual discrepancy" if visit.discrepancy_flagged else ""),
                detail=detail,
                flag="danger" if visit.discrepancy_flagged and not visit.entered_in_error else "",
                record_id=visit.pk,
                correctable=not visit.entered_in_error and visit.implant_id in active_implants,
                error_reason=_error_reason(visit),
            )
        )
    prescriptions = DosePrescription.objects.filter(implant__patient=patient, implant__entered_in_error=False).exclude(
        reason="Set at refill visit"
    )
    for dose in prescriptions:
        events.append(
            TimelineEvent(
                on=timezone.localdate(dose.effective_at),
                at=dose.effective_at,
                kind="dose",
                title=f"Dose {format_dose(dose.daily_dose_mcg)} ({dose.get_dosing_mode_display().lower()})",
                detail=dose.reason,
                record_id=dose.pk,
                correctable=not dose.entered_in_error and dose.implant_id in active_implants,
                error_reason=_error_reason(dose),
            )
        )
    # A completed refill appointment is the refill itself (shown above, on the day it happened).
    appointments = (
        Appointment.objects.valid()
        .filter(patient=patient)
        .exclude(status=Appointment.Status.COMPLETED, visit__isnull=False)
    )
    for appointment in appointments:
        flag = {
            Appointment.Status.NO_SHOW: "danger",
            Appointment.Status.CANCELLED: "muted",
            Appointment.Status.BOOKED: "info",
        }.get(appointment.status, "")
        detail = appointment.place
        if appointment.cancel_reason:
            detail += f"; cancelled: {appointment.cancel_reason}"
        events.append(
            TimelineEvent(
                on=timezone.localdate(appointment.starts_at),
                at=appointment.starts_at,
                kind="appointment",
                title=f"{appointment.get_kind_display()} appointment: {appointment.get_status_display().lower()}",
                detail=detail,
                flag=flag,
            )
        )
    for reminder in Reminder.objects.filter(patient=patient).exclude(status=Reminder.Status.CANCELLED):
        when = reminder.sent_at or reminder.send_at
        events.append(
            TimelineEvent(
                on=timezone.localdate(when),
                at=when,
                kind="reminder",
                title=f"{reminder.get_channel_display()} reminder {format_count(reminder.offset_days, 'day')} before: "
                f"{reminder.get_status_display().lower()}",
                detail=reminder.last_error if reminder.status == Reminder.Status.FAILED else "",
                flag="danger" if reminder.status == Reminder.Status.FAILED else "",
            )
        )
    # On a replacement day the old pump comes out before the new one goes in.
    events.sort(key=lambda e: (e.on, e.at or clinic_day_start(e.on), e.kind != "explant"))
    return events
