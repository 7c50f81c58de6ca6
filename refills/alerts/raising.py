"""Raise and resolve alerts: the one path every alert takes, so the withdrawal-risk flags
settle its severity whoever raises it (the scan, a failed reminder, the portal).
"""

import datetime as dt

from django.db.models import (
    Exists,
    OuterRef,
    Q,
)
from django.utils import timezone

from core.formatting import format_day

from ..models import Alert, Appointment, RefillVisit
from .rules import VISIT_ALERT_KINDS, risk_flags_get

_RAISED_SEVERITY = {
    Alert.Severity.INFO: Alert.Severity.WARNING,
    Alert.Severity.WARNING: Alert.Severity.URGENT,
    Alert.Severity.URGENT: Alert.Severity.URGENT,
}
RESOLUTIONS = {
    Alert.Kind.REFILL_UNBOOKED: "Cleared: a refill was booked or recorded.",
    Alert.Kind.REFILL_URGENT: "Cleared: the pump was refilled.",
    Alert.Kind.BOOKED_AFTER_DUE: "Cleared: the refill was brought forward, recorded or cancelled.",
    Alert.Kind.REPLACEMENT_PLAN: "Cleared: replacement booked or pump explanted.",
    Alert.Kind.NO_FORECAST: "Cleared: the pump has a refill date again (or is explanted).",
    Alert.Kind.RECORD_ATTENTION: "Cleared: the record can be computed again.",
    Alert.Kind.EXPLANT_NO_REPLACEMENT: "Cleared: a new pump was implanted or its replacement booked.",
}


def alerts_resolve(
    *, desired: list[Alert], today: dt.date, now: dt.datetime, resolved_in_sql: frozenset[str] = frozenset()
) -> int:
    """Open alerts whose condition no longer holds are resolved (by the system, with the reason).

    `desired` must have been through `alerts_raise` (which settles each alert's severity).
    `resolved_in_sql` are the kinds the set-wise statement (`alerts.setwise`) has resolved already,
    with the pump-gone rule below: both are left alone here.
    """
    wanted = {(a.kind, a.patient_id, a.key_date, a.severity) for a in desired}
    wanted_any_severity = {(a.kind, a.patient_id, a.key_date): a.severity for a in desired}
    open_alerts = Alert.objects.filter(resolved_at__isnull=True)
    resolved = 0
    by_reason: dict[str, list[int]] = {}
    open_kinds = set()
    for pk, kind, patient_pk, key_date, severity in open_alerts.exclude(kind__in=resolved_in_sql).values_list(
        "pk", "kind", "patient_id", "key_date", "severity"
    ):
        open_kinds.add(kind)
        if kind not in RESOLUTIONS or (kind, patient_pk, key_date, severity) in wanted:
            continue
        if (kind, patient_pk, key_date) in wanted_any_severity:
            reason = f"Now {wanted_any_severity[(kind, patient_pk, key_date)]}: see the newer alert."
        elif kind == Alert.Kind.REFILL_URGENT and any(
            (kind, patient_pk, today, s) in wanted for s in Alert.Severity.values
        ):
            reason = f"Repeated on {format_day(today, 'j M Y')}."
        else:
            reason = RESOLUTIONS[kind]
        by_reason.setdefault(reason, []).append(pk)
    for reason, pks in by_reason.items():
        for start in range(0, len(pks), 500):
            resolved += Alert.objects.filter(pk__in=pks[start : start + 500], resolved_at__isnull=True).update(
                resolved_at=now, resolution=reason
            )
    # The rules below are set-based updates; skip those with no open alert of their kind.
    # Device alerts end with the pump (explant) or the patient's care here.
    gone = ~Q(implant__explanted_on__isnull=True) | Q(implant__entered_in_error=True) | ~Q(patient__status="active")
    if not resolved_in_sql and open_kinds & {Alert.Kind.BATTERY_WINDOW, Alert.Kind.ERI, Alert.Kind.NO_SHOW}:
        resolved += (
            open_alerts.filter(
                kind__in=[Alert.Kind.BATTERY_WINDOW, Alert.Kind.ERI, Alert.Kind.NO_SHOW], implant__isnull=False
            )
            .filter(gone)
            .update(resolved_at=now, resolution="Cleared: pump explanted or patient no longer in care.")
        )
    # A visit's event stops mattering only if the visit never happened as recorded.
    if open_kinds & set(VISIT_ALERT_KINDS):
        resolved += open_alerts.filter(kind__in=VISIT_ALERT_KINDS, visit__entered_in_error=True).update(
            resolved_at=now, resolution="Cleared: the visit was marked entered in error."
        )
    # A missed refill is dealt with once a later one is booked or done.
    later = Appointment.objects.valid().filter(
        patient=OuterRef("patient"),
        kind=Appointment.Kind.REFILL,
        status__in=[Appointment.Status.BOOKED, Appointment.Status.COMPLETED],
        starts_at__gt=OuterRef("appointment__starts_at"),
    )
    refilled = RefillVisit.objects.valid().filter(
        implant=OuterRef("implant"), performed_at__gt=OuterRef("appointment__starts_at")
    )
    if Alert.Kind.NO_SHOW in open_kinds:
        resolved += (
            open_alerts.filter(kind=Alert.Kind.NO_SHOW)
            .filter(Exists(later) | Exists(refilled))
            .update(resolved_at=now, resolution="Cleared: the refill was rebooked or done.")
        )
    # A failed reminder stops mattering once its appointment has passed or changed.
    if Alert.Kind.REMINDER_FAILED in open_kinds:
        resolved += (
            open_alerts.filter(kind=Alert.Kind.REMINDER_FAILED)
            .filter(~Q(appointment__status=Appointment.Status.BOOKED) | Q(appointment__starts_at__lte=now))
            .update(resolved_at=now, resolution="Cleared: the appointment has passed or changed.")
        )
    return resolved


