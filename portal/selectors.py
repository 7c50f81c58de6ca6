"""Reads for the portal: always scoped to what the logged-in user may see."""

import datetime as dt
from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser
from django.db.models import Q, QuerySet

from itbclinic.accounts.models import User
from patients.models import Patient
from pumps.calculations import ReplacementPlan
from pumps.models import Implant
from pumps.selectors import implant_get_active, implant_get_battery_dates
from refills.models import Appointment, AppointmentChangeRequest, ClinicSettings, RefillVisit
from refills.selectors import appointment_get_next, refill_visit_list

from .models import CalendarFeed, CarerLink, hash_token


def portal_patient_list_for(*, user: User | AnonymousUser) -> QuerySet[Patient]:
    """The patient's own record and those of the patients a carer is linked to (active links)."""
    if isinstance(user, AnonymousUser) or not getattr(user, "is_authenticated", False):
        return Patient.objects.none()
    linked = CarerLink.objects.filter(carer=user, revoked_at__isnull=True).values("patient_id")
    return Patient.objects.valid().filter(Q(user=user) | Q(pk__in=linked)).order_by("family_name", "given_name", "pk")


def portal_patient_get(*, user: User | AnonymousUser, patient_id: int) -> Patient | None:
    return portal_patient_list_for(user=user).filter(pk=patient_id).first()


def portal_is_carer_for(*, user: User | AnonymousUser, patient: Patient) -> bool:
    return patient.user_id != user.pk


def portal_appointment_get(*, patient: Patient, appointment_id: int) -> Appointment | None:
    return Appointment.objects.valid().filter(patient=patient, pk=appointment_id).first()


def portal_appointment_list_upcoming(*, patient: Patient, now: dt.datetime) -> QuerySet[Appointment]:
    return (
        Appointment.objects.valid()
        .filter(patient=patient, status=Appointment.Status.BOOKED, starts_at__gte=now)
        .order_by("starts_at", "id")
    )


def portal_change_request_list(*, patient: Patient, limit: int = 5) -> list[AppointmentChangeRequest]:
    return list(
        AppointmentChangeRequest.objects.filter(appointment__patient=patient)
        .select_related("appointment")
        .order_by("-requested_at", "-id")[:limit]
    )


def portal_change_request_get(*, patient: Patient, request_id: int) -> AppointmentChangeRequest | None:
    """One of the patient's own requests (None for anyone else's: the view answers 404)."""
    return (
        AppointmentChangeRequest.objects.filter(
            appointment__patient=patient, appointment__entered_in_error=False, pk=request_id
        )
        .select_related("appointment")
        .first()
    )


def portal_change_request_get_open(*, appointment: Appointment) -> AppointmentChangeRequest | None:
    return appointment.change_requests.filter(status=AppointmentChangeRequest.Status.OPEN).first()


def calendar_feed_get_active(*, user: User, patient: Patient) -> CalendarFeed | None:
    return CalendarFeed.objects.filter(user=user, patient=patient, revoked_at__isnull=True).first()


def calendar_feed_get_by_token(*, token: str) -> CalendarFeed | None:
    if not token or len(token) > 200:
        return None
    return (
        CalendarFeed.objects.filter(token_hash=hash_token(token), revoked_at__isnull=True)
        .select_related("patient", "user")
        .first()
    )


@dataclass(frozen=True)
class PortalSummary:
    """Everything the portal home shows, read in a fixed number of queries."""

    patient: Patient
    clinic: ClinicSettings
    next_appointment: Appointment | None
    open_change_request: AppointmentChangeRequest | None
    implant: Implant | None
    latest_refill: RefillVisit | None
    recent_refills: list[RefillVisit]
    replacement: ReplacementPlan | None
    battery_window_opens_on: dt.date | None
    change_requests: list[AppointmentChangeRequest]


def portal_summary_get(*, patient: Patient, now: dt.datetime, refills: int = 3) -> PortalSummary:
    implant = implant_get_active(patient=patient)
    recent = list(refill_visit_list(implant=implant)[:refills]) if implant is not None else []
    next_appointment = appointment_get_next(patient=patient, now=now)
    battery = implant_get_battery_dates(implant=implant) if implant is not None else None
    return PortalSummary(
        patient=patient,
        clinic=ClinicSettings.load(),
        next_appointment=next_appointment,
        open_change_request=portal_change_request_get_open(appointment=next_appointment) if next_appointment else None,
        implant=implant,
        latest_refill=recent[0] if recent else None,
        recent_refills=recent,
        # A record the clinic must correct hides the battery dates rather than the whole page.
        replacement=battery.plan if battery else None,
        battery_window_opens_on=battery.window_opens_on if battery else None,
        change_requests=portal_change_request_list(patient=patient),
    )
