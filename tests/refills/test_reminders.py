"""Reminder rows: when they go, one per key, moved/cancelled appointments, claim, send, recovery."""

import datetime as dt
import json
import smtplib
import uuid

import pytest
import time_machine
from django.core import mail
from django.db import OperationalError, transaction
from twilio.http.response import Response

from refills import sms_backends
from refills.alerts.reads import alert_list_open
from refills.models import Alert, Appointment, ClinicSettings, DeliveryAttempt, Reminder
from refills.reminders import delivery
from refills.reminders.delivery import SendOutcome, reminder_send
from refills.reminders.dispatch import reminders_dispatch, reminders_recover_stuck
from refills.reminders.planning import ReminderScanResult, reminders_materialise_for_appointment, reminders_scan
from refills.reminders.reads import reminder_figures, reminder_list
from refills.reminders.timing import reminder_plan, reminder_send_at
from refills.services import appointment_cancel, appointment_move
from refills.tasks import dispatch_reminders_task, send_reminder_task
from tests import factories
from tests.refills import reminder_test_backends
from tests.refills.reminder_helpers import UTC, Collector, book, local, patient_emails, refilled_implant, rows
from tests.refills.test_sms import PROVIDER, StubHttpClient

pytestmark = pytest.mark.django_db
MIN_LEAD = dt.timedelta(hours=12)


# --- when a reminder goes -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("starts_at", "offset", "expected_utc"),
    [
        # Mon 31 Mar 2025 10:00 BST (clocks went forward on Sun 30 Mar): the 2-day one is 09:00 GMT
        (local(2025, 3, 31, 10), 2, dt.datetime(2025, 3, 29, 9, 0, tzinfo=UTC)),
        (local(2025, 3, 31, 10), 14, dt.datetime(2025, 3, 17, 9, 0, tzinfo=UTC)),
        # Mon 27 Oct 2025 10:00 GMT (clocks went back on Sun 26 Oct): the 2-day one is 09:00 BST
        (local(2025, 10, 27, 10), 2, dt.datetime(2025, 10, 25, 8, 0, tzinfo=UTC)),
        (local(2025, 10, 27, 10), 14, dt.datetime(2025, 10, 13, 8, 0, tzinfo=UTC)),
        # the day of the change itself: Sun 30 Mar 2025 09:00 is already BST
        (local(2025, 4, 1, 10), 2, dt.datetime(2025, 3, 30, 8, 0, tzinfo=UTC)),
        # an appointment early in the morning local time, late the evening before in UTC
        (dt.datetime(2025, 7, 1, 23, 30, tzinfo=UTC), 2, dt.datetime(2025, 6, 30, 8, 0, tzinfo=UTC)),
    ],
)
def test_reminder_goes_at_nine_clinic_time_on_the_local_day(starts_at, offset, expected_utc):
    send_at = reminder_send_at(starts_at=starts_at, offset_days=offset, hour=9)
    assert send_at == expected_utc
    assert send_at.astimezone(local(2025, 1, 1).tzinfo).hour == 9


def test_plan_booked_weeks_ahead_has_both_reminders_pending():
    plan = reminder_plan(
        starts_at=local(2025, 3, 31), offsets=[14, 2], hour=9, now=local(2025, 3, 1), min_lead=MIN_LEAD
    )
    assert [(p.offset_days, p.status) for p in plan] == [(14, "pending"), (2, "pending")]


def test_plan_booked_ten_days_ahead_skips_the_stale_fourteen_day_one():
    plan = reminder_plan(
        starts_at=local(2025, 3, 31), offsets=[14, 2], hour=9, now=local(2025, 3, 21), min_lead=MIN_LEAD
    )
    assert [(p.offset_days, p.status, p.reason_code) for p in plan] == [
        (14, "cancelled", "stale"),
        (2, "pending", ""),
    ]


