"""Field-safety notices on the staff pages (issue 14, item 2): flag a recall search, follow each notice.

Clinicians flag, send the message and record the action per patient; nurses see every page but
record nothing (the role permissions of refills/migrations/0013). Every page or export that names
patients writes the access log, in one bulk insert.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.models import AccessLog
from audit.services import audit_record_access, audit_record_accesses
from core.csv_export import csv_response
from core.forms import add_service_errors
from core.idempotency import idempotent_form
from core.web import form_data
from itbclinic.accounts.permissions import staff_required
from patients.models import Patient
from patients.selectors import patient_list_visible_to

from . import field_safety
from .clinic_time import clinic_tz
from .programme_forms import FieldSafetyActionForm, FieldSafetyFlagForm, RecallSearchForm
from .programme_views import form_errors_400, recall_criteria_of, recall_search_context

VIEW = ("refills.view_fieldsafetynotice", "refills.view_fieldsafetyflag")


@staff_required("refills.add_fieldsafetynotice", "refills.add_fieldsafetyflag", "pumps.view_implant")
@require_POST
@idempotent_form
def recall_flag(request: HttpRequest) -> HttpResponse:
    """Flag every pump of the search in the query string with the notice POSTed."""
    search = RecallSearchForm(request.GET)
    if not search.is_valid():
        return form_errors_400(search)
    form = FieldSafetyFlagForm(request.POST)
    if form.is_valid():
        visible = patient_list_visible_to(user=request.user)
        try:
            result = field_safety.field_safety_flag_recall(
                criteria=recall_criteria_of(search),
                by=request.user,
                visible=visible,
                now=timezone.now(),
                **form.cleaned_data,
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            audit_record_accesses(
                user=request.user,
                patients=[Patient(pk=pk) for pk in result.patient_ids],
                action=AccessLog.Action.CHANGE,
                request=request,
                detail=f"field-safety notice {result.notice.reference} flagged",
            )
            pumps = f"{result.flagged} pump{'s' if result.flagged != 1 else ''}"
            text = f"{pumps} flagged with notice {result.notice.reference}"
            if result.already:
                text += f"; {result.already} already flagged, left as they were"
            messages.success(request, text + ".")
            return redirect("staff:field_safety_notice", notice_id=result.notice.pk)
    context = recall_search_context(request, search, flag_form=form)
    return render(request, "refills/programme/recall_search.html", context, status=400)


@staff_required(*VIEW)
@require_GET
def field_safety_list(request: HttpRequest) -> HttpResponse:
    notices = list(field_safety.field_safety_notice_list()[: field_safety.PAGE_CAP])
    return render(request, "refills/programme/field_safety_list.html", {"notices": notices})


@staff_required(*VIEW, "pumps.view_implant")
@require_GET
def field_safety_notice(request: HttpRequest, notice_id: int) -> HttpResponse:
    notice = field_safety.field_safety_notice_get(notice_id=notice_id)
    visible = patient_list_visible_to(user=request.user)
    flags = list(field_safety.field_safety_flag_list(notice=notice, visible=visible)[: field_safety.PAGE_CAP])
    counts = field_safety.field_safety_notice_counts(notice=notice, visible=visible)
    audit_record_accesses(
        user=request.user,
        patients=[flag.patient for flag in flags],
        action=AccessLog.Action.VIEW,
        request=request,
        detail=f"field-safety notice {notice.reference}",
    )
    context = {"notice": notice, "flags": flags, "counts": counts, "cap": field_safety.PAGE_CAP}
    return render(request, "refills/programme/field_safety_notice.html", context)


@staff_required(*VIEW, "pumps.view_implant")
@require_GET
def field_safety_csv(request: HttpRequest, notice_id: int) -> HttpResponse:
    notice = field_safety.field_safety_notice_get(notice_id=notice_id)
    visible = patient_list_visible_to(user=request.user)
    flags = list(field_safety.field_safety_flag_list(notice=notice, visible=visible))
    audit_record_accesses(
        user=request.user,
        patients=[flag.patient for flag in flags],
        action=AccessLog.Action.EXPORT,
        request=request,
        detail=f"field-safety notice {notice.reference} CSV",
    )
    rows = field_safety.field_safety_csv_rows(flags=flags, tz=clinic_tz())
    filename = f"field-safety-{notice.pk}-{timezone.localdate():%Y%m%d}.csv"
    return csv_response(filename=filename, header=field_safety.CSV_HEADER, rows=rows)


@staff_required(*VIEW, "refills.change_fieldsafetyflag")
@require_POST
@idempotent_form
def field_safety_send(request: HttpRequest, notice_id: int) -> HttpResponse:
    """Send the notice's message to every flagged patient not yet told."""
    notice = field_safety.field_safety_notice_get(notice_id=notice_id)
    sent = field_safety.field_safety_messages_request(notice=notice, by=request.user, now=timezone.now())
    if sent.queued or sent.no_channel:
        audit_record_accesses(
            user=request.user,
            patients=[Patient(pk=pk) for pk in sent.patient_ids],
            action=AccessLog.Action.CHANGE,
            request=request,
            detail=f"field-safety notice {notice.reference} message",
        )
    text = f"{sent.queued} message{'s' if sent.queued != 1 else ''} on the way."
    if sent.no_channel:
        text += f" {sent.no_channel} patient{'s' if sent.no_channel != 1 else ''} cannot be messaged: phone them."
    if not sent.queued and not sent.no_channel:
        text = "Every flagged patient has already been sent the message (or their action is recorded)."
    messages.success(request, text)
    return redirect("staff:field_safety_notice", notice_id=notice.pk)


@staff_required(*VIEW, "refills.change_fieldsafetyflag")
@require_http_methods(["GET", "POST"])
@idempotent_form
def field_safety_action(request: HttpRequest, flag_id: int) -> HttpResponse:
    """A clinician records the action taken for one flagged patient: the flag closes."""
    flag = field_safety.field_safety_flag_get_for(user=request.user, flag_id=flag_id)
    form = FieldSafetyActionForm(form_data(request))
    if request.method == "POST" and form.is_valid():
        try:
            field_safety.field_safety_action_record(
                flag=flag, action_taken=form.cleaned_data["action_taken"], by=request.user, now=timezone.now()
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            audit_record_access(
                user=request.user,
                patient=flag.patient,
                action=AccessLog.Action.CHANGE,
                request=request,
                detail=f"field-safety notice {flag.notice.reference} action",
            )
            messages.success(request, f"Action recorded for {flag.patient.full_name}: the flag is closed.")
            return redirect("staff:patient_detail", patient_id=flag.patient_id)
    audit_record_access(
        user=request.user,
        patient=flag.patient,
        action=AccessLog.Action.VIEW,
        request=request,
        detail=f"field-safety notice {flag.notice.reference}",
    )
    context = {"flag": flag, "notice": flag.notice, "patient": flag.patient, "form": form}
    return render(request, "refills/programme/field_safety_action.html", context, status=400 if form.errors else 200)
