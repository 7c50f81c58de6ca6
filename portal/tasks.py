"""Celery adapters of the portal's emails: load by id, call one function in portal/emails.py, own retries."""

import smtplib

from celery import shared_task
from django.utils import timezone

from . import emails

TRANSIENT_MAIL_ERRORS = (smtplib.SMTPException, OSError)


@shared_task(
    name="portal.send_portal_invitation_task",
    ignore_result=True,
    autoretry_for=TRANSIENT_MAIL_ERRORS,
    retry_backoff=30,
    retry_jitter=True,
    max_retries=5,
)
def send_portal_invitation_task(invitation_id: int) -> bool:
    return emails.portal_invitation_send(invitation_id=invitation_id, now=timezone.now())


@shared_task(
    name="portal.send_email_change_notice_task",
    ignore_result=True,
    autoretry_for=TRANSIENT_MAIL_ERRORS,
    retry_backoff=30,
    retry_jitter=True,
    max_retries=5,
)
def send_email_change_notice_task(change_id: int) -> bool:
    return emails.portal_account_email_change_notice_send(change_id=change_id)