def test_plan_booked_the_day_before_sends_one_catch_up_now():
    # both times have passed: the closest (2-day) goes at the next dispatch, the 14-day never
    plan = reminder_plan(
        starts_at=local(2025, 3, 31, 10), offsets=[14, 2], hour=9, now=local(2025, 3, 30, 11), min_lead=MIN_LEAD
    )
    assert [(p.offset_days, p.status) for p in plan] == [(14, "cancelled"), (2, "pending")]
    assert plan[1].send_at < local(2025, 3, 30, 11)


def test_plan_booked_hours_before_sends_nothing():
    plan = reminder_plan(
        starts_at=local(2025, 3, 31, 10), offsets=[14, 2], hour=9, now=local(2025, 3, 31, 8), min_lead=MIN_LEAD
    )
    assert [p.status for p in plan] == ["cancelled", "cancelled"]


# --- materialise: one row per key ---------------------------------------------------------
@pytest.fixture
def booked(nurse):
    """docs/domain.md's worked example: refilled 6 Jan 2025, due by 1 Apr; booked on 3 Mar for Mon 31 Mar 10:00."""
    implant = refilled_implant(nurse=nurse, on=local(2025, 1, 6))
    appointment = book(implant=implant, nurse=nurse, starts_at=local(2025, 3, 31, 10), now=local(2025, 3, 3, 12))
    return appointment


def test_scan_twice_and_dispatch_twice_make_one_reminder_per_key(booked):
    now = local(2025, 3, 17, 9)
    # when two beats run the scan and the dispatcher
    first, second = reminders_scan(now=now), reminders_scan(now=now)
    c1, c2 = Collector(), Collector()
    d1 = reminders_dispatch(now=now, enqueue=c1)
    d2 = reminders_dispatch(now=now, enqueue=c2)
    # then two rows exist (14 and 2 days; appointment_book planned them), the due one was claimed once
    assert (first.planned, second.planned) == (0, 0)
    assert Reminder.objects.count() == 2
    by_offset = rows(booked)
    assert by_offset[14].send_at == dt.datetime(2025, 3, 17, 9, tzinfo=UTC)
    assert by_offset[2].send_at == dt.datetime(2025, 3, 29, 9, tzinfo=UTC)
    assert d1.claimed == [by_offset[14].pk] and d2.claimed == []
    assert len(c1.calls) == 1 and c2.calls == []
    # and sending the one claim twice (a redelivered message) emails once
    rid, token = c1.calls[0]
    assert reminder_send(reminder_id=rid, claim_token=token, now=now) == SendOutcome.SENT
    assert reminder_send(reminder_id=rid, claim_token=token, now=now) == SendOutcome.SKIPPED
    assert len(patient_emails(booked.patient)) == 1
    row = Reminder.objects.get(pk=rid)
    assert (row.status, row.send_count, row.attempts, row.sent_at) == ("sent", 1, 1, now)


def test_booking_service_hook_creates_rows_in_the_booking_transaction(booked):
    # given appointment_book called the hook: its rows exist, and calling it again does nothing
    assert Reminder.objects.filter(appointment=booked, status="pending").count() == 2
    assert reminders_materialise_for_appointment(appointment=booked, now=local(2025, 3, 3, 12)) == 0
    assert reminders_scan(now=local(2025, 3, 3, 13)).planned == 0
    assert Reminder.objects.filter(status="pending").count() == 2


def test_nothing_before_its_time(booked):
    reminders_scan(now=local(2025, 3, 17, 8, 59))
    collector = Collector()
    assert reminders_dispatch(now=local(2025, 3, 17, 8, 59), enqueue=collector).claimed == []
    assert collector.calls == [] and mail.outbox == []


def test_no_reminders_without_consent_or_for_inactive_patients(nurse):
    no_consent = refilled_implant(nurse=nurse, on=local(2025, 1, 6), reminder_consent=False)
    deceased = refilled_implant(nurse=nurse, on=local(2025, 1, 6))
    no_email = refilled_implant(nurse=nurse, on=local(2025, 1, 6), email="")
    for implant in (no_consent, deceased, no_email):
        book(implant=implant, nurse=nurse, starts_at=local(2025, 3, 31, 10), now=local(2025, 3, 3))
    deceased.patient.status = "deceased"
    deceased.patient.save()
    assert reminders_scan(now=local(2025, 3, 3, 12)).planned == 0
    # the deceased patient's rows were planned at booking, while active, and the scan cancelled them
    assert not Reminder.objects.exclude(patient=deceased.patient).exists()
    assert set(Reminder.objects.values_list("status", "reason_code")) == {("cancelled", "obsolete")}


