"""Clinicians' implant pages: register a pump, record an ERI or an explant."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from patients.forms import add_service_errors, plain_decimal
from patients.models import ScreeningTrial
from patients.selectors import patient_list_visible_to, trial_get_summary
from patients.views import form_data, staff_patient_get, staff_required

from . import selectors, services
from .forms import ImplantEriForm, ImplantExplantForm, ImplantRegisterForm
from .models import Implant


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


@staff_required("pumps.add_implant")
@require_http_methods(["GET", "POST"])
def implant_register(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = staff_patient_get(request, patient_id)
    active = selectors.implant_get_active(patient=patient)
    trial, suggested_dose = _suggested_start(patient)
    form = ImplantRegisterForm(
        form_data(request),
        initial={"implanted_on": timezone.localdate(), "starting_daily_dose_mcg": plain_decimal(suggested_dose)},
    )
    if request.method == "POST" and form.is_valid():
        try:
            implant = services.implant_register(patient=patient, recorded_by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Pump {implant.serial_number} registered.")
            return redirect("staff:patient_detail", patient_id=patient.pk)
    context = {
        "patient": patient,
        "form": form,
        "active": active,
        "trial": trial,
        "suggested_dose": suggested_dose,
    }
    return render(request, "pumps/implant_register.html", context, status=400 if form.errors else 200)


def _implant_get(request: HttpRequest, implant_id: int) -> Implant:
    visible = patient_list_visible_to(user=request.user)
    return get_object_or_404(
        Implant.objects.valid().select_related("patient", "pump_model").filter(patient__in=visible), pk=implant_id
    )


@staff_required("pumps.change_implant")
@require_http_methods(["GET", "POST"])
def implant_eri(request: HttpRequest, implant_id: int) -> HttpResponse:
    implant = _implant_get(request, implant_id)
    form = ImplantEriForm(form_data(request), initial={"eri_on": timezone.localdate()})
    if request.method == "POST" and form.is_valid():
        try:
            services.implant_record_eri(implant=implant, eri_on=form.cleaned_data["eri_on"], by=request.user)
        except ValidationError as exc:
            add_service_errors(form, exc, field_map={"eri_reported_on": "eri_on"})
        else:
            messages.warning(request, "ERI recorded: plan the replacement before the pump stops.")
            return redirect("staff:patient_detail", patient_id=implant.patient_id)
    context = {"implant": implant, "patient": implant.patient, "form": form}
    return render(request, "pumps/implant_eri.html", context, status=400 if form.errors else 200)


@staff_required("pumps.change_implant")
@require_http_methods(["GET", "POST"])
def implant_explant(request: HttpRequest, implant_id: int) -> HttpResponse:
    implant = _implant_get(request, implant_id)
    form = ImplantExplantForm(form_data(request), initial={"explanted_on": timezone.localdate()})
    if request.method == "POST" and form.is_valid():
        try:
            services.implant_explant(
                implant=implant,
                explanted_on=form.cleaned_data["explanted_on"],
                reason=form.cleaned_data["reason"],
                by=request.user,
            )
        except ValidationError as exc:
            add_service_errors(form, exc, field_map={"explant_reason": "reason"})
        else:
            messages.success(request, "Explant recorded.")
            return redirect("staff:patient_detail", patient_id=implant.patient_id)
    context = {"implant": implant, "patient": implant.patient, "form": form}
    return render(request, "pumps/implant_explant.html", context, status=400 if form.errors else 200)
