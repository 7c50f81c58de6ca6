"""Staff pages that correct a patient's own record: contact details and address, and status.

They live with the care schedule because a change here replans the patient's reminders in the
same transaction (refills.patient_changes). Who may do what (issue 11): nurses, clinicians and
the clinic admin edit the contact card (`patients.change_contact_patient`); clinicians and the
clinic admin change the status (`patients.change_status_patient`), which ends reminders.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from audit.models import AccessLog
from audit.services import audit_record_access
from core.forms import add_service_errors
from core.idempotency import idempotent_form
from core.web import form_data
from itbclinic.accounts.permissions import staff_required
from patients.forms import PatientContactForm, PatientStatusForm
from patients.models import Patient
from patients.views import staff_patient_get

from .patient_changes import patient_contact_change, patient_status_record


def _back_to(request: HttpRequest, patient: Patient) -> HttpResponse:
    # The clinic admin keeps the list up to date but does not open clinical pages.
    if request.user.has_perms(["pumps.view_implant", "refills.view_refillvisit"]):
        return redirect("staff:patient_detail", patient_id=patient.pk)
    return redirect("staff:patient_list")


def _audit_change(request: HttpRequest, patient: Patient, detail: str) -> None:
    audit_record_access(
        user=request.user, patient=patient, action=AccessLog.Action.CHANGE, request=request, detail=detail
    )


@staff_required("patients.change_contact_patient")
@require_http_methods(["GET", "POST"])
@idempotent_form
def patient_contact_edit(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = staff_patient_get(request, patient_id)
    form = PatientContactForm(form_data(request), instance=Patient.objects.get(pk=patient.pk))
    if request.method == "POST" and form.is_valid():
        changed = {name: form.cleaned_data[name] for name in form.changed_data}
        if not changed:
            messages.info(request, "Nothing was changed.")
            return _back_to(request, patient)
        try:
            patient_contact_change(patient=patient, data=changed)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            _audit_change(request, patient, "contact details: " + ", ".join(sorted(changed))[:180])
            messages.success(request, f"Contact details of {patient.full_name} saved.")
            return _back_to(request, patient)
    context = {"patient": patient, "form": form}
    return render(request, "patients/patient_contact_form.html", context, status=400 if form.errors else 200)


@staff_required("patients.change_status_patient")
@require_http_methods(["GET", "POST"])
@idempotent_form
def patient_status_edit(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = staff_patient_get(request, patient_id)
    form = PatientStatusForm(form_data(request), initial={"status": patient.status})
    if request.method == "POST" and form.is_valid():
        try:
            patient = patient_status_record(
                patient=patient, status=form.cleaned_data["status"], reason=form.cleaned_data["reason"]
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            _audit_change(request, patient, f"status: {patient.status}")
            note = "" if patient.status == Patient.Status.ACTIVE else " No more reminders are sent."
            messages.success(request, f"{patient.full_name} is now {patient.get_status_display().lower()}.{note}")
            return _back_to(request, patient)
    context = {"patient": patient, "form": form}
    return render(request, "patients/patient_status_form.html", context, status=400 if form.errors else 200)
