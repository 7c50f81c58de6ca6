"""Staff pages that correct a record: "Correct this" on the patient page opens the record's form
filled with its values; saving marks the record entered in error and records the corrected one
in one transaction (refills/corrections.py).

Who: the role that records it. Nurses correct refills; clinicians correct doses, ERIs and pumps.
"""

from typing import cast

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from audit.models import AccessLog
from audit.services import audit_record_access
from core.formatting import format_day, plain_decimal
from core.forms import add_service_errors
from core.idempotency import idempotent_form
from core.web import form_data
from itbclinic.accounts.models import User
from itbclinic.accounts.permissions import staff_required
from patients.selectors import patient_list_visible_to
from pumps.models import DosePrescription, Implant

from . import corrections
from .forms import DoseCorrectForm, ImplantCorrectForm, ImplantEriCorrectForm, RefillVisitCorrectForm
from .models import RefillVisit

CORRECTION_FIELDS: dict[str, str | None] = {
    "implant": None,
    "appointment": None,
    "prescribed_by": None,
    "recorded_by": None,
}


def _user(request: HttpRequest) -> User:
    return cast(User, request.user)  # staff_required: never anonymous here


def _audit(request: HttpRequest, patient, detail: str) -> None:
    audit_record_access(
        user=request.user, patient=patient, action=AccessLog.Action.CHANGE, request=request, detail=detail
    )


def _local(moment):
    return timezone.localtime(moment).replace(second=0, microsecond=0)


def _visible(request: HttpRequest):
    return patient_list_visible_to(user=request.user)


def _corrected_message(request: HttpRequest, implant: Implant, what: str) -> None:
    implant.refresh_from_db()
    due = f" Refill now due by {format_day(implant.forecast_due_by, 'j M Y')}." if implant.forecast_due_by else ""
    messages.success(request, f"{what} corrected: the wrong record is kept, marked entered in error.{due}")


@staff_required("refills.add_refillvisit", "refills.change_refillvisit")
@require_http_methods(["GET", "POST"])
@idempotent_form
def refill_visit_correct(request: HttpRequest, visit_id: int) -> HttpResponse:
    visit = get_object_or_404(
        RefillVisit.objects.valid()
        .select_related("implant__patient", "implant__pump_model", "drug")
        .filter(implant__patient__in=_visible(request)),
        pk=visit_id,
    )
    implant, patient = visit.implant, visit.implant.patient
    initial = {
        "performed_at": _local(visit.performed_at),
        "actual_residual_ml": plain_decimal(visit.actual_residual_ml),
        "volume_added_ml": plain_decimal(visit.volume_added_ml),
        "drug": visit.drug,
        "drug_lot": visit.drug_lot,
        "daily_dose_after_mcg": plain_decimal(visit.daily_dose_after_mcg),
        "dosing_mode": visit.dosing_mode,
        "schedule": visit.schedule or None,
        "prescriber": visit.prescriber,
        "patient_bolus_mcg": plain_decimal(visit.patient_bolus_mcg),
        "patient_boluses_per_day": visit.patient_boluses_per_day,
        "alarm_threshold_ml": plain_decimal(visit.alarm_threshold_ml),
        "battery_status": visit.battery_status,
        "battery_event_on": visit.battery_event_on,
        "post_fill_check": visit.post_fill_check,
        "post_fill_discrepancy_ml": plain_decimal(visit.post_fill_discrepancy_ml),
        "bridge_bolus_mcg": plain_decimal(visit.bridge_bolus_mcg),
        "notes": visit.notes,
    }
    form = RefillVisitCorrectForm(form_data(request), initial=initial)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        reason = data.pop("correction_reason")
        try:
            corrections.refill_visit_correct(visit=visit, by=_user(request), correction_reason=reason, **data)
        except ValidationError as exc:
            add_service_errors(form, exc, field_map=CORRECTION_FIELDS)
        else:
            _audit(request, patient, f"refill {visit.pk} corrected")
            _corrected_message(request, implant, "Refill")
            return redirect("staff:patient_detail", patient_id=patient.pk)
    # The live forecast would count the refill being corrected: the form shows what it expected.
    preview = {"expected_residual_ml": visit.expected_residual_ml}
    context = {"patient": patient, "implant": implant, "form": form, "correcting": visit, "preview": preview}
    return render(request, "refills/refill_visit_form.html", context, status=400 if form.errors else 200)