def test_sms_patients_get_a_text_without_clinical_detail(nurse, sms_outbox):
    implant = refilled_implant(nurse=nurse, on=local(2025, 1, 6), reminder_channel="sms", phone="+447700900456")
    appointment = book(implant=implant, nurse=nurse, starts_at=local(2025, 3, 31, 10), now=local(2025, 3, 3))
    from tests.refills.reminder_helpers import beat

    beat(local(2025, 3, 3, 12))
    beat(local(2025, 3, 17, 9))
    assert [r.channel for r in rows(appointment).values()] == ["sms", "sms"]
    assert (len(sms_outbox) == 1 and mail.outbox == []) or all(m.to != [implant.patient.email] for m in mail.outbox)
    text = sms_outbox[0].body
    assert sms_outbox[0].to == "+447700900456"
    assert "Mon 31 Mar at 10:00" in text and "+44 20 7946 0000" in text
    for clinical in ("baclofen", "refill", "pump", "mcg", "dose"):
        assert clinical not in text.lower()


def test_email_says_date_time_place_and_how_to_reschedule_only(booked):
    from tests.refills.reminder_helpers import beat

    beat(local(2025, 3, 17, 9))
    (message,) = patient_emails(booked.patient)
    assert message.subject == "Reminder: your appointment on Monday 31 March at 10:00"
    assert "Monday 31 March 2025" in message.body and "10:00" in message.body
    assert "ITB clinic room 2" in message.body and "+44 20 7946 0000" in message.body
    for clinical in ("baclofen", "refill", "pump", "mcg", "dose", "alarm"):
        assert clinical not in message.body.lower()


# --- moved and cancelled appointments -----------------------------------------------------
def test_moving_an_appointment_cancels_the_old_pending_rows_and_plans_new_ones(booked, nurse):
    reminders_scan(now=local(2025, 3, 3, 12))
    old = rows(booked)
    # when the nurse moves it to Fri 28 Mar 14:00 and the scan runs
    appointment_move(appointment=booked, starts_at=local(2025, 3, 28, 14), moved_by=nurse, now=local(2025, 3, 4))
    result = reminders_scan(now=local(2025, 3, 4, 12))
    # then the two old rows are cancelled (obsolete) and two new ones announce the new time: the
    # move did both in its own transaction, so the scan finds nothing left to do
    assert (result.cancelled, result.planned) == (0, 0)
    for row in old.values():
        row.refresh_from_db()
        assert (row.status, row.reason_code, row.status_reason) == (
            "cancelled",
            "obsolete",
            "Appointment moved to another time.",
        )
    new = Reminder.objects.filter(appointment=booked, status="pending").order_by("-offset_days")
    assert [(r.offset_days, r.send_at) for r in new] == [
        (14, dt.datetime(2025, 3, 14, 9, tzinfo=UTC)),
        (2, dt.datetime(2025, 3, 26, 9, tzinfo=UTC)),
    ]


def test_moved_after_the_first_reminder_went_the_patient_hears_of_the_new_time(booked, nurse):
    from tests.refills.reminder_helpers import beat

    beat(local(2025, 3, 17, 9))  # the 14-day reminder goes
    appointment_move(appointment=booked, starts_at=local(2025, 3, 27, 11), moved_by=nurse, now=local(2025, 3, 18))
    beat(local(2025, 3, 18, 10))
    beat(local(2025, 3, 25, 9))
    # the sent one stays in the log; for the new time the 14-day one is stale, the 2-day one goes
    log = {(r.appointment_starts_at, r.offset_days): r.status for r in Reminder.objects.all()}
    assert log == {
        (local(2025, 3, 31, 10), 14): "sent",
        (local(2025, 3, 31, 10), 2): "cancelled",
        (local(2025, 3, 27, 11), 14): "cancelled",
        (local(2025, 3, 27, 11), 2): "sent",
    }
    bodies = [m.body for m in patient_emails(booked.patient)]
    assert len(bodies) == 2 and "Thursday 27 March 2025" in bodies[1]


