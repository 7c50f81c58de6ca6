"""Appointments of every kind booked, moved, cancelled, attended or missed; the patient's change
requests met, declined or withdrawn; the patient told by their channel; the yearly review.

Frozen on Thursday 20 March 2025, 09:00 London. The pump follows docs/domain.md's worked example:
refilled 2025-01-06 → due by 2025-04-01, alarm 2025-04-06.
"""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from itbclinic.celery import app
from patients.models import Patient
from refills.calculations import annual_review_due
from refills.forms import first_slot_after
from refills.models import Alert, Appointment, AppointmentChangeRequest, AppointmentNotice, Reminder
from refills.no_shows import appointment_mark_no_show
from refills.notices import SEND_TASK, appointment_notice_send
from refills.selectors import patient_get_annual_review, patient_list_annual_review_due
from refills.services import (
    appointment_book,
    appointment_cancel,
    appointment_change_request_create,
    appointment_change_request_decline,
    appointment_change_request_withdraw,
    appointment_mark_attended,
    appointment_move,
)
from refills.tasks import send_appointment_notice_task
from tests import factories
from tests.helpers import refill_record

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
NOW = dt.datetime(2025, 3, 20, 9, 0, tzinfo=LONDON)
TODAY = NOW.date()


def at(y, m, d, h=10, minute=0) -> dt.datetime:
    return dt.datetime(y, m, d, h, minute, tzinfo=LONDON)


@pytest.fixture
def frozen(clock):
    return clock(NOW)


@pytest.fixture
def implant(db, nurse, frozen):
    pump = factories.ImplantFactory(
        implanted_on=dt.date(2024, 6, 3),
        patient=factories.PatientFactory(given_name="Grace", family_name="Hopper", mrn="MRN-GH"),
    )
    refill_record(implant=pump, by=nurse, at=at(2025, 1, 6))
    pump.refresh_from_db()
    return pump


@pytest.fixture
def refill(implant, nurse):
    return appointment_book(patient=implant.patient, kind="refill", starts_at=at(2025, 3, 31), booked_by=nurse, now=NOW)


def _request(appointment, *, preferred=dt.date(2025, 3, 27), message="I am away on the 31st"):
    return appointment_change_request_create(
        appointment=appointment,
        requested_by=appointment.patient.user or factories.PatientUserFactory(),
        preferred_date=preferred,
        message=message,
        today=TODAY,
    )


def _send_all() -> list[str]:
    return [
        appointment_notice_send(notice_id=pk, now=NOW)
        for pk in AppointmentNotice.objects.order_by("pk").values_list("pk", flat=True)
    ]


# ---------------------------------------------------------------------------
# Change requests end to end
# ---------------------------------------------------------------------------


def test_moving_the_appointment_closes_the_open_request_and_tells_the_patient(
    refill, nurse, django_capture_on_commit_callbacks
):
    request = _request(refill)
    alert = Alert.objects.get(kind=Alert.Kind.CHANGE_REQUEST, appointment=refill)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        appointment_move(appointment=refill, starts_at=at(2025, 3, 27, 11, 30), moved_by=nurse, now=NOW)

    request.refresh_from_db()
    assert (request.status, request.handled_by, request.handled_at) == ("done", nurse, NOW)
    assert request.moved_to == at(2025, 3, 27, 11, 30)
    alert.refresh_from_db()
    assert alert.resolved_at == NOW and alert.resolution == "Moved to 27 Mar 2025 11:30."
    # The request leaves the worklist (open requests only).
    assert not AppointmentChangeRequest.objects.filter(status="open").exists()
    # One notice, enqueued after commit, by email (the patient's reminder channel).
    notice = AppointmentNotice.objects.get()
    assert (notice.kind, notice.channel, notice.status) == ("moved", "email", "pending")
    assert len(callbacks) == 1
    assert _send_all() == ["sent"]
    message = mail.outbox[0]
    assert message.to == ["mrn-gh@example.org"]
    assert message.subject == "Your appointment has moved to Thursday 27 March at 11:30"
    assert "Your refill appointment at ITB Clinic has moved." in message.body
    assert "New date:  Thursday 27 March 2025" in message.body
    assert "New time:  11:30" in message.body
    assert "(It was on Monday 31 March 2025 at 10:00.)" in message.body
    assert "Grace" not in message.body and "Hopper" not in message.body  # addressed generically
    notice.refresh_from_db()
    assert (notice.status, notice.sent_at) == ("sent", NOW)
    # A redelivered task sends nothing more.
    assert appointment_notice_send(notice_id=notice.pk, now=NOW) == "skipped"
    assert len(mail.outbox) == 1


