"""Celery adapters of accounts: the password-reset emails, sent by the worker after the response.

The request only validates the form and enqueues: whether the address has an account, and how
slow the mail server is, never shows in the response time (no timing oracle).
"""

import smtplib

from celery import shared_task
from django.db import transaction

from . import services
from .models import User

# Worth another try: the mail server refused for now, or the connection broke.
TRANSIENT_MAIL_ERRORS = (smtplib.SMTPException, OSError)


@shared_task(
    name="accounts.send_password_reset_task",
    ignore_result=True,
    autoretry_for=TRANSIENT_MAIL_ERRORS,
    retry_backoff=30,
    retry_jitter=True,
    max_retries=5,
)
def send_password_reset_task(email: str) -> int:
    return services.password_reset_request_send(email=email)


@shared_task(
    name="accounts.send_password_reset_to_user_task",
    ignore_result=True,
    autoretry_for=TRANSIENT_MAIL_ERRORS,
    retry_backoff=30,
    retry_jitter=True,
    max_retries=5,
)
def send_password_reset_to_user_task(user_id: int) -> bool:
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None or not user.email or not user.has_usable_password():
        return False
    services.password_reset_email_send(user=user)
    return True


def enqueue_password_reset(*, email: str) -> None:
    """After commit, the worker looks the address up and emails any account it has."""
    transaction.on_commit(lambda: send_password_reset_task.delay(email), robust=True)


def enqueue_password_reset_to_user(*, user_id: int) -> None:
    transaction.on_commit(lambda: send_password_reset_to_user_task.delay(user_id), robust=True)
