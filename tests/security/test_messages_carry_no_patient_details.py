"""No patient detail leaves the app in a message: every email and SMS, rendered the way the app sends it.

One patient whose given name, family name, date of birth, the clinic's notes about them and
their own words are strings found nowhere else goes through every path that sends something:
the patient's email and SMS reminders, the nurses' and clinicians' alert digests, the on-call
SMS, the escalation email and SMS, a failed-reminder alert, the portal invitations (patient and
carer), the notice to the old address when staff change an account's email, the appointment notices and the
password reset. None of those strings may appear in any subject, body (text and
HTML alternatives) or SMS text. Staff messages carry the MRN, the kind, the urgency and a link.

Two meta-checks keep the list whole: every email/SMS template in the repository must have been
rendered by the paths above (a new template without a path here fails), and every place in
the code that builds a message (send_mail, EmailMessage, send_sms, …) must be one this test
drives (a new sender fails until it is added here).
"""

import ast
import datetime as dt
from pathlib import Path

import pytest
import time_machine
from django.apps import apps
from django.conf import settings
from django.core import mail
from django.test.signals import template_rendered
from django.urls import reverse

from patients.models import Patient
from portal.services import portal_account_email_change, portal_invite_patient
from refills.alerts.digest import alerts_email_new, alerts_escalate, alerts_text_urgent
from refills.field_safety import field_safety_flag_recall, field_safety_message_send, field_safety_messages_request
from refills.models import Alert, AppointmentNotice, ClinicSettings, Reminder
from refills.notices import appointment_notice_send
from refills.recall import RecallCriteria
from refills.reminders.delivery import reminder_mark_failed, reminder_send
from refills.reminders.dispatch import reminders_dispatch
from refills.reminders.planning import reminders_scan
from refills.services import (
    appointment_book,
    appointment_cancel,
    appointment_change_request_create,
    appointment_change_request_decline,
    appointment_move,
)
from tests.refills.reminder_helpers import Collector, book, local, refilled_implant

pytestmark = pytest.mark.django_db

BASE_DIR = Path(settings.BASE_DIR)


def project_packages() -> list[Path]:
    """The project's own code: the folder of every installed app that lives in the repository, and core."""
    folders = {BASE_DIR / "core", BASE_DIR / "itbclinic"}
    for config in apps.get_app_configs():
        path = Path(config.path).resolve()
        if path.is_relative_to(BASE_DIR.resolve()) and ".venv" not in path.parts:
            folders.add(BASE_DIR / path.relative_to(BASE_DIR.resolve()).parts[0])
    return sorted(folders)


GIVEN = "Quorvantha"
FAMILY = "Bexilworth"
DATE_OF_BIRTH = dt.date(1931, 2, 27)
OWN_WORDS = "my zephyrine tortoise needs feeding that week"
NOTES = "Prefers the Wobblecrest entrance"
DIAGNOSIS_DETAIL = "Glarnfeld variant"
PASSWORD = "a quiet river at dawn 17"

# The places in the code that hand a message to the email or SMS backend, as "module.function".
SENDERS = {
    "itbclinic.accounts.services.password_reset_email_send",
    "portal.emails.portal_invitation_send",
    "portal.emails.portal_account_email_change_notice_send",
    "refills.alerts.digest.alerts_email_new",
    "refills.alerts.digest.alerts_escalate",
    "refills.alerts.digest.alerts_text_urgent",
    "refills.reminders.delivery._deliver",
    "refills.notices.appointment_notice_send",
    "refills.field_safety.field_safety_message_send",
}
SENDING_CALLS = {
    "send_mail",
    "send_mass_mail",
    "mail_admins",
    "mail_managers",
    "EmailMessage",
    "EmailMultiAlternatives",
    "send_sms",
    "sms_message_send",
    "send_messages",
}
# The interface itself, not a sender: the SMS shim and its backends.
MESSAGING_MODULES = {"refills.messaging", "refills.sms_backends"}


def forbidden_strings() -> list[str]:
    d = DATE_OF_BIRTH
    return [
        GIVEN,
        FAMILY,
        OWN_WORDS,
        "zephyrine",
        NOTES,
        "Wobblecrest",
        DIAGNOSIS_DETAIL,
        "Glarnfeld",
        # the date of birth, in every way the app or Django writes a date
        d.isoformat(),
        f"{d:%d/%m/%Y}",
        f"{d:%m/%d/%Y}",
        f"{d:%d.%m.%Y}",
        f"{d:%d %b %Y}",
        f"{d.day} {d:%b %Y}",
        f"{d:%d %B %Y}",
        f"{d.day} {d:%B %Y}",
        f"{d:%B} {d.day}, {d.year}",
        f"{d:%b}. {d.day}, {d.year}",
    ]