def test_declining_closes_the_request_with_its_reason_and_texts_the_patient(refill, nurse, sms_outbox):
    Patient.objects.filter(pk=refill.patient_id).update(reminder_channel="sms")
    request = _request(refill)

    appointment_change_request_decline(
        change_request=request, reason="The 27th is fully booked.", declined_by=nurse, now=NOW
    )

    request.refresh_from_db()
    assert (request.status, request.response, request.handled_by) == ("declined", "The 27th is fully booked.", nurse)
    assert Alert.objects.get(kind=Alert.Kind.CHANGE_REQUEST).resolution == "Declined: The 27th is fully booked."
    refill.refresh_from_db()
    assert refill.starts_at == at(2025, 3, 31) and refill.status == "booked"
    assert _send_all() == ["sent"]
    assert [m.to for m in sms_outbox] == ["+447911123456"]
    assert sms_outbox[0].body == (
        "ITB Clinic: we could not change your refill appointment: The 27th is fully booked. "
        "It stays on Mon 31 Mar at 10:00. Call +44 20 7946 0000."
    )


def test_a_decline_needs_a_reason_and_leaves_the_request_open(refill, nurse):
    request = _request(refill)
    with pytest.raises(ValidationError) as caught:
        appointment_change_request_decline(change_request=request, reason="  ", declined_by=nurse, now=NOW)
    assert list(caught.value.message_dict) == ["reason"]
    request.refresh_from_db()
    assert request.status == "open"
    assert not AppointmentNotice.objects.exists()


def test_a_closed_request_cannot_be_declined_or_withdrawn_again(refill, nurse):
    request = _request(refill)
    appointment_change_request_withdraw(change_request=request, withdrawn_by=request.requested_by, now=NOW)
    for close in (
        lambda: appointment_change_request_decline(change_request=request, reason="No", declined_by=nurse),
        lambda: appointment_change_request_withdraw(change_request=request, withdrawn_by=request.requested_by),
    ):
        with pytest.raises(ValidationError) as caught:
            close()
        assert caught.value.message_dict == {"status": ["This request is already closed (withdrawn)."]}


def test_the_patient_withdraws_and_may_ask_again(refill):
    first = _request(refill)
    appointment_change_request_withdraw(change_request=first, withdrawn_by=first.requested_by, now=NOW)
    first.refresh_from_db()
    assert (first.status, first.handled_at) == ("withdrawn", NOW)
    alert = Alert.objects.get(kind=Alert.Kind.CHANGE_REQUEST)
    assert alert.resolution == "Withdrawn by the patient." and alert.resolved_at == NOW
    assert not AppointmentNotice.objects.exists()  # the patient knows: nothing to tell them

    again = _request(refill, preferred=dt.date(2025, 3, 26), message="The 26th after all")
    assert again.status == "open"
    alert.refresh_from_db()
    assert alert.resolved_at is None and "The 26th after all" in alert.message


def test_a_date_after_the_due_by_date_goes_to_the_nurses_as_urgent(refill, implant):
    assert implant.forecast_due_by == dt.date(2025, 4, 1)
    request = _request(refill, preferred=dt.date(2025, 4, 2))
    assert request.urgent is True
    alert = Alert.objects.get(kind=Alert.Kind.CHANGE_REQUEST)
    assert alert.severity == Alert.Severity.URGENT
    assert alert.message.startswith("URGENT: the date asked for is after the pump's due-by date (1 Apr 2025).")


def test_a_date_on_the_due_by_date_is_an_ordinary_request(refill):
    request = _request(refill, preferred=dt.date(2025, 4, 1))
    assert request.urgent is False
    assert Alert.objects.get(kind=Alert.Kind.CHANGE_REQUEST).severity == Alert.Severity.WARNING


