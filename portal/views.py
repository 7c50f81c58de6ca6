"""Portal pages. Every page that names a patient checks it against the logged-in user: 404 otherwise."""

import logging
from functools import wraps

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import SetPasswordForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.models import AccessLog
from audit.services import audit_record_access
from core.idempotency import idempotent_form
from itbclinic.accounts.models import User
from itbclinic.accounts.roles import Role, has_role
from patients.models import Patient
from pumps.selectors import implant_get_active
from refills.models import Appointment, AppointmentChangeRequest
from refills.passport import PASSPORT_EXPORT, passport_get, passport_reprint_due
from refills.selectors import change_request_due_by
from refills.services import appointment_change_request_create, appointment_change_request_withdraw

from . import selectors, services
from .content import HOME_VISIT, alarm_description, appointment_where, what_to_have_ready
from .forms import (
    AccountEmailChangeForm,
    ChangeRequestForm,
    InvitationForm,
    ReminderPreferencesForm,
    RevokeCarerForm,
    RevokeInvitationForm,
)
from .ics import appointments_calendar
from .models import CarerLink, PortalAccountEmailChange, PortalInvitation


def _signed_in(request: HttpRequest) -> User:
    """The logged-in user: portal_view and staff_required let no anonymous request through."""
    if not isinstance(request.user, User):
        raise PermissionDenied
    return request.user


security_log = logging.getLogger("itbclinic.security")