def test_moved_back_to_the_first_time_the_cancelled_rows_return(booked, nurse):
    reminders_scan(now=local(2025, 3, 3, 12))
    appointment_move(appointment=booked, starts_at=local(2025, 3, 28, 14), moved_by=nurse, now=local(2025, 3, 4))
    reminders_scan(now=local(2025, 3, 4, 12))
    appointment_move(appointment=booked, starts_at=local(2025, 3, 31, 10), moved_by=nurse, now=local(2025, 3, 5))
    result = reminders_scan(now=local(2025, 3, 5, 12))
    # the move back cancelled and reopened the rows itself (the hook): the scan has nothing to do
    assert (result.cancelled, result.reopened, result.planned) == (0, 0, 0)
    assert Reminder.objects.filter(status="pending", appointment_starts_at=local(2025, 3, 31, 10)).count() == 2
    assert Reminder.objects.count() == 4


def test_cancelled_appointment_gets_no_reminder(booked, nurse):
    reminders_scan(now=local(2025, 3, 3, 12))
    appointment_cancel(appointment=booked, reason="Patient in hospital", cancelled_by=nurse)
    from tests.refills.reminder_helpers import beat

    beat(local(2025, 3, 17, 9))
    assert set(Reminder.objects.values_list("status", flat=True)) == {"cancelled"}
    assert patient_emails(booked.patient) == []


def test_a_claimed_row_whose_appointment_was_cancelled_meanwhile_is_not_sent(booked, nurse):
    now = local(2025, 3, 17, 9)
    reminders_scan(now=now)
    collector = Collector()
    reminders_dispatch(now=now, enqueue=collector)
    appointment_cancel(appointment=booked, reason="Rebooked by phone", cancelled_by=nurse)
    (rid, token), *_ = collector.calls
    assert reminder_send(reminder_id=rid, claim_token=token, now=now) == SendOutcome.CANCELLED
    assert Reminder.objects.get(pk=rid).status == "cancelled"
    assert patient_emails(booked.patient) == []
    assert attempt_outcomes(rid) == []  # the provider was never called


def test_late_dispatch_sends_only_the_closest_reminder(booked):
    # given the rows exist but nothing dispatched them until the 2-day time (an outage)
    reminders_scan(now=local(2025, 3, 3, 12))
    collector = Collector()
    result = reminders_dispatch(now=local(2025, 3, 29, 9, 5), enqueue=collector)
    by_offset = rows(booked)
    assert result.skipped_stale == 1 and result.claimed == [by_offset[2].pk]
    assert (by_offset[14].status, by_offset[14].reason_code) == ("cancelled", "stale")


# --- the claim token, duplicates, transient failures, recovery ----------------------------
def attempt_outcomes(reminder_id: int) -> list[str]:
    attempts = DeliveryAttempt.objects.filter(reminder_id=reminder_id).order_by("id")
    return list(attempts.values_list("outcome", flat=True))