def test_cancelling_closes_the_request_and_tells_the_patient(refill, nurse):
    request = _request(refill)
    appointment_cancel(appointment=refill, reason="Nurse off sick", cancelled_by=nurse, now=NOW)
    request.refresh_from_db()
    assert request.status == "cancelled"
    assert _send_all() == ["sent"]
    body = mail.outbox[0].body
    assert mail.outbox[0].subject == "Your appointment on Monday 31 March is cancelled"
    assert "Your refill appointment at ITB Clinic on Monday 31 March 2025 at 10:00 has been cancelled." in body
    assert "Your pump still needs its refill" in body
    assert "Nurse off sick" not in body  # the clinic's own note stays with the clinic


def test_a_patient_without_consent_is_not_messaged(refill, nurse):
    Patient.objects.filter(pk=refill.patient_id).update(reminder_consent=False)
    appointment_move(appointment=refill, starts_at=at(2025, 3, 27), moved_by=nurse, now=NOW)
    appointment_cancel(appointment=refill, reason="Changed plans", cancelled_by=nurse, now=NOW)
    assert not AppointmentNotice.objects.exists()


def test_a_transient_send_error_leaves_the_notice_pending_for_the_retry(refill, nurse, monkeypatch):
    appointment_move(appointment=refill, starts_at=at(2025, 3, 27), moved_by=nurse, now=NOW)
    notice = AppointmentNotice.objects.get()

    def broken(self, fail_silently=False):
        raise ConnectionError("mail server down")

    monkeypatch.setattr("django.core.mail.EmailMessage.send", broken)
    with pytest.raises(ConnectionError):
        appointment_notice_send(notice_id=notice.pk, now=NOW)
    notice.refresh_from_db()
    assert (notice.status, notice.attempts, notice.last_error) == ("pending", 1, "ConnectionError: mail server down")


def test_the_send_task_is_registered_under_the_name_the_notices_enqueue(refill, nurse):
    appointment_move(appointment=refill, starts_at=at(2025, 3, 27), moved_by=nurse, now=NOW)
    notice = AppointmentNotice.objects.get()
    assert app.tasks[SEND_TASK].name == send_appointment_notice_task.name == SEND_TASK
    # The task is the thin adapter: it sends the notice once.
    assert send_appointment_notice_task(notice.pk) == "sent"
    assert send_appointment_notice_task(notice.pk) == "skipped"
    assert len(mail.outbox) == 1


# ---------------------------------------------------------------------------
# Every kind: booked, moved, cancelled, no-show; reminders in the same transaction
# ---------------------------------------------------------------------------

KINDS = ["refill", "review", "trial", "replacement"]


# (kind, booked at, moved to, reminders pending at the new time). A refill must stay in its safe
# window (11 Mar – 1 Apr), so its 14-day reminder is already past when booked: planned as stale.
KIND_TIMES = [
    ("refill", at(2025, 3, 31), at(2025, 3, 28, 14), 1),
    ("review", at(2025, 4, 10), at(2025, 4, 15, 14), 2),
    ("trial", at(2025, 4, 10), at(2025, 4, 15, 14), 2),
    ("replacement", at(2025, 4, 10), at(2025, 4, 15, 14), 2),
]