def portal_view(view):
    """Logged in, with the patient role (patients and carers); staff are refused (403)."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not has_role(request.user, Role.PATIENT):
            raise PermissionDenied("The patient portal is for patients and their carers.")
        return view(request, *args, **kwargs)

    return wrapped


def _patient_or_404(request: HttpRequest, patient_id: int) -> Patient:
    patient = selectors.portal_patient_get(user=request.user, patient_id=patient_id)
    if patient is None:
        # Not 403: whether another patient exists is itself private (SECURITY.md, BOLA).
        security_log.warning("portal: user %s denied patient %s", request.user.pk, patient_id)
        raise Http404("No such patient.")
    return patient


def _common(request: HttpRequest, patient: Patient) -> dict:
    patients = list(selectors.portal_patient_list_for(user=request.user))
    return {
        "patient": patient,
        "is_carer": selectors.portal_is_carer_for(user=request.user, patient=patient),
        "other_patients": [p for p in patients if p.pk != patient.pk],
    }


@never_cache
@require_GET
@portal_view
def home(request: HttpRequest) -> HttpResponse:
    patients = list(selectors.portal_patient_list_for(user=request.user))
    if len(patients) == 1:
        return redirect("portal:patient_home", patient_id=patients[0].pk)
    return render(request, "portal/choose_patient.html", {"patients": patients})


@never_cache
@require_GET
@portal_view
def patient_home(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = _patient_or_404(request, patient_id)
    summary = selectors.portal_summary_get(patient=patient, now=timezone.now())
    audit_record_access(user=request.user, patient=patient, action=AccessLog.Action.VIEW, request=request)
    context = {
        **_common(request, patient),
        "s": summary,
        "today": timezone.localdate(),
        "alarm_lines": alarm_description(pump_model=summary.implant.pump_model if summary.implant else None),
        "bring": what_to_have_ready(appointment=summary.next_appointment) if summary.next_appointment else [],
        "where": (
            appointment_where(appointment=summary.next_appointment, clinic_address=summary.clinic.address)
            if summary.next_appointment
            else ""
        ),
        "home_visit_text": HOME_VISIT,
        "passport_reprint_since": (
            passport_reprint_due(patient=patient, implant=summary.implant, now=timezone.now())
            if summary.implant
            else None
        ),
    }
    return render(request, "portal/home.html", context)


@never_cache
@require_GET
@portal_view
def passport(request: HttpRequest, patient_id: int) -> HttpResponse:
    """The emergency pump passport on the phone, to show or print; its QR code holds the same text."""
    patient = _patient_or_404(request, patient_id)
    implant = implant_get_active(patient=patient)
    if implant is None:
        raise Http404("No pump recorded.")
    now = timezone.now()
    booked = Appointment.objects.booked_refills().filter(implant=implant).order_by("starts_at").first()
    context = {
        **_common(request, patient),
        "passport": passport_get(patient=patient, implant=implant, now=now, booked_refill=booked),
        "printed_on": timezone.localdate(),
    }
    # The page is the printable passport: opening it ends the reprint prompt (passport_reprint_due).
    audit_record_access(
        user=request.user, patient=patient, action=AccessLog.Action.EXPORT, request=request, detail=PASSPORT_EXPORT
    )
    return render(request, "portal/passport.html", context)


@never_cache
@require_GET
@portal_view
def appointment_ics(request: HttpRequest, patient_id: int, appointment_id: int) -> HttpResponse:
    patient = _patient_or_404(request, patient_id)
    appointment = selectors.portal_appointment_get(patient=patient, appointment_id=appointment_id)
    if appointment is None:
        raise Http404("No such appointment.")
    clinic = selectors.ClinicSettings.load()
    body = appointments_calendar(
        appointments=[appointment], clinic=clinic, now=timezone.now(), name=f"{clinic.name} appointment"
    )
    audit_record_access(
        user=request.user,
        patient=patient,
        action=AccessLog.Action.EXPORT,
        request=request,
        detail=f"appointment {appointment.pk} (.ics)",
    )
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="appointment-{appointment.starts_at:%Y-%m-%d}.ics"'
    return response


@never_cache
@require_http_methods(["GET", "POST"])
@portal_view
@idempotent_form
def change_request(request: HttpRequest, patient_id: int, appointment_id: int) -> HttpResponse:
    patient = _patient_or_404(request, patient_id)
    appointment = selectors.portal_appointment_get(patient=patient, appointment_id=appointment_id)
    if appointment is None:
        raise Http404("No such appointment.")
    open_request = selectors.portal_change_request_get_open(appointment=appointment)
    due_by = change_request_due_by(appointment=appointment)
    form = ChangeRequestForm(request.POST or None, due_by=due_by)
    if request.method == "POST" and form.is_valid():
        try:
            created = appointment_change_request_create(
                appointment=appointment,
                requested_by=_signed_in(request),
                preferred_date=form.cleaned_data["preferred_date"],
                message=form.cleaned_data["message"],
                today=timezone.localdate(),
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            if created.urgent and due_by is not None:
                messages.warning(
                    request,
                    f"The date you chose is after {due_by.day} {due_by:%B %Y}, when your pump needs its refill. "
                    "The clinic has your request as urgent and will contact you soon.",
                )
            else:
                messages.success(request, "Thank you. The clinic has your request and will contact you.")
            return redirect("portal:patient_home", patient_id=patient.pk)
    audit_record_access(
        user=request.user,
        patient=patient,
        action=AccessLog.Action.VIEW,
        request=request,
        detail=f"appointment {appointment.pk}",
    )
    last_closed = (
        appointment.change_requests.exclude(status=AppointmentChangeRequest.Status.OPEN)
        .order_by("-requested_at", "-id")
        .first()
    )
    context = {
        **_common(request, patient),
        "appointment": appointment,
        "form": form,
        "open_request": open_request,
        "last_closed": last_closed,
        "due_by": due_by,
    }
    return render(request, "portal/change_request.html", context)


@never_cache
@require_POST
@portal_view
@idempotent_form
def change_request_withdraw(request: HttpRequest, patient_id: int, request_id: int) -> HttpResponse:
    """The patient (or carer) no longer needs another date; they may ask again afterwards."""
    patient = _patient_or_404(request, patient_id)
    change_request = selectors.portal_change_request_get(patient=patient, request_id=request_id)
    if change_request is None:
        raise Http404("No such request.")
    try:
        appointment_change_request_withdraw(change_request=change_request, withdrawn_by=_signed_in(request))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Your request is withdrawn. Your appointment stays as it is.")
    return redirect("portal:patient_home", patient_id=patient.pk)


def _add_errors(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


@never_cache
@require_http_methods(["GET", "POST"])
@portal_view
@idempotent_form
def reminder_preferences(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = _patient_or_404(request, patient_id)
    initial = {
        "reminder_channel": patient.reminder_channel,
        "reminder_consent": "yes" if patient.reminder_consent else "no",
    }
    form = ReminderPreferencesForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.patient_update_reminder_preferences(
                patient=patient,
                channel=form.cleaned_data["reminder_channel"],
                consent=form.cleaned_data["reminder_consent"],
                by=_signed_in(request),
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, "Your reminder choices are saved.")
            return redirect("portal:patient_home", patient_id=patient.pk)
    audit_record_access(user=request.user, patient=patient, action=AccessLog.Action.VIEW, request=request)
    return render(request, "portal/reminders.html", {**_common(request, patient), "form": form})


@never_cache
@require_http_methods(["GET", "POST"])
@portal_view
@idempotent_form
def calendar_settings(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = _patient_or_404(request, patient_id)
    new_url = None
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "create":
            _feed, token = services.calendar_feed_create(user=_signed_in(request), patient=patient)
            # Shown once, in this answer only: the database keeps just the token's hash.
            new_url = request.build_absolute_uri(reverse("portal:calendar_feed", kwargs={"token": token}))
        elif action == "revoke":
            services.calendar_feed_revoke(user=_signed_in(request), patient=patient)
            messages.success(request, "The calendar address is switched off. Calendars using it stop updating.")
            return redirect("portal:calendar_settings", patient_id=patient.pk)
        else:
            return HttpResponse("Unknown action.", status=400, content_type="text/plain")
    # portal_view: never anonymous here.
    feed = selectors.calendar_feed_get_active(user=request.user, patient=patient)  # type: ignore[arg-type]
    context = {**_common(request, patient), "feed": feed, "new_url": new_url}
    return render(request, "portal/calendar.html", context)


@never_cache
@require_GET
def calendar_feed(request: HttpRequest, token: str) -> HttpResponse:
    """No login: a phone's calendar polls it. The token is the key; a revoked one answers 404."""
    feed = selectors.calendar_feed_get_by_token(token=token)
    # The feed opens only what its owner may still see: not a switched-off account, not a
    # patient whose carer link was revoked (the revocation also revokes the feed: both hold).
    if (
        feed is None
        or not feed.user.is_active
        or selectors.portal_patient_get(user=feed.user, patient_id=feed.patient_id) is None
    ):
        raise Http404("No such calendar.")
    now = timezone.now()
    clinic = selectors.ClinicSettings.load()
    appointments = selectors.portal_appointment_list_upcoming(patient=feed.patient, now=now)
    body = appointments_calendar(
        appointments=appointments, clinic=clinic, now=now, name=f"{clinic.name} appointments", home_address=False
    )
    services.calendar_feed_mark_used(feed=feed, now=now)
    audit_record_access(
        user=feed.user,
        patient=feed.patient,
        action=AccessLog.Action.EXPORT,
        request=request,
        detail=f"calendar feed {feed.pk}",
        via_token=True,
    )
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Cache-Control"] = "private, no-store"
    return response


