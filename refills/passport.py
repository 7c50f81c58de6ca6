"""The emergency pump passport: what an emergency department needs to know about the pump, as
lines of text the wallet card prints and its QR code holds (pure text: no link, no login).

The signs are docs/domain.md's ("Why a missed refill is an emergency") [S17][S35][S36]; the MRI
precaution is the pump model's catalogue note, without its source tags.
"""

import datetime as dt
import re
from dataclasses import dataclass

import segno
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from audit.models import AccessLog
from core.formatting import format_concentration, format_dose, format_pump
from patients.models import Patient
from pumps.models import DosePrescription, Implant
from pumps.selectors import dose_get_in_force, dose_get_planned

from .models import Appointment, ClinicSettings, RefillVisit

# How a print of the passport is recorded: an access-log export of the patient's record.
PASSPORT_EXPORT = "pump passport"
WITHDRAWAL_SIGNS = (
    "returning spasticity, itching without rash, fast heart rate; then high fever, confusion, rigidity. "
    "Can progress to rhabdomyolysis, multi-organ failure and death within 24-72 hours: an emergency."
)
OVERDOSE_SIGNS = "drowsiness, slowed breathing, floppiness, coma."
NO_HELPLINE = "see the pump's patient card"
_SOURCE_TAG = re.compile(r"\s*\[S[^\]]*\]")


def strip_source_tags(text: str) -> str:
    """ "Interrogate the pump after MRI [S37][S38]." → "Interrogate the pump after MRI."."""
    return _SOURCE_TAG.sub("", text).strip()


@dataclass(frozen=True, slots=True)
class Passport:
    lines: list[tuple[str, str]]

    @property
    def text(self) -> str:
        """The card's text, one "label: value" a line: what the QR code holds."""
        return "\n".join(["EMERGENCY PUMP PASSPORT", *(f"{label}: {value}" for label, value in self.lines)])

    def qr_svg(self) -> SafeString:
        """The QR code of `text`, inline SVG (segno writes it; no image file, no URL)."""
        return mark_safe(  # noqa: S308 - segno's own SVG of our text, which it escapes
            segno.make(self.text, error="l", micro=False).svg_inline(
                scale=2, border=2, omitsize=True, title="Pump passport QR code"
            )
        )


def _notes_as_sentences(*notes: str) -> str:
    """Notes as one text, each said once and ending with a full stop. A pump registered with its
    model's MRI note carries the same words as the model: they are not printed twice."""
    kept: list[str] = []
    for note in (strip_source_tags(note).strip() for note in notes):
        if note and not any(note in other for other in kept):
            kept = [other for other in kept if other not in note] + [note]
    return " ".join(note if note.endswith((".", "!", "?")) else f"{note}." for note in kept)


def _day(day: dt.date | None) -> str:
    return f"{day.day} {day:%b %Y}" if day else "not known: call the clinic"


def passport_build(
    *,
    patient: Patient,
    implant: Implant,
    dose: DosePrescription | None,
    planned: DosePrescription | None = None,
    last_visit: RefillVisit | None,
    booked_refill: Appointment | None,
    clinic: ClinicSettings,
) -> Passport:
    """The passport's lines from what the card shows (no queries: every row is passed in)."""
    model = implant.pump_model
    drug = last_visit.drug if last_visit else implant.fill_drug
    drug_name = drug.name if drug else "Baclofen intrathecal"
    concentration = (
        dose.concentration_mcg_per_ml if dose else (last_visit.concentration_mcg_per_ml if last_visit else None)
    )
    dose_text = (
        f"{format_dose(dose.daily_dose_mcg)} ({dose.get_dosing_mode_display().lower()})" if dose else "not recorded"
    )
    if planned is not None:
        effective = timezone.localtime(planned.effective_at)
        dose_text += f"; planned: {format_dose(planned.daily_dose_mcg)} from {_day(effective.date())}"
    mri = _notes_as_sentences(model.mri_note, implant.mri_notes)
    if clinic.emergency_phone:
        contact = f"{clinic.emergency_phone} (24 hours), {clinic.name}"
    else:
        contact = f"{clinic.phone} ({clinic.name}, office hours); out of hours: the emergency department"
    if booked_refill is not None:
        starts = timezone.localtime(booked_refill.starts_at)
        next_refill = (
            f"booked {starts:%a} {_day(starts.date())}, {starts:%H:%M}; due by {_day(implant.forecast_due_by)}"
        )
    else:
        next_refill = f"due by {_day(implant.forecast_due_by)}"
    lines = [
        ("Name", f"{patient.full_name}, born {_day(patient.date_of_birth)}"),
        ("Drug", f"{drug_name}, {format_concentration(concentration) if concentration else 'not recorded'}"),
        ("Dose in force", dose_text),
        ("Pump", f"{format_pump(model)}, serial {implant.serial_number}"),
        ("Catheter tip", implant.catheter_tip_level),
        ("Implanted", f"{_day(implant.implanted_on)} at {implant.hospital}"),
        ("Next refill", next_refill),
        ("Pump alarm date", _day(implant.forecast_alarm_on)),
        ("Clinic", contact),
        ("Manufacturer helpline", model.helpline_phone or NO_HELPLINE),
        ("Withdrawal signs", WITHDRAWAL_SIGNS),
        ("Overdose signs", OVERDOSE_SIGNS),
        ("MRI", mri or "ask the clinic before any MRI"),
    ]
    return Passport(lines=lines)


def passport_reprint_due(*, patient: Patient, implant: Implant, now: dt.datetime) -> dt.datetime | None:
    """When the dose or concentration (or the pump) last changed, if no passport was printed since.

    A change is a prescription taking effect (a refill that changes the dose or concentration
    writes one, as does the theatre fill); the print is the passport page's access-log export.
    Two queries.
    """
    latest = (
        DosePrescription.objects.valid()
        .filter(implant=implant, effective_at__lte=now)
        .order_by("-effective_at", "-id")
        .values_list("effective_at", "created_at")
        .first()
    )
    if latest is None:
        return None
    changed, recorded = latest
    # A print made before the change was recorded cannot carry it, even if it is backdated.
    printed = AccessLog.objects.filter(
        patient=patient, action=AccessLog.Action.EXPORT, detail=PASSPORT_EXPORT, at__gte=max(changed, recorded)
    ).exists()
    return None if printed else changed


def passport_get(
    *, patient: Patient, implant: Implant, now: dt.datetime, booked_refill: Appointment | None
) -> Passport:
    last_visit = (
        RefillVisit.objects.valid()
        .select_related("drug")
        .filter(implant=implant)
        .order_by("-performed_at", "-id")
        .first()
    )
    return passport_build(
        patient=patient,
        implant=implant,
        dose=dose_get_in_force(implant=implant, at=now),
        planned=dose_get_planned(implant=implant, now=now),
        last_visit=last_visit,
        booked_refill=booked_refill,
        clinic=ClinicSettings.load(),
    )
