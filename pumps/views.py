"""Clinicians' implant page for an ERI. Registering, replacing and explanting a pump change its
forecast and close bookings, so those pages are the care schedule's (refills/implant_views.py)."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from core.forms import add_service_errors
from core.idempotency import idempotent_form
from core.web import form_data
from itbclinic.accounts.permissions import staff_required
from patients.selectors import patient_list_visible_to

from . import services
from .forms import ImplantEriForm
from .models import Implant


def _implant_get(request: HttpRequest, implant_id: int) -> Implant:
    visible = patient_list_visible_to(user=request.user)
    return get_object_or_404(
        Implant.objects.valid().select_related("patient", "pump_model").filter(patient__in=visible), pk=implant_id
    )


@staff_required("pumps.change_implant")
@require_http_methods(["GET", "POST"])
@idempotent_form
def implant_eri(request: HttpRequest, implant_id: int) -> HttpResponse:
    implant = _implant_get(request, implant_id)
    form = ImplantEriForm(form_data(request), initial={"eri_on": timezone.localdate()})
    if request.method == "POST" and form.is_valid():
        try:
            services.implant_record_eri(
                implant=implant,
                eri_on=form.cleaned_data["eri_on"],
                by=request.user,  # type: ignore[arg-type]  # staff_required: never anonymous
            )
        except ValidationError as exc:
            add_service_errors(form, exc, field_map={"eri_reported_on": "eri_on"})
        else:
            messages.warning(request, "ERI recorded: plan the replacement before the pump stops.")
            return redirect("staff:patient_detail", patient_id=implant.patient_id)
    context = {"implant": implant, "patient": implant.patient, "form": form}
    return render(request, "pumps/implant_eri.html", context, status=400 if form.errors else 200)