# --- discovery ------------------------------------------------------------------------------
def message_templates() -> set[str]:
    """Every email or SMS template of the project's apps, by its template name."""
    found = set()
    for package in project_packages():
        for templates_dir in package.rglob("templates"):
            for path in templates_dir.rglob("*"):
                if not path.is_file():
                    continue
                name = path.relative_to(templates_dir).as_posix()
                parts = name.split("/")
                if path.read_text(errors="replace").lstrip().startswith('{% extends "base.html" %}'):
                    continue  # a page of the app (e.g. the staff form that changes an account's email)
                if (
                    "email" in parts[:-1]
                    or "sms" in parts[:-1]
                    or any(word in parts[-1] for word in ("email", "sms", "_subject"))
                ):
                    found.add(name)
    return found


class _SendingCalls(ast.NodeVisitor):
    """The innermost function around each call of a sending API."""

    def __init__(self, module: str) -> None:
        self.module, self.stack, self.found = module, [], set()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.stack.append(node.name)
        self.generic_visit(node)
        self.stack.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        callee = node.func
        name = callee.id if isinstance(callee, ast.Name) else getattr(callee, "attr", "")
        if name in SENDING_CALLS:
            self.found.add(".".join([self.module, *self.stack]))
        self.generic_visit(node)


def message_senders() -> set[str]:
    """Every function in the project's code that calls a mail or SMS sending API."""
    found: set[str] = set()
    for package in project_packages():
        for path in package.rglob("*.py"):
            if "migrations" in path.parts:
                continue
            module = ".".join(path.relative_to(BASE_DIR).with_suffix("").parts)
            if module in MESSAGING_MODULES:
                continue
            visitor = _SendingCalls(module)
            visitor.visit(ast.parse(path.read_text(), filename=str(path)))
            found |= visitor.found
    return found


def test_discovery_finds_the_known_templates_and_senders():
    assert {p.name for p in project_packages()} >= {"core", "itbclinic", "patients", "portal", "pumps", "refills"}
    templates = message_templates()
    assert {
        "refills/email/reminder_body.txt",
        "refills/email/reminder_sms.txt",
        "refills/email/alerts_body.txt",
        "refills/email/alert_sms.txt",
        "refills/email/alerts_escalation_body.txt",
        "portal/email/invitation.txt",
        "registration/password_reset_email.html",
    } <= templates
    assert message_senders() == SENDERS


# --- the walk through every path ----------------------------------------------------------------
@pytest.fixture
def rendered():
    names: list[str] = []

    def record(sender, template, context, **kwargs):
        names.append(template.name)

    template_rendered.connect(record)
    yield names
    template_rendered.disconnect(record)


