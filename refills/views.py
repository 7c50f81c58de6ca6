"""The nurses' and clinicians' care-schedule pages: worklist, calendar, patient page, booking,
the refill visit with its live forecast, the wallet card and dose changes.

Views validate a form, call one service or selector and render; every date and warning shown
comes from `refills.selectors` / `refills.calculations`, never from arithmetic here.
"""

import datetime as dt
import logging
from collections import defaultdict

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.models import AccessLog
from audit.services import audit_record_access
from core.formatting import format_day, plain_decimal
from core.forms import add_service_errors
from core.idempotency import idempotent_form
from core.permissions import holds_permissions
from core.web import form_data
from itbclinic.accounts.permissions import staff_required
from patients.models import Patient, ScreeningTrial
from patients.selectors import patient_list_visible_to
from patients.views import staff_patient_get
from pumps.models import Implant
from pumps.selectors import (
    dose_get_in_force,
    dose_get_planned,
    implant_get_active,
    implant_get_battery_dates,
)

from . import selectors, services
from .alerts import services as alert_services
from .alerts.reads import alert_list_open
from .charts import ReservoirProjection, ReservoirRefill, battery_bar_svg, reservoir_chart_svg
from .field_safety import field_safety_flag_list_for_patient, field_safety_notices_open
from .forecasting import PROBLEM_LABELS
from .forms import (
    AppointmentBookForm,
    AppointmentCancelForm,
    AppointmentMoveForm,
    CalendarBookForm,
    ChangeRequestDeclineForm,
    DoseChangeForm,
    RefillVisitForm,
    WorklistFilterForm,
    first_slot_after,
)
from .models import (
    SAFETY_CHECK_ITEMS,
    Alert,
    Appointment,
    AppointmentChangeRequest,
    ClinicSettings,
    RefillVisit,
    Reminder,
)
from .no_shows import appointment_mark_no_show
from .notices import patient_notice_channel
from .passport import PASSPORT_EXPORT, passport_get, passport_reprint_due
from .reminders.reads import reminder_list
from .timeline import patient_get_timeline
from .urgency import RefillUrgency, refill_urgency_classify
from .worklist import SECTION_CAP as WORKLIST_SECTION_CAP
from .worklist import section_get as worklist_section_get
from .worklist import worklist_get

logger = logging.getLogger(__name__)

# Booking errors name the service's field; the form shows date and time separately.
BOOKING_FIELDS = {"starts_at": "day", "implant": None, "patient": None, "status": None}


def _booked_refill(implant: Implant | None) -> Appointment | None:
    if implant is None:
        return None
    return Appointment.objects.booked_refills().filter(implant=implant).order_by("starts_at").first()


def _appointment_get(request: HttpRequest, appointment_id: int) -> Appointment:
    visible = patient_list_visible_to(user=request.user)
    return get_object_or_404(
        Appointment.objects.valid().select_related("patient", "implant__pump_model").filter(patient__in=visible),
        pk=appointment_id,
    )


def _portal_invite_url(patient_id: int) -> str:
    try:
        return reverse("portal:invite", kwargs={"patient_id": patient_id})
    except NoReverseMatch:
        return f"/portal/invite/{patient_id}/"


# ---------------------------------------------------------------------------
# Worklist and calendar
# ---------------------------------------------------------------------------


@staff_required("refills.view_appointment", "pumps.view_implant")
@require_GET
def worklist(request: HttpRequest) -> HttpResponse:
    form = WorklistFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    today = timezone.localdate()
    try:
        page = int(request.GET.get("page", "1"))
    except ValueError:
        page = 1
    data = worklist_get(
        today=today,
        search=filters.get("q", ""),
        urgency=filters.get("urgency", ""),
        unbooked_only=filters.get("unbooked", False),
        page=page,
    )
    alerts, alert_total = worklist_section_get(alert_list_open(), cap=WORKLIST_SECTION_CAP)
    failed = reminder_list(status=Reminder.Status.FAILED).filter(appointment__status=Appointment.Status.BOOKED)
    failed_reminders, failed_total = worklist_section_get(failed, cap=WORKLIST_SECTION_CAP)
    # Field-safety notices with patients still waiting for their action (one aggregate query).
    notices = field_safety_notices_open(cap=WORKLIST_SECTION_CAP)
    field_safety_open = sum(notice.open_count for notice in notices)
    # The filters, kept on the refill table's page links.
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "worklist": data,
        "rows": data.rows,
        "filtered": bool(filters.get("q") or filters.get("urgency") or filters.get("unbooked")),
        "alerts": alerts,
        "failed_reminders": failed_reminders,
        "field_safety_notices": notices,
        "field_safety_open": field_safety_open,
        "alert_count": alert_total + failed_total + field_safety_open,
        "alerts_shown": len(alerts) + len(failed_reminders) + field_safety_open,
        "alerts_hidden": alert_total + failed_total - len(alerts) - len(failed_reminders),
        "page_query": query.urlencode(),
        "form": form,
        "today": today,
    }
    return render(request, "refills/worklist.html", context)