def _risk_flags_apply(alerts: list[Alert], *, risk_flags: dict[int, str]) -> None:
    """Withdrawal-risk flags raise every alert one step and ride on it, in words.

    SCI at T6 or above, communication difficulty (the patient may not say they feel unwell),
    previous withdrawal (docs/domain.md "Why a missed refill is an emergency"). Idempotent: an alert
    that already carries its flags is left as it is.
    """
    for alert in alerts:
        words = risk_flags.get(alert.patient_id)
        if words and not alert.risk_flags:
            alert.risk_flags = words
            alert.severity = _RAISED_SEVERITY[alert.severity]


def alerts_raise(alerts: list[Alert], *, risk_flags: dict[int, str] | None = None) -> int:
    """Insert the alerts whose (kind, patient, key date, severity) is new, after the risk flags
    have settled their severity: read the keys of those dates first, so that a steady scan
    writes nothing. The unique constraint still settles a race."""
    if not alerts:
        return 0
    _risk_flags_apply(alerts, risk_flags=risk_flags_get() if risk_flags is None else risk_flags)
    rows = Alert.objects.filter(
        kind__in={a.kind for a in alerts}, key_date__in={a.key_date for a in alerts}
    ).values_list(
        "kind", "patient_id", "key_date", "severity", "pk", "implant_id", "message", "resolved_at", "resolved_by_id"
    )
    existing = {row[:4]: row[4:] for row in rows}
    new, seen, reopened = [], set(), 0
    for alert in alerts:
        key = (alert.kind, alert.patient_id, alert.key_date, alert.severity)
        if key in seen:
            continue
        seen.add(key)
        if key not in existing:
            new.append(alert)
            continue
        pk, implant_id, message, resolved_at, resolved_by_id = existing[key]
        if resolved_at is not None and resolved_by_id is None:
            # The scan had cleared it, and it holds again (a refill entered in error, a booking
            # cancelled, a pump replaced by one with no fill, all the same day): open it again, to
            # be emailed, texted and escalated afresh. One a person resolved stays resolved.
            reopened += Alert.objects.filter(pk=pk, resolved_at__isnull=False, resolved_by__isnull=True).update(
                resolved_at=None,
                resolution="",
                implant_id=alert.implant_id,
                message=alert.message,
                emailed_at=None,
                sms_sent_at=None,
                acknowledged_at=None,
                acknowledged_by=None,
                escalated_at=None,
                escalation_count=0,
                raised_at=timezone.now(),
            )
        elif resolved_at is None and (implant_id, message) != (alert.implant_id, alert.message):
            # Still open, but about another pump now (replaced the same day) or for another reason
            # (emptied, then refilled at a dose that cannot be computed): say what is true now.
            Alert.objects.filter(pk=pk, resolved_at__isnull=True).update(
                implant_id=alert.implant_id, message=alert.message
            )
    Alert.objects.bulk_create(new, ignore_conflicts=True)
    return len(new) + reopened
