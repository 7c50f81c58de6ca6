"""Telling people: the email digest per audience, the on-call SMS, and escalation of urgent alerts."""

import datetime as dt
import logging

from django.conf import settings
from django.core.mail import EmailMessage
from django.db.models import (
    F,
    Q,
    QuerySet,
)
from django.template.loader import render_to_string

from ..messaging import send_sms
from ..models import Alert, ClinicSettings
from .reads import alert_severity_rank

logger = logging.getLogger(__name__)


# An SMS per urgent alert, but never a flood from one scan (e.g. the first scan after an outage):
# the rest go on the next scan, five minutes later.
SMS_PER_SCAN = 20


def alerts_email_new(*, now: dt.datetime, clinic: ClinicSettings | None = None) -> int:
    """One digest per audience with the alerts not yet emailed; `emailed_at` keeps it to once.

    The rows are claimed first (emailed_at set to this call's own instant), and released again if
    the mail server fails, so the next scan tries again: an alert is emailed once, or retried.
    """
    clinic = clinic or ClinicSettings.load()
    emailed = 0
    recipients = {Alert.Audience.NURSES: clinic.nursing_email, Alert.Audience.CLINICIANS: clinic.clinicians_email}
    waiting: dict[str, list[int]] = {}
    for pk, audience in (
        Alert.objects.filter(emailed_at__isnull=True, resolved_at__isnull=True)
        .order_by("id")
        .values_list("id", "audience")[:1000]
    ):
        waiting.setdefault(audience, []).append(pk)
    for audience, address in recipients.items():
        candidates = waiting.get(audience, [])[:500]
        if not candidates:
            continue
        marker = now
        Alert.objects.filter(pk__in=candidates, emailed_at__isnull=True).update(emailed_at=marker)
        alerts = list(
            Alert.objects.filter(pk__in=candidates, emailed_at=marker)
            .select_related("patient")
            .annotate(urgent_first=alert_severity_rank())
            .order_by("urgent_first", "kind", "key_date")
        )
        if not alerts:
            continue
        context = {
            "alerts": alerts,
            "urgent": sum(a.severity == Alert.Severity.URGENT for a in alerts),
            "audience": dict(Alert.Audience.choices)[audience],
            "clinic": clinic,
            "site_url": settings.SITE_URL,
        }
        subject = " ".join(render_to_string("refills/email/alerts_subject.txt", context).split())
        body = render_to_string("refills/email/alerts_body.txt", context)
        try:
            EmailMessage(subject=subject, body=body, to=[address]).send(fail_silently=False)
        except Exception:
            logger.exception("alert digest to %s failed; the next scan retries", audience)
            Alert.objects.filter(pk__in=[a.pk for a in alerts], emailed_at=marker).update(emailed_at=None)
            continue
        emailed += len(alerts)
    return emailed


def _urgent_unacknowledged() -> QuerySet[Alert]:
    return Alert.objects.filter(severity=Alert.Severity.URGENT, resolved_at__isnull=True, acknowledged_at__isnull=True)


def _alert_sms_body(*, alert: Alert, clinic: ClinicSettings) -> str:
    """Short, and no name or clinical detail: an SMS is read on a lock screen (the MRN finds the patient)."""
    context = {
        "alert": alert,
        "what": alert.get_kind_display().removeprefix("URGENT: "),
        "clinic": clinic,
        "site_url": settings.SITE_URL,
    }
    return " ".join(render_to_string("refills/email/alert_sms.txt", context).split())


def alerts_text_urgent(*, now: dt.datetime, clinic: ClinicSettings | None = None) -> int:
    """Each new urgent alert is texted once to the on-call phone; `sms_sent_at` claims it.

    A failed send releases the claim (logged), so the next scan tries again.
    """
    clinic = clinic or ClinicSettings.load()
    phone = clinic.on_call_phone.strip()
    if not phone:
        return 0
    candidates = list(
        _urgent_unacknowledged()
        .filter(sms_sent_at__isnull=True)
        .order_by("raised_at", "id")
        .values_list("pk", flat=True)[:SMS_PER_SCAN]
    )
    if not candidates:
        return 0
    Alert.objects.filter(pk__in=candidates, sms_sent_at__isnull=True).update(sms_sent_at=now)
    texted = 0
    for alert in Alert.objects.filter(pk__in=candidates, sms_sent_at=now).select_related("patient").order_by("id"):
        try:
            send_sms(to=phone, body=_alert_sms_body(alert=alert, clinic=clinic))
        except Exception:
            logger.exception("SMS of urgent alert %s failed; the next scan retries", alert.pk)
            Alert.objects.filter(pk=alert.pk, sms_sent_at=now).update(sms_sent_at=None)
            continue
        texted += 1
    return texted


def alerts_escalate(*, now: dt.datetime, clinic: ClinicSettings | None = None) -> int:
    """An urgent alert nobody acknowledged within `escalate_after_minutes` of being raised (or of
    its last escalation) is escalated again: texted to the on-call phone and emailed to both the
    nurses and the clinicians, until someone acknowledges or resolves it.

    The claim is a conditional UPDATE that re-checks the deadline, so two scans at once escalate
    each alert once; if a message fails, the claim is given back and the next scan retries.
    """
    clinic = clinic or ClinicSettings.load()
    cutoff = now - dt.timedelta(minutes=clinic.escalate_after_minutes)
    due = _urgent_unacknowledged().filter(
        Q(escalated_at__isnull=True, raised_at__lte=cutoff) | Q(escalated_at__lte=cutoff)
    )
    before = {pk: (at, count) for pk, at, count in due.values_list("pk", "escalated_at", "escalation_count")[:500]}
    if not before:
        return 0
    due.filter(pk__in=list(before)).update(escalated_at=now, escalation_count=F("escalation_count") + 1)
    alerts = list(
        Alert.objects.filter(pk__in=list(before), escalated_at=now)
        .select_related("patient")
        .order_by("raised_at", "id")
    )
    failed: set[int] = set()
    phone = clinic.on_call_phone.strip()
    for alert in alerts if phone else []:
        try:
            send_sms(to=phone, body=_alert_sms_body(alert=alert, clinic=clinic))
        except Exception:
            logger.exception("escalation SMS of alert %s failed; the next scan retries", alert.pk)
            failed.add(alert.pk)
    if alerts:
        context = {
            "alerts": alerts,
            "clinic": clinic,
            "site_url": settings.SITE_URL,
            "minutes": clinic.escalate_after_minutes,
        }
        subject = " ".join(render_to_string("refills/email/alerts_escalation_subject.txt", context).split())
        body = render_to_string("refills/email/alerts_escalation_body.txt", context)
        try:
            EmailMessage(subject=subject, body=body, to=[clinic.nursing_email, clinic.clinicians_email]).send(
                fail_silently=False
            )
        except Exception:
            logger.exception("escalation email failed; the next scan retries")
            failed.update(a.pk for a in alerts)
    # A duplicate is better than a loss: a failed escalation is given back whole and repeated.
    for pk in failed:
        at, count = before[pk]
        Alert.objects.filter(pk=pk, escalated_at=now).update(escalated_at=at, escalation_count=count)
    return len(alerts) - len(failed)