@pytest.mark.parametrize(("kind", "starts_at", "moved_to", "pending_after_move"), KIND_TIMES)
def test_every_kind_is_booked_with_its_reminders_moved_and_cancelled(
    kind, starts_at, moved_to, pending_after_move, implant, nurse
):
    appointment = appointment_book(patient=implant.patient, kind=kind, starts_at=starts_at, booked_by=nurse, now=NOW)
    # No scan ran: the rows exist because booking planned them in its own transaction.
    rows = Reminder.objects.filter(appointment=appointment, appointment_starts_at=starts_at)
    assert sorted(rows.values_list("offset_days", flat=True)) == [2, 14]
    two_days = rows.get(offset_days=2)
    assert (two_days.status, two_days.send_at) == ("pending", starts_at.replace(hour=9) - dt.timedelta(days=2))

    appointment_move(appointment=appointment, starts_at=moved_to, moved_by=nurse, now=NOW)
    assert not Reminder.objects.filter(appointment=appointment, appointment_starts_at=starts_at, status="pending")
    assert (
        Reminder.objects.filter(appointment=appointment, appointment_starts_at=moved_to, status="pending").count()
        == pending_after_move
    )
    assert AppointmentNotice.objects.get(appointment=appointment).kind == "moved"

    appointment_cancel(appointment=appointment, reason="Patient unwell", cancelled_by=nurse, now=NOW)
    appointment.refresh_from_db()
    assert appointment.status == "cancelled"
    assert not Reminder.objects.filter(appointment=appointment, status="pending").exists()
    assert list(AppointmentNotice.objects.filter(appointment=appointment).values_list("kind", flat=True)) == [
        "cancelled",
        "moved",
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_can_be_marked_no_show(kind, implant, nurse, clock):
    appointment = appointment_book(
        patient=implant.patient, kind=kind, starts_at=at(2025, 3, 21, 10), booked_by=nurse, now=NOW
    )
    later = clock(at(2025, 3, 21, 15))
    appointment_mark_no_show(appointment=appointment, now=later)
    appointment.refresh_from_db()
    assert appointment.status == "no_show"


@pytest.mark.parametrize("kind", ["review", "trial", "replacement"])
def test_a_review_trial_or_replacement_is_marked_attended(kind, implant, nurse):
    appointment = appointment_book(
        patient=implant.patient, kind=kind, starts_at=at(2025, 3, 21, 10), booked_by=nurse, now=NOW
    )
    with pytest.raises(ValidationError):
        appointment_mark_attended(appointment=appointment, by=nurse, now=NOW)  # not yet happened
    appointment_mark_attended(appointment=appointment, by=nurse, now=at(2025, 3, 21, 11))
    appointment.refresh_from_db()
    assert appointment.status == "completed"


def test_a_refill_is_completed_by_its_visit_not_marked_attended(refill, nurse):
    with pytest.raises(ValidationError) as caught:
        appointment_mark_attended(appointment=refill, by=nurse, now=at(2025, 4, 1))
    assert caught.value.message_dict == {"status": ["A refill is completed by recording the refill visit."]}


# ---------------------------------------------------------------------------
# Proposals are never in the past
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at(2025, 3, 20, 7, 0), (dt.date(2025, 3, 20), "08:00")),
        (at(2025, 3, 20, 9, 0), (dt.date(2025, 3, 20), "09:30")),  # strictly after now
        (at(2025, 3, 20, 9, 10), (dt.date(2025, 3, 20), "09:30")),
        (at(2025, 3, 20, 17, 30), (dt.date(2025, 3, 21), "08:00")),  # the last slot has come
        (at(2025, 3, 20, 22, 0), (dt.date(2025, 3, 21), "08:00")),
        # UTC midnight is 00:00 in London in winter, 01:00 in summer: the clinic's day counts.
        (dt.datetime(2025, 6, 30, 23, 30, tzinfo=dt.UTC), (dt.date(2025, 7, 1), "08:00")),
    ],
)
def test_the_first_proposed_time_is_after_now_in_the_clinic_zone(now, expected):
    assert first_slot_after(now) == expected


# ---------------------------------------------------------------------------
# The annual review
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last_review_on", "implanted_on", "booked", "due_on", "is_due"),
    [
        (None, dt.date(2024, 3, 1), False, dt.date(2025, 3, 1), True),  # a year after the implant
        (None, dt.date(2024, 6, 3), False, dt.date(2025, 6, 3), False),  # not yet within 28 days
        (None, dt.date(2024, 4, 17), False, dt.date(2025, 4, 17), True),  # exactly 28 days ahead
        (None, dt.date(2024, 4, 18), False, dt.date(2025, 4, 18), False),  # 29 days ahead
        (dt.date(2024, 5, 1), dt.date(2020, 1, 1), False, dt.date(2025, 5, 1), False),  # reviewed 11 months ago
        (dt.date(2024, 3, 10), dt.date(2020, 1, 1), False, dt.date(2025, 3, 10), True),  # over 12 months ago
        (dt.date(2024, 3, 10), dt.date(2020, 1, 1), True, dt.date(2025, 3, 10), False),  # one is booked
        (dt.date(2024, 2, 29), dt.date(2020, 1, 1), False, dt.date(2025, 2, 28), True),  # leap day
    ],
)
def test_annual_review_rule(last_review_on, implanted_on, booked, due_on, is_due):
    review = annual_review_due(
        last_review_on=last_review_on, implanted_on=implanted_on, review_booked=booked, today=TODAY, notice_days=28
    )
    assert review is not None and (review.due_on, review.is_due) == (due_on, is_due)


