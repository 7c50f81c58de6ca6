"""The alert scan: mark no-shows, raise what holds, resolve what cleared; then email, text, escalate."""

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.db.models import (
    Exists,
    OuterRef,
    QuerySet,
)
from django.utils import timezone

from core.db import exists_each, jit_off_in_transaction
from core.formatting import format_day
from patients.models import Patient

from ..clinic_time import clinic_tz
from ..models import Alert, Appointment, ClinicSettings, RefillVisit
from ..no_shows import appointment_mark_no_show
from .digest import alerts_email_new, alerts_escalate, alerts_text_urgent
from .raising import alerts_raise, alerts_resolve
from .rules import RecordProblems, alert_build, device_alerts, patient_alerts, refill_alerts, visit_alerts
from .setwise import SETWISE_KINDS, alerts_setwise, setwise_available, setwise_leaves, setwise_scope


@dataclass(frozen=True, slots=True)
class AlertScanResult:
    raised: int
    resolved: int
    no_shows: int
    emailed: int
    texted: int = 0
    escalated: int = 0


def late_refills(*, clinic: ClinicSettings, now: dt.datetime) -> QuerySet[Appointment]:
    """Booked refills long past with no visit: the no-shows to mark."""
    return (
        Appointment.objects.booked_refills()
        .filter(
            visit__isnull=True,
            starts_at__lt=now - dt.timedelta(hours=clinic.no_show_after_hours),
            patient__status=Patient.Status.ACTIVE,
        )
        .exclude(
            # A refill recorded without naming its appointment still counts as the visit.
            Exists(
                RefillVisit.objects.valid().filter(
                    implant=OuterRef("implant"), performed_at__gte=OuterRef("starts_at") - dt.timedelta(hours=12)
                )
            )
        )
        .order_by("starts_at")
    )


def appointments_mark_no_show(*, clinic: ClinicSettings, now: dt.datetime) -> list[Alert]:
    """Booked refills long past with no visit become no-shows (the lead's service), one alert each."""
    late = late_refills(clinic=clinic, now=now)
    alerts = []
    for appointment in late:
        appointment_mark_no_show(appointment=appointment, now=now)
        starts = timezone.localtime(appointment.starts_at, clinic_tz())
        alerts.append(
            alert_build(
                Alert.Kind.NO_SHOW,
                patient_id=appointment.patient_id,
                key_date=starts.date(),
                implant_id=appointment.implant_id,
                appointment_id=appointment.pk,
                message=f"Missed the refill booked for {format_day(starts, 'D j M Y H:i')}: rebook it.",
            )
        )
    return alerts


def alerts_scan(*, now: dt.datetime) -> AlertScanResult:
    """Raise what holds, resolve what cleared, mark no-shows; then email, text and escalate.

    The messages go after the commit: a mail server or SMS provider that fails is retried on the
    next scan and never rolls back (or stops) the scan itself.
    """
    today = timezone.localdate(now, clinic_tz())
    clinic = ClinicSettings.load()
    problems = RecordProblems(today=today)
    # On PostgreSQL the rules whose rows grow with the clinic run as one statement (alerts.setwise);
    # rules.py decides the rest, and everything on SQLite.
    scope = setwise_scope(today=today) if setwise_available() else None
    with transaction.atomic():
        jit_off_in_transaction()
        if scope is None:
            no_show_alerts = appointments_mark_no_show(clinic=clinic, now=now)
            desired = [
                *refill_alerts(clinic=clinic, today=today, problems=problems),
                *device_alerts(clinic=clinic, today=today, problems=problems),
            ]
        else:
            # One round trip tells which of these steps has rows to look at; nearly always none:
            # a missed refill, a pump the statement leaves to rules.py, an ERI with no alert yet.
            late, refill_left, battery_left, eri_left = exists_each(
                late_refills(clinic=clinic, now=now), *setwise_leaves(scope=scope, clinic=clinic, today=today)
            )
            no_show_alerts = appointments_mark_no_show(clinic=clinic, now=now) if late else []
            desired = [
                *(
                    refill_alerts(clinic=clinic, today=today, problems=problems, implants=scope.refill_leaves)
                    if refill_left
                    else []
                ),
                *(
                    device_alerts(
                        clinic=clinic,
                        today=today,
                        problems=problems,
                        implants=scope.battery_leaves,
                        models=scope.battery_models,
                    )
                    if battery_left or eri_left
                    else []
                ),
            ]
        patients = patient_alerts()
        # PATIENT_STATUS is closed only by hand, visit events by a clinician's review: not "desired".
        events = [*visit_alerts(now=now, problems=problems)]
        for alert in patients:
            (events if alert.kind == Alert.Kind.PATIENT_STATUS else desired).append(alert)
        desired.extend(problems.alerts())
        # Raised first: the risk flags settle each alert's severity, which the resolution keys on.
        raised = alerts_raise([*no_show_alerts, *desired, *events])
        resolved = 0
        if scope is not None:
            setwise = alerts_setwise(
                clinic=clinic,
                today=today,
                now=now,
                scope=scope,
                also_wanted=[a for a in desired if a.kind in SETWISE_KINDS],
            )
            raised += setwise.raised
            resolved += setwise.resolved
        resolved += alerts_resolve(
            desired=desired, today=today, now=now, resolved_in_sql=SETWISE_KINDS if scope else frozenset()
        )
    emailed = alerts_email_new(now=now, clinic=clinic)
    texted = alerts_text_urgent(now=now, clinic=clinic)
    escalated = alerts_escalate(now=now, clinic=clinic)
    return AlertScanResult(
        raised=raised,
        resolved=resolved,
        no_shows=len(no_show_alerts),
        emailed=emailed,
        texted=texted,
        escalated=escalated,
    )