def nurse_view(view):
    """Staff-facing portal tools: nurses only (403 for others, the login page when anonymous)."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not has_role(request.user, Role.NURSE):
            raise PermissionDenied("Only nurses manage patients' portal access.")
        return view(request, *args, **kwargs)

    return wrapped


def _staff_patient(request: HttpRequest, patient_id: int) -> Patient:
    return get_object_or_404(Patient.objects.valid(), pk=patient_id)


@never_cache
@require_http_methods(["GET", "POST"])
@nurse_view
@idempotent_form
def invite(request: HttpRequest, patient_id: int) -> HttpResponse:
    """Staff-facing: the patient's portal access. Invite the patient or a carer, see and revoke what is open."""
    patient = _staff_patient(request, patient_id)
    form = InvitationForm(request.POST or None, initial={"email": patient.email})
    if request.method == "POST" and form.is_valid():
        try:
            outcome = services.portal_invite_patient(
                patient=patient,
                email=form.cleaned_data["email"],
                invited_by=_signed_in(request),
                carer=form.cleaned_data["carer"],
                consent_note=form.cleaned_data["consent_note"],
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            who = "carer" if form.cleaned_data["carer"] else "patient"
            if outcome.existing_account:
                messages.info(
                    request,
                    f"This {who} already has a portal account: nothing about it was changed. "
                    "A link to reset its password was sent to the address already on the account "
                    f"({outcome.user.email or 'none on record'}). To change that address, use "
                    "“Change the account's email” below.",
                )
            else:
                messages.success(request, f"Invitation sent to {outcome.email} ({who}).")
            return redirect("portal:invite", patient_id=patient.pk)
    audit_record_access(user=request.user, patient=patient, action=AccessLog.Action.VIEW, request=request)
    now = timezone.now()
    context = {
        "patient": patient,
        "form": form,
        "open_invitations": services.portal_invitation_list_open(patient=patient, now=now),
        "invitations": PortalInvitation.objects.filter(patient=patient).select_related("user", "invited_by")[:10],
        "carers": patient.carer_links.select_related("carer", "consent_recorded_by").order_by("-consent_recorded_at"),
        "account": patient.user,
        "email_changes": PortalAccountEmailChange.objects.filter(patient=patient).select_related("changed_by")[:5],
        "now": now,
    }
    return render(request, "portal/invite.html", context)


@never_cache
@require_http_methods(["GET", "POST"])
@nurse_view
def invitation_revoke(request: HttpRequest, patient_id: int, invitation_id: int) -> HttpResponse:
    """Confirm (GET), then revoke (POST) an open invitation: its link stops working at once."""
    patient = _staff_patient(request, patient_id)
    invitation = get_object_or_404(PortalInvitation.objects.filter(patient=patient), pk=invitation_id)
    form = RevokeInvitationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if services.portal_invitation_revoke(
            invitation=invitation, by=_signed_in(request), reason=form.cleaned_data["reason"]
        ):
            messages.success(request, f"The invitation to {invitation.email} is revoked: its link no longer works.")
        else:
            messages.info(request, "This invitation was no longer open (accepted or already revoked).")
        return redirect("portal:invite", patient_id=patient.pk)
    audit_record_access(
        user=request.user, patient=patient, action=AccessLog.Action.CHANGE, request=request, detail="invitation"
    )
    context = {"patient": patient, "form": form, "invitation": invitation}
    return render(request, "portal/invitation_revoke.html", context)


@never_cache
@require_http_methods(["GET", "POST"])
@nurse_view
def carer_link_revoke(request: HttpRequest, patient_id: int, link_id: int) -> HttpResponse:
    """Confirm with a reason (GET), then revoke (POST) a carer's access to the patient's portal."""
    patient = _staff_patient(request, patient_id)
    link = get_object_or_404(CarerLink.objects.filter(patient=patient).select_related("carer"), pk=link_id)
    form = RevokeCarerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if link.revoked_at is not None:
            messages.info(request, "This carer's access was already revoked.")
            return redirect("portal:invite", patient_id=patient.pk)
        try:
            services.carer_link_revoke(link=link, by=_signed_in(request), reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(
                request, "The carer no longer sees this patient's portal; their calendar address stopped working."
            )
            return redirect("portal:invite", patient_id=patient.pk)
    audit_record_access(
        user=request.user, patient=patient, action=AccessLog.Action.CHANGE, request=request, detail="carer link"
    )
    return render(request, "portal/carer_revoke.html", {"patient": patient, "form": form, "link": link})


@never_cache
@require_http_methods(["GET", "POST"])
@nurse_view
def account_email_change(request: HttpRequest, patient_id: int) -> HttpResponse:
    """Change the email of the patient's own portal account (a notice goes to the old address)."""
    patient = _staff_patient(request, patient_id)
    if patient.user is None:
        raise Http404("This patient has no portal account.")
    form = AccountEmailChangeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.portal_account_email_change(
                patient=patient,
                new_email=form.cleaned_data["new_email"],
                reason=form.cleaned_data["reason"],
                by=_signed_in(request),
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, "The account's email is changed; a notice went to the old address.")
            return redirect("portal:invite", patient_id=patient.pk)
    audit_record_access(
        user=request.user, patient=patient, action=AccessLog.Action.CHANGE, request=request, detail="account email"
    )
    return render(request, "portal/account_email.html", {"patient": patient, "form": form, "account": patient.user})


INVITATION_SESSION_KEY = "_portal_invitation_token"
SET_PASSWORD_STEP = "set-password"  # noqa: S105 (a URL step, not a secret)


@never_cache
@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link: choose a password, then land on the portal home, logged in.

    As Django's password reset does, the token leaves the address bar at once: it moves into the
    session and the browser is sent to `welcome/set-password/`. A link that no longer works (used,
    revoked, replaced by a newer one, expired, or the account switched off) shows one plain page
    with 404.
    """
    now = timezone.now()
    if token == SET_PASSWORD_STEP:
        token = request.session.get(INVITATION_SESSION_KEY, "")
    elif request.method == "GET" and services.portal_invitation_get_by_token(token=token, now=now) is not None:
        request.session[INVITATION_SESSION_KEY] = token
        return redirect("portal:invitation_accept", token=SET_PASSWORD_STEP)
    invitation = services.portal_invitation_get_by_token(token=token, now=now)
    if invitation is None:
        request.session.pop(INVITATION_SESSION_KEY, None)
        return render(request, "portal/invitation_accept.html", {"validlink": False}, status=404)
    form = SetPasswordForm(invitation.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.portal_invitation_accept(
            invitation=invitation, password=form.cleaned_data["new_password1"], now=now
        )
        request.session.pop(INVITATION_SESSION_KEY, None)
        if user is None:
            return render(request, "portal/invitation_accept.html", {"validlink": False}, status=404)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("portal:home")
    context = {"validlink": True, "form": form, "username": invitation.user.get_username()}
    return render(request, "portal/invitation_accept.html", context)