def test_no_annual_review_without_a_pump():
    assert (
        annual_review_due(last_review_on=None, implanted_on=None, review_booked=False, today=TODAY, notice_days=28)
        is None
    )


def test_the_clinic_list_of_reviews_due_agrees_with_each_patients_rule(nurse, frozen):
    """The worklist's one-pass query (the last review done joined and grouped) gives, for every
    patient, the due date and the decision the per-patient rule gives: several reviews done (the
    latest counts), one entered in error or missed (not counted), a leap day, one booked."""

    def review(patient, day, status):
        return factories.AppointmentFactory(
            patient=patient, implant=None, kind="review", status=status, starts_at=at(day.year, day.month, day.day)
        )

    implanted = {}
    for name, implanted_on in [
        ("never", dt.date(2023, 7, 1)),
        ("several", dt.date(2019, 5, 5)),
        ("recent", dt.date(2020, 1, 1)),
        ("in-error", dt.date(2022, 9, 9)),
        ("missed", dt.date(2022, 10, 10)),
        ("leap", dt.date(2018, 1, 1)),
        ("booked", dt.date(2021, 1, 1)),
        ("new", dt.date(2024, 12, 1)),
    ]:
        implanted[name] = factories.ImplantFactory(implanted_on=implanted_on).patient
    review(implanted["several"], dt.date(2022, 3, 1), "completed")
    review(implanted["several"], dt.date(2024, 3, 2), "completed")
    review(implanted["several"], dt.date(2023, 3, 1), "completed")
    review(implanted["recent"], dt.date(2024, 11, 1), "completed")
    wrong = review(implanted["in-error"], dt.date(2024, 12, 1), "completed")
    Appointment.objects.filter(pk=wrong.pk).update(entered_in_error=True, entered_in_error_reason="wrong patient")
    review(implanted["missed"], dt.date(2024, 12, 1), "no_show")
    review(implanted["leap"], dt.date(2024, 2, 29), "completed")
    review(implanted["booked"], dt.date(2025, 4, 1), "booked")

    listed = {implant.patient_id: review.due_on for implant, review in patient_list_annual_review_due(today=TODAY)}
    expected = {}
    for patient in implanted.values():
        rule = patient_get_annual_review(patient=patient, today=TODAY)
        if rule.is_due:
            expected[patient.pk] = rule.due_on
    assert listed == expected
    assert listed == {
        implanted["never"].pk: dt.date(2024, 7, 1),
        implanted["several"].pk: dt.date(2025, 3, 2),
        implanted["in-error"].pk: dt.date(2023, 9, 9),
        implanted["missed"].pk: dt.date(2023, 10, 10),
        implanted["leap"].pk: dt.date(2025, 2, 28),
    }


def test_annual_review_is_proposed_once_a_year_per_patient(nurse, frozen, django_assert_num_queries):
    # given a pump implanted 20 months ago and never reviewed
    implant = factories.ImplantFactory(implanted_on=dt.date(2023, 7, 1))
    patient = implant.patient
    assert patient_get_annual_review(patient=patient, today=TODAY).is_due
    with django_assert_num_queries(2):  # the settings row, then one query for the whole clinic
        assert [i.patient_id for i, _ in patient_list_annual_review_due(today=TODAY)] == [patient.pk]
    # when a review is booked, it is no longer proposed
    review = appointment_book(patient=patient, kind="review", starts_at=at(2025, 3, 24), booked_by=nurse, now=NOW)
    assert not patient_get_annual_review(patient=patient, today=TODAY).is_due
    assert patient_list_annual_review_due(today=TODAY) == []
    # then once it is done, the next falls due a year later
    appointment_mark_attended(appointment=review, by=nurse, now=at(2025, 3, 24, 11))
    next_review = patient_get_annual_review(patient=patient, today=TODAY)
    assert (next_review.due_on, next_review.is_due) == (dt.date(2026, 3, 24), False)
    assert patient_get_annual_review(patient=patient, today=dt.date(2026, 2, 24)).is_due
    # a cancelled or missed review does not count as done
    Appointment.objects.filter(pk=review.pk).update(status="no_show")
    assert patient_get_annual_review(patient=patient, today=TODAY).due_on == dt.date(2024, 7, 1)
