"""
Text messages, shaped like Django's email API: a backend chosen by setting, `send_sms()`.

`settings.SMS_BACKEND` names the class (env `SMS_BACKEND`):
- `refills.sms_backends.ConsoleBackend`  — prints the message (the local demo);
- `refills.sms_backends.LocmemBackend`   — keeps it in `refills.messaging.outbox` (tests, like `mail.outbox`);
- `refills.sms_backends.TwilioBackend`   — Twilio through its Python SDK, `twilio` (env `SMS_PROVIDER_*`).

Backends raise `SmsTransientError` (worth retrying: network, timeouts, 429/5xx) or
`SmsPermanentError` (the provider refused this message: retrying cannot help).

Why not django-sms (the library of this shape): its last release is 0.7.0 (2023), and its
Twilio backend lets the SDK's exceptions through unclassified, while the reminder retries
depend on the transient/permanent split above; the interface here is these few lines, and the
provider client itself is the provider's SDK (refills/sms_backends.py).
"""

from dataclasses import dataclass, field

from django.conf import settings
from django.utils.module_loading import import_string

# Filled by LocmemBackend; tests empty it (the `sms_outbox` fixture), as Django does for mail.outbox.
outbox: list["SmsMessage"] = []


class SmsError(Exception):
    """Base of the errors an SMS backend raises."""


class SmsTransientError(SmsError, ConnectionError):
    """The message may go through later: the caller retries with backoff."""


class SmsPermanentError(SmsError):
    """The provider refused the message for good (bad number, unverified sender, …)."""


@dataclass
class SmsMessage:
    to: str
    body: str
    from_number: str = ""
    # What the provider answered (its message id), for the log; filled by the backend.
    provider_ids: list[str] = field(default_factory=list)


def get_sms_backend(backend: str | None = None, *, fail_silently: bool = False, **kwargs):
    """An instance of the SMS backend named by `backend` or `settings.SMS_BACKEND`."""
    klass = import_string(backend or settings.SMS_BACKEND)
    return klass(fail_silently=fail_silently, **kwargs)


def send_sms(
    *, to: str, body: str, from_number: str | None = None, fail_silently: bool = False, connection=None
) -> int:
    """Send one text message; returns the number sent (0 or 1), like `django.core.mail.send_mail`."""
    message = SmsMessage(to=to, body=body, from_number=from_number or settings.SMS_PROVIDER_FROM)
    return sms_message_send(message=message, fail_silently=fail_silently, connection=connection)


def sms_message_send(*, message: SmsMessage, fail_silently: bool = False, connection=None) -> int:
    """Send a built message (like `EmailMessage.send()`): the backend fills `message.provider_ids`."""
    if not message.from_number:
        message.from_number = settings.SMS_PROVIDER_FROM
    connection = connection or get_sms_backend(fail_silently=fail_silently)
    return connection.send_messages([message])