@pytest.mark.django_db(transaction=True)
def test_each_send_is_an_attempt_committed_before_the_provider_is_called(settings):
    settings.EMAIL_BACKEND = "tests.refills.reminder_test_backends.AttemptWitnessBackend"
    reminder_test_backends.witnessed.clear()
    nurse = factories.NurseFactory()
    implant = refilled_implant(nurse=nurse, on=local(2025, 1, 6))
    appointment = book(implant=implant, nurse=nurse, starts_at=local(2025, 3, 31, 10), now=local(2025, 3, 3, 12))
    now = local(2025, 3, 17, 9)
    collector = Collector()
    reminders_dispatch(now=now, enqueue=collector)
    ((rid, token),) = collector.calls
    # when the send runs (in autocommit, as in the task)
    with time_machine.travel(now, tick=False):
        assert reminder_send(reminder_id=rid, claim_token=token, now=now) == SendOutcome.SENT
    # then the mail server was called once, and at that moment another connection could already
    # read the attempt: committed, in `started`
    assert reminder_test_backends.witnessed == [[(rid, "started")]]
    (attempt,) = DeliveryAttempt.objects.filter(reminder_id=rid)
    (message,) = patient_emails(appointment.patient)
    assert (attempt.channel, attempt.outcome, attempt.started_at, attempt.finished_at) == ("email", "sent", now, now)
    assert attempt.provider_id == message.extra_headers["Message-ID"] == message.message()["Message-ID"]


def test_reminder_send_refuses_to_run_inside_a_transaction(booked):
    # inside the caller's transaction the attempt could not be committed before the provider's call
    # (pytest-django's own transaction lets durable blocks through, so this nests one more)
    now = local(2025, 3, 17, 9)
    collector = Collector()
    reminders_dispatch(now=now, enqueue=collector)
    (rid, token), *_ = collector.calls
    with pytest.raises(RuntimeError, match="durable"), transaction.atomic():
        reminder_send(reminder_id=rid, claim_token=token, now=now)
    assert mail.outbox == [] and attempt_outcomes(rid) == []


