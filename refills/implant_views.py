"""Clinicians' pages that change a pump's history: register with its fill, replace, explant,
empty the reservoir. They live with the care schedule because each one recomputes the forecast
and may close bookings (the pumps app never calls into refills: STYLE.md "The house")."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from core.formatting import format_day, plain_decimal
from core.forms import add_service_errors
from core.idempotency import idempotent_form
from core.web import form_data
from itbclinic.accounts.permissions import staff_required
from patients.models import ScreeningTrial
from patients.selectors import patient_list_visible_to, trial_get_summary
from patients.views import staff_patient_get
from pumps.forms import ImplantExplantForm, ImplantFillForm, ImplantRegisterForm, ImplantReplaceForm
from pumps.models import Implant
from pumps.selectors import implant_get_active

from . import services
from .forecasting import PROBLEM_LABELS
from .forms import ReservoirEmptyForm

# The service names the pumps' fields; the replace form names the explant's its own way.
REPLACE_FIELDS = {"explant_reason": "explant_reason", "patient": None, "implant": None}


def _suggested_start(patient) -> tuple[ScreeningTrial | None, object]:
    trial = (
        ScreeningTrial.objects.valid()
        .filter(patient=patient, verdict=ScreeningTrial.Verdict.POSITIVE)
        .order_by("-started_on", "-id")
        .first()
    )
    if trial is None:
        return None, None
    return trial, trial_get_summary(trial_id=trial.pk).suggested_starting_dose_mcg


def _implant_get(request: HttpRequest, implant_id: int) -> Implant:
    visible = patient_list_visible_to(user=request.user)
    return get_object_or_404(
        Implant.objects.valid().select_related("patient", "pump_model").filter(patient__in=visible), pk=implant_id
    )


def _registered_message(request: HttpRequest, implant: Implant, verb: str) -> None:
    if implant.forecast_due_by:
        messages.success(
            request,
            f"Pump {implant.serial_number} {verb}. Refill due by {format_day(implant.forecast_due_by, 'j M Y')} "
            f"(alarm {format_day(implant.forecast_alarm_on, 'j M Y')}).",
        )
    else:
        label = PROBLEM_LABELS.get(implant.forecast_problem, "No forecast")
        messages.warning(request, f"Pump {implant.serial_number} {verb}. {label}: it is on the worklist as urgent.")


@staff_required("pumps.add_implant")
@require_http_methods(["GET", "POST"])
@idempotent_form
def implant_register(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = staff_patient_get(request, patient_id)
    active = implant_get_active(patient=patient)
    trial, suggested_dose = _suggested_start(patient)
    form = ImplantRegisterForm(
        form_data(request),
        initial={"implanted_on": timezone.localdate(), "starting_daily_dose_mcg": plain_decimal(suggested_dose)},
    )
    if request.method == "POST" and form.is_valid():
        try:
            implant = services.implant_register_with_fill(
                patient=patient, recorded_by=request.user, **form.cleaned_data
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            _registered_message(request, implant, "registered")
            return redirect("staff:patient_detail", patient_id=patient.pk)
    context = {"patient": patient, "form": form, "active": active, "trial": trial, "suggested_dose": suggested_dose}
    return render(request, "pumps/implant_register.html", context, status=400 if form.errors else 200)


@staff_required("pumps.change_implant", "pumps.add_doseprescription")
@require_http_methods(["GET", "POST"])
@idempotent_form
def implant_fill(request: HttpRequest, implant_id: int) -> HttpResponse:
    """Record the theatre fill of a pump registered without it: the urgent "fill not recorded" ends."""
    implant = _implant_get(request, implant_id)
    trial, suggested_dose = _suggested_start(implant.patient)
    form = ImplantFillForm(
        form_data(request),
        initial={
            "fill_volume_ml": plain_decimal(implant.pump_model.reservoir_ml),
            "fill_alarm_threshold_ml": plain_decimal(implant.pump_model.alarm_threshold_ml),
            "starting_daily_dose_mcg": plain_decimal(suggested_dose),
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            implant = services.implant_fill_record(implant=implant, recorded_by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc, field_map={"implant": None, "recorded_by": None})
        else:
            _registered_message(request, implant, "has its theatre fill recorded")
            return redirect("staff:patient_detail", patient_id=implant.patient_id)
    context = {
        "implant": implant,
        "patient": implant.patient,
        "form": form,
        "trial": trial,
        "suggested_dose": suggested_dose,
    }
    return render(request, "pumps/implant_fill.html", context, status=400 if form.errors else 200)


@staff_required("pumps.add_implant", "pumps.change_implant")
@require_http_methods(["GET", "POST"])
@idempotent_form
def implant_replace(request: HttpRequest, implant_id: int) -> HttpResponse:
    old = _implant_get(request, implant_id)
    today = timezone.localdate()
    form = ImplantReplaceForm(
        form_data(request),
        initial={
            "explanted_on": today,
            "implanted_on": today,
            "pump_model": old.pump_model_id,
            "catheter_model": old.catheter_model,
            "catheter_tip_level": old.catheter_tip_level,
            "fill_alarm_threshold_ml": plain_decimal(old.pump_model.alarm_threshold_ml),
        },
    )
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        explanted_on, reason = data.pop("explanted_on"), data.pop("explant_reason")
        try:
            implant = services.implant_replace(
                implant=old, explanted_on=explanted_on, reason=reason, recorded_by=request.user, **data
            )
        except ValidationError as exc:
            add_service_errors(form, exc, field_map={**REPLACE_FIELDS, "explanted_on": "explanted_on"})
        else:
            _registered_message(request, implant, "registered in place of the old pump")
            return redirect("staff:patient_detail", patient_id=old.patient_id)
    context = {"implant": old, "patient": old.patient, "form": form}
    return render(request, "pumps/implant_replace.html", context, status=400 if form.errors else 200)


@staff_required("pumps.change_implant")
@require_http_methods(["GET", "POST"])
@idempotent_form
def implant_explant(request: HttpRequest, implant_id: int) -> HttpResponse:
    implant = _implant_get(request, implant_id)
    form = ImplantExplantForm(form_data(request), initial={"explanted_on": timezone.localdate()})
    if request.method == "POST" and form.is_valid():
        try:
            services.implant_explant_record(
                implant=implant,
                explanted_on=form.cleaned_data["explanted_on"],
                reason=form.cleaned_data["reason"],
                by=request.user,
            )
        except ValidationError as exc:
            add_service_errors(form, exc, field_map={"explant_reason": "reason"})
        else:
            messages.success(request, "Explant recorded; its booked refills and reminders are cancelled.")
            return redirect("staff:patient_detail", patient_id=implant.patient_id)
    context = {"implant": implant, "patient": implant.patient, "form": form}
    return render(request, "pumps/implant_explant.html", context, status=400 if form.errors else 200)


@staff_required("refills.add_reservoiremptying")
@require_http_methods(["GET", "POST"])
@idempotent_form
def reservoir_empty(request: HttpRequest, implant_id: int) -> HttpResponse:
    implant = _implant_get(request, implant_id)
    form = ReservoirEmptyForm(
        form_data(request), initial={"emptied_at": timezone.localtime().replace(second=0, microsecond=0)}
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.reservoir_empty_record(implant=implant, recorded_by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.warning(request, "Reservoir emptied: record the refill as soon as the pump is filled again.")
            return redirect("staff:patient_detail", patient_id=implant.patient_id)
    context = {"implant": implant, "patient": implant.patient, "form": form}
    return render(request, "refills/reservoir_empty.html", context, status=400 if form.errors else 200)