def test_no_message_carries_a_name_a_date_of_birth_or_free_text(
    client, nurse, clinician, sms_outbox, rendered, celery_eager, django_capture_on_commit_callbacks
):
    clinic = ClinicSettings.load()
    clinic.on_call_phone = "+447700900555"
    clinic.escalate_after_minutes = 30
    clinic.save()
    # given a patient whose every detail is a string found nowhere else
    with time_machine.travel(local(2025, 3, 3, 12), tick=False):
        implant = refilled_implant(
            nurse=nurse,
            on=local(2025, 1, 6),
            given_name=GIVEN,
            family_name=FAMILY,
            date_of_birth=DATE_OF_BIRTH,
            email="p7713@example.org",
            phone="+447700900123",
            notes=NOTES,
            diagnosis_detail=DIAGNOSIS_DETAIL,
        )
        patient = implant.patient
        appointment = book(implant=implant, nurse=nurse, starts_at=local(2025, 3, 31, 10), now=local(2025, 3, 3, 12))
        # invited to the portal, with a carer; the patient asks for a password reset
        with django_capture_on_commit_callbacks(execute=True):
            portal_invite_patient(patient=patient, email=patient.email, invited_by=nurse)
            portal_invite_patient(
                patient=patient,
                email="carer5521@example.org",
                invited_by=nurse,
                carer=True,
                consent_note=f"{GIVEN} agreed on the phone",
            )
        patient.refresh_from_db()
        user = patient.user
        user.set_password(PASSWORD)
        user.save()
        with django_capture_on_commit_callbacks(execute=True):
            assert client.post(reverse("password_reset"), {"email": patient.email}).status_code == 302
        # a nurse changes the account's email (a notice goes to the old address), then back
        with django_capture_on_commit_callbacks(execute=True):
            portal_account_email_change(
                patient=patient, new_email="p7713new@example.org", reason=f"{GIVEN} asked in clinic", by=nurse
            )
        patient.refresh_from_db()
        with django_capture_on_commit_callbacks(execute=True):
            portal_account_email_change(patient=patient, new_email="p7713@example.org", reason="typed wrong", by=nurse)

    # the patient asks, in their own words, for another date
    with time_machine.travel(local(2025, 3, 5, 12), tick=False):
        appointment_change_request_create(
            appointment=appointment,
            requested_by=user,
            preferred_date=dt.date(2025, 4, 2),
            message=OWN_WORDS,
            today=dt.date(2025, 3, 5),
        )
    # and an alert of every other kind is open, its message holding all of it (the worst case)
    worst = f"{GIVEN} {FAMILY}, born {DATE_OF_BIRTH:%d %b %Y}: {OWN_WORDS}; {NOTES}; {DIAGNOSIS_DETAIL}"
    for i, kind in enumerate(k for k in Alert.Kind.values if k != Alert.Kind.CHANGE_REQUEST):
        Alert.objects.create(
            kind=kind,
            audience=Alert.Audience.CLINICIANS if i % 2 else Alert.Audience.NURSES,
            severity=Alert.Severity.URGENT if i % 3 == 0 else Alert.Severity.WARNING,
            patient=patient,
            implant=implant,
            key_date=dt.date(2025, 3, 5),
            message=worst,
            risk_flags=f"{GIVEN} {FAMILY}",
        )
    now = local(2025, 3, 5, 13)
    Alert.objects.update(raised_at=now)
    # when the scan's messages go: digests, on-call texts, and (nobody acknowledging) escalations
    assert alerts_email_new(now=now) == Alert.objects.count()
    urgent = Alert.objects.filter(severity=Alert.Severity.URGENT).count()
    assert alerts_text_urgent(now=now) == urgent
    assert alerts_escalate(now=now + dt.timedelta(minutes=31)) == urgent

    # and the patient is told of a review's declined request, move and cancellation, by email then by SMS
    with time_machine.travel(local(2025, 3, 6, 12), tick=False):
        for channel in (Reminder.Channel.EMAIL, Reminder.Channel.SMS):
            patient.reminder_channel = channel
            patient.save()
            review = appointment_book(
                patient=patient,
                kind="review",
                starts_at=local(2025, 4, 10, 14),
                booked_by=nurse,
                now=local(2025, 3, 6, 12),
            )
            request = appointment_change_request_create(
                appointment=review,
                requested_by=user,
                preferred_date=dt.date(2025, 4, 9),
                message=OWN_WORDS,
                today=dt.date(2025, 3, 6),
            )
            appointment_change_request_decline(
                change_request=request, reason="Fully booked that day.", declined_by=nurse
            )
            appointment_move(appointment=review, starts_at=local(2025, 4, 11, 15), moved_by=nurse)
            appointment_cancel(appointment=review, reason=f"{GIVEN} {NOTES}", cancelled_by=nurse)
        notices = AppointmentNotice.objects.order_by("pk").values_list("pk", flat=True)
        assert [appointment_notice_send(notice_id=pk, now=local(2025, 3, 6, 12)) for pk in notices] == ["sent"] * 6
        patient.reminder_channel = Reminder.Channel.EMAIL
        patient.save()

    # and a field-safety notice flags the patient's pump: they are told by email, then by SMS
    with time_machine.travel(local(2025, 3, 7, 12), tick=False):
        serial = implant.serial_number
        for i, channel in enumerate((Reminder.Channel.EMAIL, Reminder.Channel.SMS)):
            patient.reminder_channel = channel
            patient.save()
            flagged = field_safety_flag_recall(
                criteria=RecallCriteria(serial_from=serial, serial_to=serial),
                title="Motor stall advisory",
                reference=f"FA-{i}",
                manufacturer_text="Interrogate the pump.",
                by=clinician,
                visible=Patient.objects.all(),
                now=local(2025, 3, 7, 12),
            )
            assert field_safety_messages_request(notice=flagged.notice, by=clinician, now=local(2025, 3, 7, 12)).queued
            assert [
                field_safety_message_send(flag_id=flag.pk, now=local(2025, 3, 7, 12))
                for flag in flagged.notice.flags.all()
            ] == ["sent"]
        patient.reminder_channel = Reminder.Channel.EMAIL
        patient.save()

    # and the patient's reminders: the 14-day one by email …
    with time_machine.travel(local(2025, 3, 17, 9), tick=False):
        collector = Collector()
        reminders_dispatch(now=local(2025, 3, 17, 9), enqueue=collector)
        assert [reminder_send(reminder_id=r, claim_token=t, now=local(2025, 3, 17, 9)) for r, t in collector.calls] == [
            "sent"
        ]
    # … the 2-day one by SMS, after the patient changed their preference
    patient.reminder_channel = Reminder.Channel.SMS
    patient.save()
    with time_machine.travel(local(2025, 3, 29, 9), tick=False):
        reminders_scan(now=local(2025, 3, 29, 9))
        collector = Collector()
        reminders_dispatch(now=local(2025, 3, 29, 9), enqueue=collector)
        assert [reminder_send(reminder_id=r, claim_token=t, now=local(2025, 3, 29, 9)) for r, t in collector.calls] == [
            "sent"
        ]
        # and a reminder that could not go: its alert is emailed to the nurses
        failed = Reminder.objects.create(
            appointment=appointment,
            patient=patient,
            offset_days=1,
            channel=Reminder.Channel.SMS,
            send_at=local(2025, 3, 29, 9),
            appointment_starts_at=appointment.starts_at,
            status=Reminder.Status.SENDING,
        )
        assert reminder_mark_failed(reminder_id=failed.pk, error=f"refused {FAMILY}", now=local(2025, 3, 29, 9)) == 1
        assert alerts_email_new(now=local(2025, 3, 29, 9)) == 1

    # then every message went, and none of them carries a detail of the patient
    emails = [
        (m.subject, m.body, *[content for content, _mimetype in getattr(m, "alternatives", [])]) for m in mail.outbox
    ]
    texts = [m.body for m in sms_outbox]
    to = sorted(tuple(m.to) for m in mail.outbox)
    assert to == sorted(
        [
            ("p7713@example.org",),  # the invitation
            ("carer5521@example.org",),  # the carer's invitation
            ("p7713@example.org",),  # the password reset
            ("p7713@example.org",),  # the email changed (to the old address) …
            ("p7713new@example.org",),  # … and changed back
            (clinic.nursing_email,),  # the digests
            (clinic.clinicians_email,),
            (clinic.nursing_email, clinic.clinicians_email),  # the escalation
            ("p7713@example.org",),  # the 14-day reminder
            ("p7713@example.org",),  # the review's request declined, moved, cancelled (email)
            ("p7713@example.org",),
            ("p7713@example.org",),
            ("p7713@example.org",),  # the field-safety notice (email)
            (clinic.nursing_email,),  # the failed reminder's alert
        ]
    )
    # on-call SMS, escalation SMS, the patient's 2-day reminder, the review's three notices and the
    # field-safety notice by SMS
    assert len(texts) == 2 * urgent + 1 + 3 + 1
    forbidden = [s.lower() for s in forbidden_strings()]
    for parts in [*emails, *[(t,) for t in texts]]:
        for part in parts:
            leaked = [s for s in forbidden if s in part.lower()]
            assert leaked == [], f"{leaked} in:\n{part}"
    # the staff messages carry the MRN and a link to the patient in the app
    patients_addresses = {"p7713@example.org", "p7713new@example.org", "carer5521@example.org"}
    staff = [m for m in mail.outbox if not patients_addresses & set(m.to)]
    link = settings.SITE_URL + reverse("staff:patient_detail", args=[patient.pk])
    assert all(patient.mrn in m.body and link in m.body for m in staff)
    digests = {
        address: "".join(m.body for m in staff if m.to == [address] and "new alert" in m.subject)
        for address in (clinic.nursing_email, clinic.clinicians_email)
    }
    # (the review's requests were declined at once: their alerts closed before any digest)
    for alert in Alert.objects.exclude(appointment__kind="review"):
        address = clinic.nursing_email if alert.audience == Alert.Audience.NURSES else clinic.clinicians_email
        line = f"[{alert.get_severity_display().upper()}] {alert.get_kind_display()} — patient {patient.mrn}"
        assert line in digests[address]
    assert all(patient.mrn in t for t in texts if t.startswith(clinic.name + " URGENT"))
    # and every email/SMS template of the repository was rendered on the way
    assert message_templates() - set(rendered) == set()