def test_an_sms_attempt_keeps_the_providers_message_id(nurse, settings, monkeypatch):
    for name, value in PROVIDER.items():
        setattr(settings, name, value)
    stub = StubHttpClient(Response(201, json.dumps({"sid": "SM42", "status": "queued"})))
    monkeypatch.setattr(sms_backends, "TwilioHttpClient", lambda **kwargs: stub)
    implant = refilled_implant(nurse=nurse, on=local(2025, 1, 6), reminder_channel="sms", phone="+447700900456")
    book(implant=implant, nurse=nurse, starts_at=local(2025, 3, 31, 10), now=local(2025, 3, 3, 12))
    now = local(2025, 3, 17, 9)
    collector = Collector()
    reminders_dispatch(now=now, enqueue=collector)
    ((rid, token),) = collector.calls
    assert reminder_send(reminder_id=rid, claim_token=token, now=now) == SendOutcome.SENT
    assert len(stub.requests) == 1
    (attempt,) = DeliveryAttempt.objects.filter(reminder_id=rid)
    assert (attempt.channel, attempt.outcome, attempt.provider_id) == ("sms", "sent", "SM42")


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing after it runs in the worker (no except clause catches it)."""


def test_a_worker_killed_after_the_provider_call_leaves_an_attempt_and_the_resend_counts_a_duplicate(
    booked, monkeypatch
):
    now = local(2025, 3, 17, 9)
    collector = Collector()
    reminders_dispatch(now=now, enqueue=collector)
    (rid, token), *_ = collector.calls
    real_deliver = delivery._deliver

    def deliver_then_die(**kwargs):
        real_deliver(**kwargs)  # the mail server took it …
        raise WorkerKilled  # … and the worker died before recording so

    monkeypatch.setattr(delivery, "_deliver", deliver_then_die)
    with pytest.raises(WorkerKilled):
        reminder_send(reminder_id=rid, claim_token=token, now=now)
    assert (Reminder.objects.get(pk=rid).status, attempt_outcomes(rid)) == ("sending", ["started"])
    # when the recovery returns the row and it is sent again
    monkeypatch.setattr(delivery, "_deliver", real_deliver)
    later = now + dt.timedelta(minutes=11)
    assert reminders_recover_stuck(now=later).requeued == 1
    retry = Collector()
    reminders_dispatch(now=later, enqueue=retry)
    (_, token2), *_ = retry.calls
    assert reminder_send(reminder_id=rid, claim_token=token2, now=later) == SendOutcome.SENT
    # then the patient got two emails, and the figures say so
    assert len(patient_emails(booked.patient)) == 2
    assert attempt_outcomes(rid) == ["started", "sent"]
    figures = reminder_figures()
    assert (figures.sent, figures.attempts, figures.duplicates, figures.recovered) == (1, 2, 1, 1)
    assert Reminder.objects.get(pk=rid).send_count == 1  # the backend acknowledged one: the row alone undercounts


def test_a_message_from_an_older_claim_does_nothing(booked):
    now = local(2025, 3, 17, 9)
    reminders_scan(now=now)
    collector = Collector()
    reminders_dispatch(now=now, enqueue=collector)
    (rid, _token), *_ = collector.calls
    assert reminder_send(reminder_id=rid, claim_token=str(uuid.uuid4()), now=now) == SendOutcome.SKIPPED
    assert Reminder.objects.get(pk=rid).status == "sending" and mail.outbox == []


def test_dispatch_task_enqueues_after_commit_only(booked, monkeypatch, django_capture_on_commit_callbacks):
    reminders_scan(now=local(2025, 3, 17, 9))
    published = []
    monkeypatch.setattr(send_reminder_task, "apply_async", lambda args, kwargs: published.append((args, kwargs)))
    with time_machine.travel(local(2025, 3, 17, 9, 1), tick=False):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            assert dispatch_reminders_task() == 1
        assert published == []  # nothing before the commit
        for callback in callbacks:
            callback()
    row = Reminder.objects.get(status="sending")
    assert published == [((row.pk,), {"claim_token": str(row.claim_token)})]


def test_transient_failure_is_retried_then_sent(booked, monkeypatch):
    # given the database fails on the first attempt (PostgreSQL restarting)
    now = local(2025, 3, 17, 9)
    reminders_scan(now=now)
    collector = Collector()
    reminders_dispatch(now=now, enqueue=collector)
    (rid, token), *_ = collector.calls
    real_deliver = delivery._deliver
    calls = []

    def flaky(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real_deliver(**kwargs)

    monkeypatch.setattr(delivery, "_deliver", flaky)
    # when the task runs (locally, with its real retry policy; eager retries do not sleep)
    with time_machine.travel(now, tick=False):
        send_reminder_task.apply(args=(rid,), kwargs={"claim_token": token})
    # then it was retried once and sent once; nothing is left in sending
    row = Reminder.objects.get(pk=rid)
    assert (row.status, row.attempts, row.send_count) == ("sent", 2, 1)
    assert len(patient_emails(booked.patient)) == 1
    assert not Reminder.objects.filter(status="sending").exists()
    # two hand-overs on record; the first failed, so its retry is no duplicate
    assert attempt_outcomes(rid) == ["error", "sent"]
    assert "OperationalError" in DeliveryAttempt.objects.get(reminder_id=rid, outcome="error").error
    assert (reminder_figures().attempts, reminder_figures().duplicates) == (2, 0)


def test_smtp_failing_retries_then_fails_and_alerts_the_nurses(booked, settings):
    settings.EMAIL_BACKEND = "tests.refills.reminder_test_backends.FailingSmtpBackend"
    now = local(2025, 3, 17, 9)
    reminders_scan(now=now)
    collector = Collector()
    reminders_dispatch(now=now, enqueue=collector)
    (rid, token), *_ = collector.calls
    with time_machine.travel(now, tick=False):
        send_reminder_task.apply(args=(rid,), kwargs={"claim_token": token})
    row = Reminder.objects.get(pk=rid)
    assert (row.status, row.reason_code, row.attempts, row.send_count) == (
        "failed",
        "failed",
        send_reminder_task.max_retries + 1,
        0,
    )
    assert "SMTPServerDisconnected" in row.last_error
    (alert,) = alert_list_open(audience="nurses").filter(kind=Alert.Kind.REMINDER_FAILED)
    assert (alert.patient_id, alert.reminder_id, alert.key_date) == (booked.patient_id, rid, dt.date(2025, 3, 17))
    assert "could not be sent" in alert.message


def test_refused_address_fails_at_once(booked, monkeypatch):
    now = local(2025, 3, 17, 9)
    reminders_scan(now=now)
    collector = Collector()
    reminders_dispatch(now=now, enqueue=collector)
    (rid, token), *_ = collector.calls

    def refuse(**kwargs):
        raise smtplib.SMTPRecipientsRefused({"x@example.org": (550, b"no such user")})

    monkeypatch.setattr(delivery, "_deliver", refuse)
    with time_machine.travel(now, tick=False):
        send_reminder_task.apply(args=(rid,), kwargs={"claim_token": token})
    row = Reminder.objects.get(pk=rid)
    assert (row.status, row.attempts) == ("failed", 1)
    assert Alert.objects.filter(kind=Alert.Kind.REMINDER_FAILED, reminder_id=rid).count() == 1
    assert attempt_outcomes(rid) == ["refused"]
    assert reminder_figures().duplicates == 0


def test_rows_stuck_in_sending_return_to_pending_and_go_once(booked):
    now = local(2025, 3, 17, 9)
    reminders_scan(now=now)
    lost = Collector()  # the broker lost these messages
    reminders_dispatch(now=now, enqueue=lost)
    # nine minutes later: not yet stuck
    assert reminders_recover_stuck(now=now + dt.timedelta(minutes=9)).requeued == 0
    # eleven minutes later: back to pending, claimed again, sent once
    assert reminders_recover_stuck(now=now + dt.timedelta(minutes=11)).requeued == 1
    retry = Collector()
    reminders_dispatch(now=now + dt.timedelta(minutes=11), enqueue=retry)
    (rid, token), *_ = retry.calls
    assert token != lost.calls[0][1]
    assert reminder_send(reminder_id=rid, claim_token=token, now=now) == SendOutcome.SENT
    # the old message, if the broker ever delivers it, does nothing
    assert reminder_send(reminder_id=rid, claim_token=lost.calls[0][1], now=now) == SendOutcome.SKIPPED
    row = Reminder.objects.get(pk=rid)
    assert (row.status, row.send_count, row.recovered_count) == ("sent", 1, 1)
    figures = reminder_figures()
    assert (figures.sent, figures.duplicates, figures.recovered, figures.pending) == (1, 0, 1, 1)


def test_a_slow_send_overtaken_by_recovery_is_counted_as_a_duplicate(booked):
    now = local(2025, 3, 17, 9)
    reminders_scan(now=now)
    first = Collector()
    reminders_dispatch(now=now, enqueue=first)
    (rid, token1), *_ = first.calls
    # the first worker is slow; the row is recovered and claimed again, and both finish
    Reminder.objects.filter(pk=rid).update(claimed_at=now - dt.timedelta(minutes=30))
    reminders_recover_stuck(now=now)
    second = Collector()
    reminders_dispatch(now=now, enqueue=second)
    (_, token2), *_ = second.calls
    assert reminder_send(reminder_id=rid, claim_token=token2, now=now) == SendOutcome.SENT
    row = Reminder.objects.get(pk=rid)
    assert row.status == "sent"
    # the first would now skip (its claim is gone): a duplicate only happens if it was already past that check
    assert reminder_send(reminder_id=rid, claim_token=token1, now=now) == SendOutcome.SKIPPED
    assert reminder_figures().duplicates == 0


def test_a_row_stuck_again_and_again_fails_to_the_nurses(booked):
    now = local(2025, 3, 17, 9)
    reminders_scan(now=now)
    reminders_dispatch(now=now, enqueue=Collector())
    Reminder.objects.filter(status="sending").update(recovered_count=6)
    result = reminders_recover_stuck(now=now + dt.timedelta(minutes=11), max_recoveries=6)
    assert (result.requeued, result.failed) == (0, 1)
    assert Alert.objects.filter(kind=Alert.Kind.REMINDER_FAILED).count() == 1


def test_reminder_log_selector(booked):
    from tests.refills.reminder_helpers import beat

    beat(local(2025, 3, 17, 9))
    log = reminder_list(patient=booked.patient)
    assert [(r.offset_days, r.status) for r in log] == [(2, "pending"), (14, "sent")]
    assert [r.offset_days for r in reminder_list(status="sent")] == [14]


def test_offsets_and_hour_come_from_the_clinic_settings(booked):
    clinic = ClinicSettings.load()
    clinic.reminder_offsets_days = [7]
    clinic.reminder_hour = 17
    clinic.save()
    reminders_scan(now=local(2025, 3, 3, 12))
    # the 14- and 2-day rows planned at booking are cancelled as obsolete; the 7-day one replaces them
    assert [(r.offset_days, r.send_at) for r in Reminder.objects.filter(status="pending")] == [
        (7, dt.datetime(2025, 3, 24, 17, tzinfo=UTC))
    ]
    assert Appointment.objects.get().status == "booked"


def test_booking_hook_follows_moves_and_cancellations_like_the_scan(booked, nurse):
    hook = reminders_materialise_for_appointment
    # appointment_book, _move and _cancel call the hook themselves: calling it again adds nothing
    assert hook(appointment=booked, now=local(2025, 3, 3, 12)) == 0
    # moved: the old pending rows are cancelled, two new ones planned (no scan needed)
    appointment_move(appointment=booked, starts_at=local(2025, 3, 28, 14), moved_by=nurse, now=local(2025, 3, 4))
    assert Reminder.objects.filter(status="pending", appointment_starts_at=local(2025, 3, 28, 14)).count() == 2
    assert hook(appointment=booked, now=local(2025, 3, 4, 12)) == 0
    assert reminders_scan(now=local(2025, 3, 4, 13)) == ReminderScanResult(0, 0, 0)
    # moved back: the first rows return, nothing new is created
    appointment_move(appointment=booked, starts_at=local(2025, 3, 31, 10), moved_by=nurse, now=local(2025, 3, 5))
    assert hook(appointment=booked, now=local(2025, 3, 5, 12)) == 0
    assert set(Reminder.objects.filter(status="pending").values_list("appointment_starts_at", flat=True)) == {
        local(2025, 3, 31, 10)
    }
    # cancelled: nothing pending is left
    appointment_cancel(appointment=booked, reason="Moved away", cancelled_by=nurse)
    assert hook(appointment=booked, now=local(2025, 3, 6, 12)) == 0
    assert not Reminder.objects.filter(status="pending").exists()
    assert Reminder.objects.count() == 4


def test_broker_down_at_publish_leaves_the_row_for_the_recovery(
    booked, monkeypatch, django_capture_on_commit_callbacks
):
    reminders_scan(now=local(2025, 3, 17, 9))

    def broker_down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(send_reminder_task, "apply_async", broker_down)
    # the publish fails after commit; robust on_commit logs it and the dispatcher does not crash
    with time_machine.travel(local(2025, 3, 17, 9, 1), tick=False), django_capture_on_commit_callbacks(execute=True):
        assert dispatch_reminders_task() == 1
    row = Reminder.objects.get(offset_days=14)
    assert row.status == "sending"
    # ten minutes later the recovery returns it to pending, and the next dispatch claims it again
    assert reminders_recover_stuck(now=local(2025, 3, 17, 9, 12)).requeued == 1
    assert reminders_dispatch(now=local(2025, 3, 17, 9, 12), enqueue=Collector()).claimed == [row.pk]


def test_replacement_surgery_is_reminded_like_any_appointment(nurse):
    implant = refilled_implant(nurse=nurse, on=local(2025, 1, 6))
    surgery = book(
        implant=implant, nurse=nurse, kind="replacement", starts_at=local(2025, 6, 2, 8), now=local(2025, 5, 1)
    )
    reminders_scan(now=local(2025, 5, 1, 12))
    assert sorted((r.offset_days, r.send_at) for r in Reminder.objects.filter(appointment=surgery)) == [
        (2, dt.datetime(2025, 5, 31, 8, tzinfo=UTC)),
        (14, dt.datetime(2025, 5, 19, 8, tzinfo=UTC)),
    ]