@staff_required("refills.change_alert")
@require_POST
@idempotent_form
def alert_resolve(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = get_object_or_404(Alert.objects.filter(patient__in=patient_list_visible_to(user=request.user)), pk=alert_id)
    note = request.POST.get("note", "").strip()[:200]
    try:
        alert_services.alert_resolve(alert=alert, by=request.user, note=note)
    except ValidationError as exc:
        # e.g. a transferred or deceased patient's alert: the note must say what really happened.
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Alert for {alert.patient.full_name} resolved.")
    return redirect(f"{reverse('staff:worklist')}#alerts")


@staff_required("refills.change_alert")
@require_POST
@idempotent_form
def alert_acknowledge(request: HttpRequest, alert_id: int) -> HttpResponse:
    """Someone has it in hand: an acknowledged urgent alert stops re-escalating (it stays open)."""
    alert = get_object_or_404(Alert.objects.filter(patient__in=patient_list_visible_to(user=request.user)), pk=alert_id)
    alert_services.alert_acknowledge(alert=alert, by=request.user, now=timezone.now())
    messages.success(request, f"Alert for {alert.patient.full_name} acknowledged: it stays open until resolved.")
    return redirect(f"{reverse('staff:worklist')}#alerts")


@staff_required("refills.view_appointment")
@require_GET
def calendar(request: HttpRequest) -> HttpResponse:
    today = timezone.localdate()
    try:
        anchor = dt.date.fromisoformat(request.GET.get("week", ""))
    except ValueError:
        anchor = today
    monday = anchor - dt.timedelta(days=anchor.weekday())
    days = [monday + dt.timedelta(days=i) for i in range(7)]
    clinic = ClinicSettings.load()
    by_day = defaultdict(list)
    for entry in selectors.appointment_list_for_calendar(start=days[0], end=days[-1]):
        by_day[entry.day].append(entry)
    closed = selectors.clinic_closed_days(start=days[0], end=days[-1], clinic=clinic)
    booked = selectors.refill_bookings_per_day(start=days[0], end=days[-1])
    home_visits = selectors.home_visit_bookings_per_day(start=days[0], end=days[-1])
    weekly_closed = set(clinic.closed_weekdays or [])
    columns = [
        {
            "day": day,
            "entries": by_day.get(day, []),
            "closed": day in closed,
            "closed_reason": closed.get(day, ""),
            "refills": booked.get(day, 0),
            "home_visits": home_visits.get(day, 0),
            "is_today": day == today,
            "bookable": day >= today and day not in closed,
        }
        for day in days
    ]
    # The clinic's weekly closed days with nothing on them are left out (a tablet shows five wide
    # columns); a holiday or one-off closed day stays, shown closed with its name.
    columns = [c for c in columns if not (c["day"].weekday() in weekly_closed and c["closed"] and not c["entries"])]
    context = {
        "columns": columns,
        "monday": monday,
        "first_day": columns[0]["day"] if columns else monday,
        "last_day": columns[-1]["day"] if columns else days[-1],
        "previous_week": monday - dt.timedelta(days=7),
        "next_week": monday + dt.timedelta(days=7),
        "this_week": today - dt.timedelta(days=today.weekday()),
        "clinic": clinic,
        "now": timezone.now(),
    }
    return render(request, "refills/calendar.html", context)


# Booking from the calendar: the patient is chosen on the form.
CALENDAR_BOOKING_FIELDS = {**BOOKING_FIELDS, "patient": "patient", "implant": "patient"}


@staff_required("refills.add_appointment")
@require_http_methods(["GET", "POST"])
@idempotent_form
def calendar_book(request: HttpRequest) -> HttpResponse:
    """Book an appointment on a day of the week calendar, for a patient chosen here: the same
    booking service (capacity, closed days, holidays, the safe window) as the patient page's."""
    today = timezone.localdate()
    try:
        day = dt.date.fromisoformat(request.GET.get("day", ""))
    except ValueError:
        day = today
    clinic = ClinicSettings.load()
    patients = (
        patient_list_visible_to(user=request.user)
        .filter(status=Patient.Status.ACTIVE)
        .order_by("family_name", "given_name", "pk")
    )
    form = CalendarBookForm(form_data(request), patients=patients, initial={"day": day, "place": clinic.default_place})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        day = data["day"]  # kept: a refused day's error takes it out of cleaned_data
        try:
            appointment = services.appointment_book(
                patient=data["patient"],
                kind=data["kind"],
                starts_at=form.starts_at(),
                booked_by=request.user,
                place=data["place"],
                location=data["location"],
                outside_window_reason=data["outside_window_reason"],
                override_reason=data["override_reason"],
                notes=data["notes"],
            )
        except services.BookingConflict as exc:
            form.add_error(None, str(exc))
        except ValidationError as exc:
            add_service_errors(form, exc, field_map=CALENDAR_BOOKING_FIELDS)
        else:
            when = timezone.localtime(appointment.starts_at)
            messages.success(
                request,
                f"{appointment.get_kind_display()} booked for {appointment.patient.full_name} on "
                f"{when:%A} {when.day} {when:%B %Y at %H:%M}.",
            )
            return redirect(f"{reverse('staff:calendar')}?week={when.date():%Y-%m-%d}")
    closed = selectors.clinic_closed_days(start=day, end=day, clinic=clinic)
    context = {
        "form": form,
        "day": day,
        "closed": day in closed,
        "closed_reason": closed.get(day, ""),
        "week": day - dt.timedelta(days=day.weekday()),
    }
    return render(request, "refills/calendar_book.html", context, status=400 if form.errors else 200)


# ---------------------------------------------------------------------------
# The patient page
# ---------------------------------------------------------------------------


def _reservoir_chart(*, implant: Implant, today: dt.date) -> str:
    shown = 8
    visits = list(selectors.refill_visit_list(implant=implant)[:shown])
    visits.reverse()
    refills = [
        ReservoirRefill(
            on=timezone.localdate(v.performed_at), residual_ml=v.actual_residual_ml, volume_ml=v.volume_after_fill_ml
        )
        for v in visits
    ]
    if implant.fill_volume_ml and len(visits) < shown:
        # The whole history fits: it starts with the fill in theatre.
        refills.insert(0, ReservoirRefill(on=implant.implanted_on, residual_ml=None, volume_ml=implant.fill_volume_ml))
    elif refills:
        refills[0] = ReservoirRefill(on=refills[0].on, residual_ml=None, volume_ml=refills[0].volume_ml)
    projection = None
    if implant.forecast_due_by and implant.forecast_alarm_on and implant.forecast_empty_on:
        projection = ReservoirProjection(
            alarm_on=implant.forecast_alarm_on, empty_on=implant.forecast_empty_on, due_by=implant.forecast_due_by
        )
    threshold = (
        visits[-1].alarm_threshold_ml
        if visits
        else (implant.fill_alarm_threshold_ml or implant.pump_model.alarm_threshold_ml)
    )
    return reservoir_chart_svg(
        refills=refills,
        reservoir_ml=implant.pump_model.reservoir_ml,
        alarm_threshold_ml=threshold,
        projection=projection,
        today=today,
    )


def _reservoir_chart_or_note(*, implant: Implant, today: dt.date) -> str:
    """The chart, or a plain note when a record's dates cannot be drawn: the page renders the rest."""
    try:
        return _reservoir_chart(implant=implant, today=today)
    except (ArithmeticError, ValueError, TypeError, OverflowError):
        logger.exception("reservoir chart of implant %s cannot be drawn", implant.pk)
        return (
            '<p class="alert-box danger" role="alert">The reservoir chart cannot be drawn from this pump\'s '
            "records: a refill date or volume needs correcting.</p>"
        )


def _battery(*, implant: Implant, today: dt.date) -> dict:
    battery = implant_get_battery_dates(implant=implant)
    if battery.problem:
        return {"plan": None, "window_opens_on": None, "svg": "", "problem": battery.problem}
    plan, opens_on = battery.plan, battery.window_opens_on
    svg = battery_bar_svg(
        implanted_on=implant.implanted_on,
        today=today,
        hard_stop_on=plan.hard_stop_on if plan else None,
        window_opens_on=opens_on,
        plan_by=plan.plan_by if plan else None,
        stops_on=plan.stops_on if plan else None,
    )
    return {"plan": plan, "window_opens_on": opens_on, "svg": mark_safe(svg)}  # noqa: S308 (escaped in charts.py)


def _audit_view(request: HttpRequest, patient) -> None:
    # Access log of every view of a patient's record (SECURITY.md "Audit"; audit app, issue 6).
    audit_record_access(user=request.user, patient=patient, action=AccessLog.Action.VIEW, request=request)


def _refill_urgency(*, implant: Implant, today: dt.date) -> RefillUrgency | None:
    if implant.forecast_due_by is None:
        return None
    clinic = ClinicSettings.load()
    return refill_urgency_classify(
        due_by=implant.forecast_due_by,
        alarm_on=implant.forecast_alarm_on,
        today=today,
        unbooked_alert_days=clinic.unbooked_alert_days,
        urgent_alert_days=clinic.urgent_alert_days,
    )


@staff_required("patients.view_patient", "pumps.view_implant", "refills.view_refillvisit")
@require_GET
def patient_detail(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = staff_patient_get(request, patient_id)
    today, now = timezone.localdate(), timezone.now()
    implant = implant_get_active(patient=patient)
    timeline = patient_get_timeline(patient=patient, now=now)
    context = {
        "patient": patient,
        "implant": implant,
        "today": today,
        "timeline_past": [event for event in timeline if event.on <= today],
        "timeline_future": [event for event in timeline if event.on > today],
        "next_appointment": selectors.appointment_get_next(patient=patient, now=now),
        "trials": ScreeningTrial.objects.valid().filter(patient=patient).order_by("-started_on", "-id"),
        "past_implants": Implant.objects.valid()
        .filter(patient=patient, explanted_on__isnull=False)
        .select_related("pump_model"),
        "portal_invite_url": _portal_invite_url(patient.pk),
        "clinic": ClinicSettings.load(),
        "appointments": _appointments_to_act_on(patient=patient),
        "annual_review": selectors.patient_get_annual_review(patient=patient, today=today),
        "field_safety_flags": field_safety_flag_list_for_patient(patient=patient),
        "now": now,
    }
    if implant is not None:
        last_visit = selectors.refill_visit_get_latest(implant=implant)
        context.update(
            {
                "dose": dose_get_in_force(implant=implant, at=now),
                "planned_dose": dose_get_planned(implant=implant, now=now),
                "forecast_problem": PROBLEM_LABELS.get(implant.forecast_problem, ""),
                "last_visit": last_visit,
                "booked_refill": _booked_refill(implant),
                "window": selectors.refill_window_get(implant=implant),
                "urgency": _refill_urgency(implant=implant, today=today),
                "reservoir_svg": mark_safe(_reservoir_chart_or_note(implant=implant, today=today)),  # noqa: S308
                "battery": _battery(implant=implant, today=today),
                "passport_reprint_since": passport_reprint_due(patient=patient, implant=implant, now=now),
            }
        )
    _audit_view(request, patient)
    return render(request, "refills/patient_detail.html", context)


# ---------------------------------------------------------------------------
# Booking, moving, cancelling
# ---------------------------------------------------------------------------


def _appointments_to_act_on(*, patient) -> list[Appointment]:
    """Every booked appointment of the patient, of every kind (past ones still to record first)."""
    return list(
        Appointment.objects.valid()
        .filter(patient=patient, status=Appointment.Status.BOOKED)
        .select_related("implant")
        .order_by("starts_at", "id")[:20]
    )


def _patient_told(appointment: Appointment) -> str:
    """How the patient hears of a change, for the nurse's confirmation."""
    channel = patient_notice_channel(patient=appointment.patient)
    if not channel:
        return " The patient cannot be told by email or text (no consent or contact): phone them."
    return f" The patient is told by {'text message' if channel == 'sms' else 'email'}."


def _booking_context(*, patient, implant: Implant | None, today: dt.date) -> dict:
    window = selectors.refill_window_get(implant=implant) if implant else None
    # Proposals start at the first bookable time after now: today only while a slot is left.
    first_day, _first_time = first_slot_after(timezone.now())
    proposals = selectors.refill_slot_proposals(implant=implant, today=first_day) if implant else []
    return {
        "patient": patient,
        "implant": implant,
        "window": window,
        "proposals": proposals,
        "overdue": window is not None and window.due_by < today,
        "booked_refill": _booked_refill(implant),
    }


def _after_booking_redirect(request: HttpRequest, patient) -> HttpResponse:
    visit_id = request.POST.get("after_visit", "")
    if visit_id.isdigit() and RefillVisit.objects.filter(pk=int(visit_id), implant__patient=patient).exists():
        return redirect("staff:refill_visit_done", visit_id=int(visit_id))
    return redirect("staff:patient_detail", patient_id=patient.pk)


@staff_required("refills.add_appointment")
@require_http_methods(["GET", "POST"])
@idempotent_form
def appointment_book(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = staff_patient_get(request, patient_id)
    today = timezone.localdate()
    implant = implant_get_active(patient=patient)
    context = _booking_context(patient=patient, implant=implant, today=today)
    try:
        requested_day = dt.date.fromisoformat(request.GET.get("day", ""))
    except ValueError:
        requested_day = None
    first_day, first_time = first_slot_after(timezone.now())
    try:
        default_kind = Appointment.Kind.REFILL if implant else Appointment.Kind.REVIEW
        kind = Appointment.Kind(request.GET.get("kind", default_kind))
    except ValueError:
        kind = Appointment.Kind.REFILL
    day = requested_day or (context["proposals"][0] if context["proposals"] and kind == "refill" else first_day)
    initial = {
        "kind": kind,
        "day": day,
        "time": first_time if day == first_day else "10:00",
        "place": ClinicSettings.load().default_place,
    }
    form = AppointmentBookForm(form_data(request), initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            appointment = services.appointment_book(
                patient=patient,
                kind=data["kind"],
                starts_at=form.starts_at(),
                booked_by=request.user,
                implant=implant if data["kind"] in (Appointment.Kind.REFILL, Appointment.Kind.REPLACEMENT) else None,
                place=data["place"],
                location=data["location"],
                outside_window_reason=data["outside_window_reason"],
                override_reason=data["override_reason"],
                notes=data["notes"],
            )
        except services.BookingConflict as exc:
            form.add_error(None, str(exc))
        except ValidationError as exc:
            add_service_errors(form, exc, field_map=BOOKING_FIELDS)
        else:
            when = timezone.localtime(appointment.starts_at)
            messages.success(
                request, f"{appointment.get_kind_display()} booked for {format_day(when, 'l j F Y')} at {when:%H:%M}."
            )
            return _after_booking_redirect(request, patient)
    context["form"] = form
    context["heading"] = "Book a refill" if kind == Appointment.Kind.REFILL else "Book an appointment"
    return render(request, "refills/appointment_book.html", context, status=400 if form.errors else 200)


def _move_context(request: HttpRequest, appointment: Appointment) -> dict:
    context = _booking_context(patient=appointment.patient, implant=appointment.implant, today=timezone.localdate())
    if appointment.kind != Appointment.Kind.REFILL:
        context["proposals"] = []
    open_request = (
        appointment.change_requests.filter(status=AppointmentChangeRequest.Status.OPEN)
        .select_related("requested_by")
        .first()
    )
    preferred = None
    if open_request is not None:
        try:
            preferred = dt.date.fromisoformat(open_request.preferred_dates)
        except ValueError:
            preferred = None
    context.update(
        {
            "appointment": appointment,
            "open_request": open_request,
            "preferred_day": preferred,
            "request_due_by": selectors.change_request_due_by(appointment=appointment),
            "decline_form": ChangeRequestDeclineForm(),
        }
    )
    return context


@staff_required("refills.change_appointment")
@require_http_methods(["GET", "POST"])
@idempotent_form
def appointment_move(request: HttpRequest, appointment_id: int) -> HttpResponse:
    appointment = _appointment_get(request, appointment_id)
    context = _move_context(request, appointment)
    start = timezone.localtime(appointment.starts_at)
    try:
        requested_day = dt.date.fromisoformat(request.GET.get("day", ""))
    except ValueError:
        requested_day = None
    first_day, first_time = first_slot_after(timezone.now())
    day = requested_day or context["preferred_day"] or start.date()
    if day < first_day:
        day = first_day
    time = f"{start:%H:%M}" if day != first_day or f"{start:%H:%M}" >= first_time else first_time
    form = AppointmentMoveForm(form_data(request), initial={"day": day, "time": time, "place": appointment.place})
    if request.method == "POST" and form.is_valid():
        try:
            services.appointment_move(
                appointment=appointment,
                starts_at=form.starts_at(),
                moved_by=request.user,
                outside_window_reason=form.cleaned_data["outside_window_reason"],
                override_reason=form.cleaned_data["override_reason"],
                place=form.cleaned_data["place"],
            )
        except services.BookingConflict as exc:
            form.add_error(None, str(exc))
        except ValidationError as exc:
            add_service_errors(form, exc, field_map=BOOKING_FIELDS)
        else:
            closed = " The patient's request is closed." if context["open_request"] else ""
            when = form.starts_at()
            messages.success(
                request,
                f"Appointment moved to {format_day(when, 'l j F Y')} at {when:%H:%M}."
                f"{closed}{_patient_told(appointment)}",
            )
            return redirect("staff:patient_detail", patient_id=appointment.patient_id)
    context["form"] = form
    return render(request, "refills/appointment_move.html", context, status=400 if form.errors else 200)


@staff_required("refills.change_appointment")
@require_POST
@idempotent_form
def change_request_decline(request: HttpRequest, request_id: int) -> HttpResponse:
    """The clinic cannot give the date asked for: the request closes with a reason the patient reads."""
    visible = patient_list_visible_to(user=request.user)
    change_request = get_object_or_404(
        AppointmentChangeRequest.objects.select_related("appointment__patient", "appointment__implant").filter(
            appointment__patient__in=visible, appointment__entered_in_error=False
        ),
        pk=request_id,
    )
    appointment = change_request.appointment
    decline_form = ChangeRequestDeclineForm(request.POST)
    if decline_form.is_valid():
        try:
            services.appointment_change_request_decline(
                change_request=change_request, reason=decline_form.cleaned_data["reason"], declined_by=request.user
            )
        except ValidationError as exc:
            add_service_errors(decline_form, exc, field_map={"status": None})
        else:
            told = _patient_told(appointment)
            messages.success(request, f"Request declined: the reason is shown to the patient.{told}")
            return redirect("staff:patient_detail", patient_id=appointment.patient_id)
    context = _move_context(request, appointment)
    start = timezone.localtime(appointment.starts_at)
    context["form"] = AppointmentMoveForm(
        initial={"day": start.date(), "time": f"{start:%H:%M}", "place": appointment.place}
    )
    context["decline_form"] = decline_form
    return render(request, "refills/appointment_move.html", context, status=400)


@staff_required("refills.change_appointment")
@require_http_methods(["GET", "POST"])
@idempotent_form
def appointment_cancel(request: HttpRequest, appointment_id: int) -> HttpResponse:
    appointment = _appointment_get(request, appointment_id)
    form = AppointmentCancelForm(form_data(request))
    if request.method == "POST" and form.is_valid():
        try:
            services.appointment_cancel(
                appointment=appointment, reason=form.cleaned_data["reason"], cancelled_by=request.user
            )
        except ValidationError as exc:
            add_service_errors(form, exc, field_map={"cancel_reason": "reason"})
        else:
            told = _patient_told(appointment) if appointment.starts_at > timezone.now() else ""
            messages.success(request, f"Appointment cancelled.{told}")
            return redirect("staff:patient_detail", patient_id=appointment.patient_id)
    context = {"form": form, "appointment": appointment, "patient": appointment.patient}
    return render(request, "refills/appointment_cancel.html", context, status=400 if form.errors else 200)


@staff_required("refills.change_appointment")
@require_POST
@idempotent_form
def appointment_no_show(request: HttpRequest, appointment_id: int) -> HttpResponse:
    appointment = _appointment_get(request, appointment_id)
    try:
        appointment_mark_no_show(appointment=appointment, now=timezone.now())
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        what = appointment.get_kind_display().lower()
        messages.warning(request, f"{appointment.patient.full_name} marked as not attended: rebook the {what}.")
    return _back(request, appointment)


@staff_required("refills.change_appointment")
@require_POST
@idempotent_form
def appointment_attended(request: HttpRequest, appointment_id: int) -> HttpResponse:
    """A review, trial or replacement took place (a refill completes with its visit record)."""
    appointment = _appointment_get(request, appointment_id)
    try:
        services.appointment_mark_attended(appointment=appointment, by=request.user, now=timezone.now())
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{appointment.get_kind_display()} recorded as attended.")
    return _back(request, appointment)


def _back(request: HttpRequest, appointment: Appointment) -> HttpResponse:
    """Back to the page the button was on: the calendar, the patient page, else the worklist."""
    back = request.POST.get("next", "")
    if back == "calendar":
        week = timezone.localdate(appointment.starts_at)
        return redirect(f"{reverse('staff:calendar')}?week={week:%Y-%m-%d}")
    if back == "patient":
        return redirect("staff:patient_detail", patient_id=appointment.patient_id)
    return redirect("staff:worklist")


# ---------------------------------------------------------------------------
# The refill visit, its live forecast, the wallet card
# ---------------------------------------------------------------------------


def _active_implant_or_404(patient) -> Implant:
    implant = implant_get_active(patient=patient)
    if implant is None:
        raise Http404("This patient has no active pump.")
    return implant


def _preview(*, implant: Implant, data: dict):
    """The live forecast from whatever fields are valid so far (never raises on bad input)."""
    performed_at = data.get("performed_at") or timezone.now()
    if timezone.is_naive(performed_at):
        performed_at = timezone.make_aware(performed_at)
    return selectors.refill_visit_preview(
        implant=implant,
        performed_at=performed_at,
        actual_residual_ml=data.get("actual_residual_ml"),
        volume_added_ml=data.get("volume_added_ml"),
        drug=data.get("drug"),
        daily_dose_mcg=data.get("daily_dose_after_mcg"),
        alarm_threshold_ml=data.get("alarm_threshold_ml"),
        bridge_bolus_mcg=data.get("bridge_bolus_mcg"),
        patient_bolus_mcg=data.get("patient_bolus_mcg"),
        patient_boluses_per_day=data.get("patient_boluses_per_day"),
    )


def _refill_initial(implant: Implant) -> dict:
    last = selectors.refill_visit_get_latest(implant=implant)
    now = timezone.now()
    dose = dose_get_in_force(implant=implant, at=now)
    drug = last.drug if last else None
    if drug is None and dose is not None:
        drug = (
            RefillVisitForm.base_fields["drug"]
            .queryset.filter(concentration_mcg_per_ml=dose.concentration_mcg_per_ml)
            .first()
        )
    return {
        "performed_at": timezone.localtime().replace(second=0, microsecond=0),
        "volume_added_ml": plain_decimal(implant.pump_model.reservoir_ml),
        "drug": drug,
        "daily_dose_after_mcg": plain_decimal(dose.daily_dose_mcg) if dose else None,
        "dosing_mode": dose.dosing_mode if dose else None,
        "schedule": dose.schedule if dose else None,
        "patient_bolus_mcg": plain_decimal(dose.patient_bolus_mcg) if dose and dose.patient_bolus_mcg else None,
        "patient_boluses_per_day": dose.patient_boluses_per_day if dose else None,
        "alarm_threshold_ml": plain_decimal(last.alarm_threshold_ml if last else implant.pump_model.alarm_threshold_ml),
    }


@staff_required("refills.add_refillvisit")
@require_http_methods(["GET", "POST"])
@idempotent_form
def refill_visit_record(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = staff_patient_get(request, patient_id)
    implant = _active_implant_or_404(patient)
    initial = _refill_initial(implant)
    form = RefillVisitForm(form_data(request), initial=initial)
    if request.method == "POST":
        if form.is_valid():
            try:
                visit = services.refill_visit_record(implant=implant, performed_by=request.user, **form.cleaned_data)
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                return redirect("staff:refill_visit_done", visit_id=visit.pk)
        preview = _preview(implant=implant, data=form.cleaned_data)
    else:
        preview = _preview(implant=implant, data=initial)
    context = {
        "patient": patient,
        "implant": implant,
        "form": form,
        "preview": preview,
        "booked_refill": _booked_refill(implant),
        "last_visit": selectors.refill_visit_get_latest(implant=implant),
    }
    return render(request, "refills/refill_visit_form.html", context, status=400 if form.errors else 200)


@staff_required("refills.add_refillvisit")
@require_POST
def refill_forecast(request: HttpRequest, patient_id: int) -> HttpResponse:
    """htmx: the forecast fragment for the refill being typed (same arithmetic as the service)."""
    patient = staff_patient_get(request, patient_id)
    implant = _active_implant_or_404(patient)
    form = RefillVisitForm(request.POST)
    form.is_valid()
    context = {"preview": _preview(implant=implant, data=form.cleaned_data), "implant": implant, "form": form}
    return render(request, "refills/_forecast.html", context)


def _visit_get(request: HttpRequest, visit_id: int) -> RefillVisit:
    visible = patient_list_visible_to(user=request.user)
    return get_object_or_404(
        RefillVisit.objects.valid()
        .select_related("implant__patient", "implant__pump_model", "drug", "performed_by", "prescriber")
        .filter(implant__patient__in=visible),
        pk=visit_id,
    )


@staff_required("refills.view_refillvisit", "refills.view_appointment")
@require_GET
def refill_visit_done(request: HttpRequest, visit_id: int) -> HttpResponse:
    visit = _visit_get(request, visit_id)
    implant, patient = visit.implant, visit.implant.patient
    today = timezone.localdate()
    context = _booking_context(patient=patient, implant=implant, today=today)
    form = AppointmentBookForm(
        initial={
            "day": context["proposals"][0] if context["proposals"] else None,
            "place": ClinicSettings.load().default_place,
        }
    )
    context.update(
        {"visit": visit, "form": form, "can_book": holds_permissions(request.user, ["refills.add_appointment"])}
    )
    audit_record_access(
        user=request.user, patient=patient, action=AccessLog.Action.VIEW, request=request, detail="refill visit"
    )
    return render(request, "refills/refill_visit_done.html", context)


@staff_required("refills.view_refillvisit")
@require_GET
def refill_visit_print(request: HttpRequest, visit_id: int) -> HttpResponse:
    """The refill record for the notes, in the shape of the clinician programmer's printout."""
    visit = _visit_get(request, visit_id)
    patient = visit.implant.patient
    checklist = [
        (label, getattr(visit, name), getattr(visit, f"get_{name}_display")(), getattr(visit, f"{name}_reason"))
        for name, label in SAFETY_CHECK_ITEMS.items()
    ]
    context = {
        "visit": visit,
        "implant": visit.implant,
        "patient": patient,
        "before": selectors.refill_visit_prescription_before(visit=visit),
        "checklist": checklist,
        "checklist_recorded": any(outcome for _label, outcome, _shown, _reason in checklist),
        "clinic": ClinicSettings.load(),
        "printed_at": timezone.localtime(),
    }
    audit_record_access(
        user=request.user, patient=patient, action=AccessLog.Action.VIEW, request=request, detail="refill record"
    )
    return render(request, "refills/refill_visit_print.html", context)


@staff_required("patients.view_patient", "refills.view_refillvisit")
@require_GET
def wallet_card(request: HttpRequest, patient_id: int) -> HttpResponse:
    """The emergency pump passport (the wallet card), to print; its QR code holds the same text."""
    patient = staff_patient_get(request, patient_id)
    implant = _active_implant_or_404(patient)
    now = timezone.now()
    context = {
        "patient": patient,
        "implant": implant,
        "passport": passport_get(patient=patient, implant=implant, now=now, booked_refill=_booked_refill(implant)),
        "printed_on": timezone.localdate(),
    }
    # Opening the printable passport is its print: it ends the reprint prompt (passport_reprint_due).
    audit_record_access(
        user=request.user, patient=patient, action=AccessLog.Action.EXPORT, request=request, detail=PASSPORT_EXPORT
    )
    return render(request, "refills/wallet_card.html", context)


# ---------------------------------------------------------------------------
# Clinicians: dose change between refills
# ---------------------------------------------------------------------------


@staff_required("pumps.add_doseprescription", "pumps.view_implant")
@require_http_methods(["GET", "POST"])
@idempotent_form
def dose_change(request: HttpRequest, implant_id: int) -> HttpResponse:
    visible = patient_list_visible_to(user=request.user)
    implant = get_object_or_404(
        Implant.objects.valid().select_related("patient", "pump_model").filter(patient__in=visible), pk=implant_id
    )
    now = timezone.now()
    current = dose_get_in_force(implant=implant, at=now)
    form = DoseChangeForm(
        form_data(request),
        initial={
            "effective_at": timezone.localtime().replace(second=0, microsecond=0),
            "daily_dose_mcg": plain_decimal(current.daily_dose_mcg) if current else None,
            "dosing_mode": current.dosing_mode if current else None,
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.dose_change_record(implant=implant, prescribed_by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc, field_map={"prescribed_by": None})
        else:
            implant.refresh_from_db()
            due = (
                f" Refill now due by {format_day(implant.forecast_due_by, 'j M Y')}." if implant.forecast_due_by else ""
            )
            dose = plain_decimal(form.cleaned_data["daily_dose_mcg"])
            messages.success(request, f"Dose changed to {dose} mcg/day.{due}")
            return redirect("staff:patient_detail", patient_id=implant.patient_id)
    context = {
        "implant": implant,
        "patient": implant.patient,
        "form": form,
        "current": current,
        "planned": dose_get_planned(implant=implant, now=now),
    }
    return render(request, "refills/dose_change.html", context, status=400 if form.errors else 200)
