"""Email backends for the reminder tests only, selected by the EMAIL_BACKEND setting (or env).

The worker-process tests start a real Celery worker with EMAIL_BACKEND naming one of these and
ITB_TEST_MAILDIR naming a folder: every delivered message becomes one file there, so the test
process can count deliveries across processes.
"""

import os
import smtplib
import time
import uuid
from pathlib import Path

from django.core.mail.backends import locmem
from django.core.mail.backends.base import BaseEmailBackend


class FailingSmtpBackend(BaseEmailBackend):
    """The mail server drops the connection on every attempt."""

    def send_messages(self, email_messages):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


class FileCountingBackend(BaseEmailBackend):
    """Writes each message to $ITB_TEST_MAILDIR/<uuid>.eml after $ITB_TEST_MAIL_DELAY seconds."""

    def send_messages(self, email_messages):
        folder = Path(os.environ["ITB_TEST_MAILDIR"])
        delay = float(os.environ.get("ITB_TEST_MAIL_DELAY", "0"))
        (folder / f"started-{uuid.uuid4().hex}").touch()  # a send began (the test waits for this)
        if delay:
            time.sleep(delay)
        for message in email_messages:
            (folder / f"{uuid.uuid4().hex}.eml").write_bytes(message.message().as_bytes())
        return len(email_messages)


class FailingFileBackend(FileCountingBackend):
    """Every attempt is recorded, then the mail server drops the connection."""

    def send_messages(self, email_messages):
        folder = Path(os.environ["ITB_TEST_MAILDIR"])
        (folder / f"attempt-{uuid.uuid4().hex}").touch()
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


# What AttemptWitnessBackend saw, per message: the attempt rows another connection could read.
witnessed: list[list[tuple[int, str]]] = []


class AttemptWitnessBackend(locmem.EmailBackend):
    """Before delivering (to mail.outbox), reads the delivery attempts through a connection of its own.

    Another connection sees only committed rows: this is how a test shows that the attempt was
    committed before the provider was called.
    """

    def send_messages(self, email_messages):
        from django.db import connections

        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT reminder_id, outcome FROM refills_deliveryattempt ORDER BY id")
                witnessed.append([(row[0], row[1]) for row in cursor.fetchall()])
        finally:
            other.close()
        return super().send_messages(email_messages)