@staff_required("pumps.add_doseprescription", "pumps.view_implant")
@require_http_methods(["GET", "POST"])
@idempotent_form
def dose_correct(request: HttpRequest, prescription_id: int) -> HttpResponse:
    prescription = get_object_or_404(
        DosePrescription.objects.valid()
        .select_related("implant__patient", "implant__pump_model")
        .filter(implant__patient__in=_visible(request), implant__entered_in_error=False),
        pk=prescription_id,
    )
    implant, patient = prescription.implant, prescription.implant.patient
    form = DoseCorrectForm(
        form_data(request),
        initial={
            "daily_dose_mcg": plain_decimal(prescription.daily_dose_mcg),
            "effective_at": _local(prescription.effective_at),
            "dosing_mode": prescription.dosing_mode,
            "schedule": prescription.schedule or None,
            "patient_bolus_mcg": plain_decimal(prescription.patient_bolus_mcg),
            "patient_boluses_per_day": prescription.patient_boluses_per_day,
            "titration_confirmed": prescription.titration_confirmed,
            "reason": prescription.reason,
        },
    )
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        reason = data.pop("correction_reason")
        try:
            corrections.dose_prescription_correct(
                prescription=prescription, by=_user(request), correction_reason=reason, **data
            )
        except ValidationError as exc:
            add_service_errors(form, exc, field_map=CORRECTION_FIELDS)
        else:
            _audit(request, patient, f"dose {prescription.pk} corrected")
            _corrected_message(request, implant, "Dose")
            return redirect("staff:patient_detail", patient_id=patient.pk)
    context = {"implant": implant, "patient": patient, "form": form, "correcting": prescription}
    return render(request, "refills/dose_change.html", context, status=400 if form.errors else 200)


def _implant_get(request: HttpRequest, implant_id: int) -> Implant:
    return get_object_or_404(
        Implant.objects.valid().select_related("patient", "pump_model").filter(patient__in=_visible(request)),
        pk=implant_id,
    )


@staff_required("pumps.change_implant")
@require_http_methods(["GET", "POST"])
@idempotent_form
def implant_eri_correct(request: HttpRequest, implant_id: int) -> HttpResponse:
    implant = _implant_get(request, implant_id)
    form = ImplantEriCorrectForm(form_data(request), initial={"eri_on": implant.eri_reported_on})
    if request.method == "POST" and form.is_valid():
        try:
            corrections.implant_eri_correct(
                implant=implant,
                eri_on=form.cleaned_data["eri_on"],
                by=_user(request),
                correction_reason=form.cleaned_data["correction_reason"],
            )
        except ValidationError as exc:
            add_service_errors(form, exc, field_map={"eri_reported_on": "eri_on", **CORRECTION_FIELDS})
        else:
            _audit(request, implant.patient, f"ERI of implant {implant.pk} corrected")
            messages.success(request, "ERI corrected: the earlier date is kept in the pump's history.")
            return redirect("staff:patient_detail", patient_id=implant.patient_id)
    context = {"implant": implant, "patient": implant.patient, "form": form, "correcting": implant}
    return render(request, "pumps/implant_eri.html", context, status=400 if form.errors else 200)


@staff_required("pumps.add_implant", "pumps.change_implant")
@require_http_methods(["GET", "POST"])
@idempotent_form
def implant_correct(request: HttpRequest, implant_id: int) -> HttpResponse:
    implant = _implant_get(request, implant_id)
    form = ImplantCorrectForm(
        form_data(request),
        initial={
            "pump_model": implant.pump_model,
            "serial_number": implant.serial_number,
            "implanted_on": implant.implanted_on,
            "catheter_model": implant.catheter_model,
            "catheter_tip_level": implant.catheter_tip_level,
            "surgeon": implant.surgeon,
            "hospital": implant.hospital,
            "fill_drug": implant.fill_drug,
            "fill_volume_ml": plain_decimal(implant.fill_volume_ml),
            "fill_drug_lot": implant.fill_drug_lot,
            "fill_alarm_threshold_ml": plain_decimal(implant.fill_alarm_threshold_ml),
            "starting_daily_dose_mcg": plain_decimal(_starting_dose(implant)),
            "flow_ml_per_day": plain_decimal(implant.flow_ml_per_day),
            "mri_notes": implant.mri_notes,
        },
    )
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        reason = data.pop("correction_reason")
        try:
            corrected = corrections.implant_correct(
                implant=implant, by=_user(request), correction_reason=reason, **data
            )
        except ValidationError as exc:
            add_service_errors(form, exc, field_map=CORRECTION_FIELDS)
        else:
            _audit(request, implant.patient, f"implant {implant.pk} corrected")
            _corrected_message(request, corrected, "Pump")
            return redirect("staff:patient_detail", patient_id=implant.patient_id)
    context = {"patient": implant.patient, "form": form, "active": None, "correcting": implant}
    return render(request, "pumps/implant_register.html", context, status=400 if form.errors else 200)


def _starting_dose(implant: Implant):
    first = DosePrescription.objects.valid().filter(implant=implant).order_by("effective_at", "id").first()
    return first.daily_dose_mcg if first else None
