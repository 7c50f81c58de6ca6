"""Field-safety notices (issue 14, item 2): flag a recall search, tell the patients, record the action.

The clinic of tests/refills/test_recall.py: serials NGP1000–1002 and NGP2000–2001, lot A at two
fills, lot B at two refills (Three and Four), Two explanted.
"""

import datetime as dt
import smtplib

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AccessLog
from core.records import HardDeleteForbidden
from patients.models import Patient
from refills import field_safety
from refills.messaging import SmsPermanentError
from refills.models import FieldSafetyFlag, FieldSafetyNotice
from refills.recall import RecallCriteria, recall_criteria_describe, recall_search
from tests.helpers import refill_record
from tests.refills.reminder_helpers import local
from tests.refills.test_recall import NOW, _pump, seed

pytestmark = pytest.mark.django_db

LOT_B = RecallCriteria(drug_lot="LOT-B")
RANGE_1 = RecallCriteria(serial_from="NGP1000", serial_to="NGP1999")


def _flag(clinician, criteria=LOT_B, *, reference="FA-2025-07", title="Motor stall advisory", now=NOW):
    return field_safety.field_safety_flag_recall(
        criteria=criteria,
        title=title,
        reference=reference,
        manufacturer_text="Interrogate the pump at the next refill; check the motor stall log.",
        by=clinician,
        visible=Patient.objects.valid(),
        now=now,
    )


def _serials(notice) -> list[str]:
    return sorted(FieldSafetyFlag.objects.filter(notice=notice).values_list("implant__serial_number", flat=True))


@pytest.fixture
def clinic(nurse):
    return seed(nurse)


# ---------------------------------------------------------------------------
# Flagging
# ---------------------------------------------------------------------------


def test_flagging_a_search_flags_each_pump_once_and_keeps_the_criteria_in_words(clinic, clinician):
    # when the clinician flags every pump of lot B
    result = _flag(clinician)

    # then the notice holds its title, reference, author and the search in words
    notice = result.notice
    assert (notice.title, notice.reference, notice.issued_by, notice.issued_at) == (
        "Motor stall advisory",
        "FA-2025-07",
        clinician,
        NOW,
    )
    assert notice.criteria == "2025-06-02 09:00: Drug lot LOT-B (2 pumps)"
    assert (result.flagged, result.already) == (2, 0)
    assert _serials(notice) == ["NGP1002", "NGP2000"]
    flags = FieldSafetyFlag.objects.filter(notice=notice)
    assert {(f.status, f.contact, f.patient_id == f.implant.patient_id) for f in flags} == {("open", "", True)}
    assert sorted(result.patient_ids) == sorted(f.patient_id for f in flags)
    # with a history row each (django-simple-history), written by the clinician
    assert FieldSafetyFlag.history.filter(notice_id=notice.pk, history_type="+").count() == 2
    assert set(FieldSafetyFlag.history.values_list("history_user", flat=True)) == {clinician.pk}


def test_flagging_again_under_the_same_reference_adds_only_the_pumps_not_yet_flagged(clinic, clinician):
    first = _flag(clinician)
    flag = FieldSafetyFlag.objects.get(notice=first.notice, implant__serial_number="NGP1002")
    field_safety.field_safety_action_record(flag=flag, action_taken="Interrogated: no stall.", by=clinician, now=NOW)

    # the same search again (a second click, another day): nothing new, the recorded action kept
    again = _flag(clinician, reference="fa-2025-07", now=NOW + dt.timedelta(days=1))
    assert (again.notice, again.flagged, again.already, again.patient_ids) == (first.notice, 0, 2, ())
    assert FieldSafetyFlag.objects.count() == 2
    flag.refresh_from_db()
    assert (flag.status, flag.action_taken) == ("closed", "Interrogated: no stall.")

    # a wider search under the same reference adds the serial range's other two pumps
    wider = _flag(clinician, RANGE_1, now=NOW + dt.timedelta(days=2))
    assert (wider.notice, wider.flagged, wider.already) == (first.notice, 2, 1)
    assert _serials(first.notice) == ["NGP1000", "NGP1001", "NGP1002", "NGP2000"]
    wider.notice.refresh_from_db()
    assert wider.notice.criteria.splitlines() == [
        "2025-06-02 09:00: Drug lot LOT-B (2 pumps)",
        "2025-06-04 09:00: Serials NGP1000 to NGP1999 (2 pumps)",
    ]
    assert FieldSafetyNotice.objects.count() == 1


def test_the_database_refuses_a_second_flag_of_one_pump_on_one_notice(clinic, clinician):
    result = _flag(clinician)
    flag = FieldSafetyFlag.objects.filter(notice=result.notice).first()
    with pytest.raises(IntegrityError), transaction.atomic():
        FieldSafetyFlag.objects.create(notice=result.notice, implant=flag.implant, patient=flag.patient)
    assert FieldSafetyFlag.objects.count() == 2


def test_a_notice_and_its_flags_are_never_hard_deleted(clinic, clinician):
    result = _flag(clinician)
    with pytest.raises(HardDeleteForbidden):
        FieldSafetyFlag.objects.filter(notice=result.notice).first().delete()
    with pytest.raises(HardDeleteForbidden):
        FieldSafetyNotice.objects.all().delete()
    assert FieldSafetyFlag.objects.count() == 2


@pytest.mark.parametrize(
    "fields,field",
    [
        ({"title": "  "}, "title"),
        ({"reference": ""}, "reference"),
    ],
)
def test_a_notice_needs_its_title_and_reference(clinic, clinician, fields, field):
    with pytest.raises(ValidationError) as raised:
        _flag(clinician, **fields)
    assert field in raised.value.message_dict
    assert not FieldSafetyNotice.objects.exists() and not FieldSafetyFlag.objects.exists()


def test_a_search_that_finds_nothing_flags_nothing(clinic, clinician):
    with pytest.raises(ValidationError, match="nobody to flag"):
        _flag(clinician, RecallCriteria(drug_lot="LOT-Z"))
    assert not FieldSafetyNotice.objects.exists()


def test_the_refill_kit_lot_is_a_recall_criterion(clinic, nurse):
    three, four = clinic["p"][2], clinic["p"][3]
    with time_machine.travel(local(2025, 1, 10), tick=False):
        refill_record(implant=three, by=nurse, at=local(2025, 1, 10), kit_lot="KIT-77")
        refill_record(implant=four, by=nurse, at=local(2025, 1, 10), kit_lot="KIT-78")
    found = recall_search(criteria=RecallCriteria(kit_lot="kit-77"), visible=Patient.objects.all(), now=NOW)
    assert [i.serial_number for i in found] == ["NGP1002"]
    both = RecallCriteria(kit_lot="KIT-78", serial_from="NGP2000", serial_to="NGP2999", status="active")
    assert [i.serial_number for i in recall_search(criteria=both, visible=Patient.objects.all(), now=NOW)] == [
        "NGP2000"
    ]
    assert recall_criteria_describe(both) == "Serials NGP2000 to NGP2999; refill kit lot KIT-78; pumps still implanted"


# ---------------------------------------------------------------------------
# Recording the action
# ---------------------------------------------------------------------------


def test_recording_the_action_closes_the_flag_once(clinic, clinician):
    flag = FieldSafetyFlag.objects.filter(notice=_flag(clinician).notice).first()
    with pytest.raises(ValidationError) as empty:
        field_safety.field_safety_action_record(flag=flag, action_taken="   ", by=clinician, now=NOW)
    assert "action_taken" in empty.value.message_dict

    later = NOW + dt.timedelta(hours=3)
    field_safety.field_safety_action_record(
        flag=flag, action_taken="  Pump interrogated, no fault. ", by=clinician, now=later
    )

    flag.refresh_from_db()
    assert (flag.status, flag.action_taken, flag.action_recorded_by, flag.action_recorded_at) == (
        "closed",
        "Pump interrogated, no fault.",
        clinician,
        later,
    )
    assert [h.status for h in flag.history.order_by("history_id")] == ["open", "closed"]
    with pytest.raises(ValidationError, match="already been recorded"):
        field_safety.field_safety_action_record(flag=flag, action_taken="Again", by=clinician, now=later)
    # a closed flag must carry its action (the constraint is the guarantee)
    with pytest.raises(IntegrityError), transaction.atomic():
        FieldSafetyFlag.objects.filter(pk=flag.pk).update(action_taken="")


# ---------------------------------------------------------------------------
# Telling the patients
# ---------------------------------------------------------------------------


def _patients_by_channel(notice):
    """Three (NGP1002) by email, Four (NGP2000) by SMS; a third flag whose patient gave no consent."""
    flags = {f.implant.serial_number: f for f in FieldSafetyFlag.objects.filter(notice=notice)}
    Patient.objects.filter(pk=flags["NGP2000"].patient_id).update(reminder_channel="sms", phone="+447700900321")
    return flags


def test_sending_the_message_tells_each_patient_by_their_channel_and_records_when(
    clinic, clinician, sms_outbox, django_capture_on_commit_callbacks
):
    notice = _flag(clinician).notice
    flags = _patients_by_channel(notice)
    one = clinic["p"][0].patient
    Patient.objects.filter(pk=one.pk).update(reminder_consent=False)
    _flag(clinician, RecallCriteria(serial_from="NGP1000", serial_to="NGP1000"))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        request = field_safety.field_safety_messages_request(notice=notice, by=clinician, now=NOW)

    assert (request.queued, request.no_channel) == (2, 1)
    assert len(callbacks) == 2  # one send task per message, after commit
    contacts = dict(FieldSafetyFlag.objects.values_list("implant__serial_number", "contact"))
    assert contacts == {"NGP1000": "no_channel", "NGP1002": "pending", "NGP2000": "pending"}

    sent_at = NOW + dt.timedelta(minutes=1)
    assert [
        field_safety.field_safety_message_send(flag_id=flags[s].pk, now=sent_at) for s in ("NGP1002", "NGP2000")
    ] == ["sent", "sent"]

    three, four = flags["NGP1002"], flags["NGP2000"]
    three.refresh_from_db()
    four.refresh_from_db()
    assert (three.contact, three.channel, three.contacted_at, three.contacted_by) == (
        "sent",
        "email",
        sent_at,
        clinician,
    )
    assert (four.contact, four.channel, four.contacted_at) == ("sent", "sms", sent_at)
    [email] = mail.outbox
    assert email.to == [three.patient.email]
    assert email.subject == "ITB Clinic: a safety notice about your pump (ref. FA-2025-07)"
    assert "Please call the clinic on +44 20 7946 0000" in email.body
    assert three.message_body == email.body
    [text] = sms_outbox
    assert text.to == "+447700900321"
    assert text.body == (
        "ITB Clinic: a safety notice about your pump (ref. FA-2025-07). "
        "Please call +44 20 7946 0000 so we can tell you what it means for you."
    )
    # nothing names the patient
    for body in (email.subject, email.body, text.body):
        assert three.patient.given_name not in body and four.patient.family_name not in body

    # a redelivered task, or "send" pressed again, sends nothing more
    assert field_safety.field_safety_message_send(flag_id=three.pk, now=sent_at) == "skipped"
    again = field_safety.field_safety_messages_request(notice=notice, by=clinician, now=sent_at)
    assert (again.queued, again.no_channel) == (0, 1)
    assert len(mail.outbox) == 1 and len(sms_outbox) == 1


def test_a_refused_text_is_recorded_on_the_flag_and_sent_again_next_time(clinic, clinician, monkeypatch):
    notice = _flag(clinician).notice
    four = _patients_by_channel(notice)["NGP2000"]

    def refuse(**kwargs):
        raise SmsPermanentError("SMS provider refused the message (400): not a mobile number")

    monkeypatch.setattr(field_safety, "send_sms", refuse)
    field_safety.field_safety_messages_request(notice=notice, by=clinician, now=NOW)
    assert field_safety.field_safety_message_send(flag_id=four.pk, now=NOW) == "failed"

    four.refresh_from_db()
    assert (four.contact, four.channel, four.contacted_at, four.contact_attempts) == ("failed", "sms", None, 1)
    assert four.contact_error == "SmsPermanentError: SMS provider refused the message (400): not a mobile number"
    assert field_safety.field_safety_notice_counts(notice=notice, visible=Patient.objects.all()).failed == 1
    # the next "send" tries the failed one again (the email one was sent and is not)
    monkeypatch.undo()
    assert field_safety.field_safety_message_send(flag_id=four.pk, now=NOW) == "skipped"
    Patient.objects.filter(pk=four.patient_id).update(phone="+447700900999")
    assert field_safety.field_safety_messages_request(notice=notice, by=clinician, now=NOW).queued == 1


def test_a_mail_server_down_keeps_the_message_pending_for_the_retry(clinic, clinician, settings):
    settings.EMAIL_BACKEND = "tests.refills.reminder_test_backends.FailingSmtpBackend"
    notice = _flag(clinician).notice
    three = _patients_by_channel(notice)["NGP1002"]
    field_safety.field_safety_messages_request(notice=notice, by=clinician, now=NOW)

    with pytest.raises(smtplib.SMTPServerDisconnected):
        field_safety.field_safety_message_send(flag_id=three.pk, now=NOW)
    three.refresh_from_db()
    assert (three.contact, three.contacted_at) == ("pending", None)
    assert "SMTPServerDisconnected" in three.contact_error
    # the task gives up after its retries: the flag shows the failure
    assert field_safety.field_safety_message_mark_failed(flag_id=three.pk, error="SMTPServerDisconnected: gone") == 1
    three.refresh_from_db()
    assert (three.contact, three.contact_error) == ("failed", "SMTPServerDisconnected: gone")


def test_a_message_whose_broker_message_was_lost_is_enqueued_again(
    clinic, clinician, django_capture_on_commit_callbacks
):
    notice = _flag(clinician).notice
    field_safety.field_safety_messages_request(notice=notice, by=clinician, now=NOW)
    with django_capture_on_commit_callbacks(execute=False) as soon:
        assert field_safety.field_safety_messages_redispatch(now=NOW + dt.timedelta(minutes=1)) == 0
    with django_capture_on_commit_callbacks(execute=False) as later:
        assert field_safety.field_safety_messages_redispatch(now=NOW + dt.timedelta(minutes=10)) == 2
    assert (len(soon), len(later)) == (0, 2)


def test_the_send_task_runs_the_service(clinic, clinician):
    from refills.tasks import send_field_safety_message_task

    notice = _flag(clinician).notice
    field_safety.field_safety_messages_request(notice=notice, by=clinician, now=NOW)
    flag = FieldSafetyFlag.objects.filter(notice=notice).first()
    assert send_field_safety_message_task.run(flag.pk) == "sent"
    assert send_field_safety_message_task.name == field_safety.SEND_TASK
    flag.refresh_from_db()
    assert flag.contact == "sent" and flag.contacted_at is not None


# ---------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------


def _flag_url(**search) -> str:
    from urllib.parse import urlencode

    return f"{reverse('staff:recall_flag')}?{urlencode(search)}"


NOTICE_FORM = {"title": "Motor stall advisory", "reference": "FA-2025-07", "manufacturer_text": "Interrogate the pump."}


def test_the_clinician_flags_the_search_from_the_recall_page_once_whatever_the_clicks(clinic, client, clinician):
    client.force_login(clinician)
    with time_machine.travel(NOW, tick=False):
        page = client.get(reverse("staff:recall_search"), {"drug_lot": "LOT-B"})
        assert page.status_code == 200 and "flag_form" in page.context
        assert 'action="/staff/recall/flag/?drug_lot=LOT-B"' in page.content.decode()

        token = "6f1c3a52-0f8e-4b8e-9b36-9a7e0d7f4a11"
        first = client.post(_flag_url(drug_lot="LOT-B"), {**NOTICE_FORM, "form_token": token})
        notice = FieldSafetyNotice.objects.get()
        assert first.status_code == 302 and first["Location"] == reverse("staff:field_safety_notice", args=[notice.pk])
        # a double click (same token), then the same form sent again (a new token)
        twice = client.post(_flag_url(drug_lot="LOT-B"), {**NOTICE_FORM, "form_token": token})
        again = client.post(_flag_url(drug_lot="LOT-B"), NOTICE_FORM, follow=True)

    assert twice.status_code == 302
    assert "2 already flagged, left as they were" in again.content.decode()
    assert FieldSafetyFlag.objects.count() == 2
    changed = AccessLog.objects.filter(action="change", resource="staff:recall_flag")
    assert sorted(changed.values_list("patient__given_name", flat=True)) == ["Four", "Three"]


def test_a_nurse_sees_the_notice_but_records_and_flags_nothing(clinic, client, nurse, clinician):
    notice = _flag(clinician).notice
    flag = FieldSafetyFlag.objects.filter(notice=notice).first()
    client.force_login(nurse)

    search = client.get(reverse("staff:recall_search"), {"drug_lot": "LOT-B"})
    assert "flag_form" not in search.context
    page = client.get(reverse("staff:field_safety_notice", args=[notice.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "Send the message" not in body and "Record the action" not in body
    assert client.post(_flag_url(drug_lot="LOT-B"), NOTICE_FORM).status_code == 403
    assert client.post(reverse("staff:field_safety_send", args=[notice.pk])).status_code == 403
    assert client.get(reverse("staff:field_safety_action", args=[flag.pk])).status_code == 403
    assert client.post(reverse("staff:field_safety_action", args=[flag.pk]), {"action_taken": "x"}).status_code == 403
    flag.refresh_from_db()
    assert flag.status == "open" and flag.contact == ""


@pytest.mark.parametrize(
    "search,form,field,message",
    [
        ({"drug_lot": "LOT-B"}, {**NOTICE_FORM, "title": ""}, "title", "This field is required."),
        ({"drug_lot": "LOT-B"}, {**NOTICE_FORM, "reference": "FA\x07"}, "reference", "hidden control characters"),
        ({"drug_lot": "LOT-Z"}, NOTICE_FORM, "__all__", "nobody to flag"),
    ],
)
def test_a_bad_notice_is_a_form_error_on_the_recall_page(clinic, client, clinician, search, form, field, message):
    client.force_login(clinician)
    response = client.post(_flag_url(**search), form)
    assert response.status_code == 400
    assert message in " ".join(response.context["flag_form"].errors[field])
    assert not FieldSafetyNotice.objects.exists()


def test_a_bad_search_behind_the_flag_form_is_a_400_naming_the_field(clinic, client, clinician):
    client.force_login(clinician)
    response = client.post(_flag_url(serial_from="NGP2000", serial_to="NGP1000"), NOTICE_FORM)
    assert response.status_code == 400
    assert response.content.decode().startswith("serial_to: The end of the serial range")
    assert not FieldSafetyFlag.objects.exists()


def test_the_action_form_needs_its_text_then_closes_the_flag(clinic, client, clinician):
    flag = FieldSafetyFlag.objects.filter(notice=_flag(clinician).notice).first()
    client.force_login(clinician)
    url = reverse("staff:field_safety_action", args=[flag.pk])

    empty = client.post(url, {"action_taken": "  "})
    assert empty.status_code == 400
    assert empty.context["form"].errors["action_taken"] == ["This field is required."]
    done = client.post(url, {"action_taken": "Phoned; refill brought forward to interrogate the pump."})
    assert done.status_code == 302 and done["Location"] == reverse("staff:patient_detail", args=[flag.patient_id])
    flag.refresh_from_db()
    assert flag.status == "closed" and flag.action_recorded_by == clinician
    twice = client.post(url, {"action_taken": "Again"})
    assert twice.status_code == 400
    assert "already been recorded" in " ".join(twice.context["form"].errors["action_taken"])
    logged = AccessLog.objects.filter(patient=flag.patient, resource="staff:field_safety_action")
    assert sorted(logged.values_list("action", flat=True)) == ["change", "view", "view"]


def test_the_send_button_queues_the_messages_and_says_who_must_be_phoned(
    clinic, client, clinician, django_capture_on_commit_callbacks
):
    notice = _flag(clinician).notice
    flags = _patients_by_channel(notice)
    Patient.objects.filter(pk=flags["NGP2000"].patient_id).update(reminder_consent=False)
    client.force_login(clinician)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("staff:field_safety_send", args=[notice.pk]), follow=True)
    assert "1 message on the way. 1 patient cannot be messaged: phone them." in response.content.decode()
    assert len(callbacks) == 1
    assert AccessLog.objects.filter(action="change", resource="staff:field_safety_send").count() == 2


def test_the_notice_page_and_its_csv_list_who_was_contacted_and_what_was_done(clinic, client, clinician, nurse):
    notice = _flag(clinician).notice
    flags = _patients_by_channel(notice)
    field_safety.field_safety_messages_request(notice=notice, by=clinician, now=NOW)
    field_safety.field_safety_message_send(flag_id=flags["NGP1002"].pk, now=NOW)
    field_safety.field_safety_action_record(
        flag=flags["NGP1002"], action_taken="Interrogated, =no fault", by=clinician, now=NOW
    )
    client.force_login(nurse)

    with time_machine.travel(NOW, tick=False):
        page = client.get(reverse("staff:field_safety_notice", args=[notice.pk]))
        csv = client.get(reverse("staff:field_safety_csv", args=[notice.pk]))

    assert page.status_code == 200
    counts = page.context["counts"]
    assert (counts.flagged, counts.open, counts.contacted, counts.failed, counts.not_contacted) == (2, 1, 1, 0, 0)
    # open first
    assert [f.implant.serial_number for f in page.context["flags"]] == ["NGP2000", "NGP1002"]
    assert csv.status_code == 200 and csv["Content-Type"] == "text/csv; charset=utf-8"
    lines = csv.content.decode().splitlines()
    assert lines[0] == (
        "mrn,patient,pump_model,serial,contact,channel,contacted_at,contact_error,status,action_taken,"
        "action_recorded_by,action_recorded_at"
    )
    four, three = (flags["NGP2000"].patient, flags["NGP1002"].patient)
    assert lines[1] == (
        f"{four.mrn},Four Recall,Medtronic SynchroMed II 20 mL,NGP2000,"
        "Message waiting to be sent,sms,,,Action to record,,,"
    )
    who = clinician.get_full_name() or clinician.get_username()
    assert lines[2] == (
        f"{three.mrn},Three Recall,Medtronic SynchroMed II 20 mL,NGP1002,Message sent,email,2025-06-02 09:00,,"
        f'Action recorded,"Interrogated, =no fault",{who},2025-06-02 09:00'
    )
    viewed = AccessLog.objects.filter(action="view", resource="staff:field_safety_notice")
    exported = AccessLog.objects.filter(action="export", resource="staff:field_safety_csv")
    assert viewed.count() == 2 and exported.count() == 2


def test_the_flag_shows_on_the_patient_page_and_the_worklist_until_the_action_is_recorded(
    clinic, client, clinician, nurse
):
    notice = _flag(clinician).notice
    flag = FieldSafetyFlag.objects.get(notice=notice, implant__serial_number="NGP1002")
    client.force_login(nurse)

    with time_machine.travel(NOW, tick=False):
        patient_page = client.get(reverse("staff:patient_detail", args=[flag.patient_id])).content.decode()
        worklist = client.get(reverse("staff:worklist"))
    assert 'data-testid="field-safety-flag"' in patient_page
    assert "Field-safety notice FA-2025-07: Motor stall advisory" in patient_page
    assert "A clinician records the action taken." in patient_page  # a nurse sees, does not record
    assert [(n.reference, n.open_count, n.flagged_count) for n in worklist.context["field_safety_notices"]] == [
        ("FA-2025-07", 2, 2)
    ]
    assert worklist.context["alert_count"] >= 2
    assert "2 of 2 flagged patients still waiting" in worklist.content.decode()

    for each in FieldSafetyFlag.objects.filter(notice=notice):
        field_safety.field_safety_action_record(flag=each, action_taken="Interrogated.", by=clinician, now=NOW)
    with time_machine.travel(NOW, tick=False):
        patient_page = client.get(reverse("staff:patient_detail", args=[flag.patient_id])).content.decode()
        worklist = client.get(reverse("staff:worklist"))
    assert 'data-testid="field-safety-flag"' not in patient_page
    assert "Interrogated." in patient_page  # kept in the patient's list of notices
    assert worklist.context["field_safety_notices"] == []
    assert 'data-testid="field-safety-alert"' not in worklist.content.decode()


def test_the_notice_page_and_the_worklist_cost_the_same_queries_for_two_and_for_many_flags(clinic, client, clinician):
    notice = _flag(clinician, RANGE_1).notice
    client.force_login(clinician)

    def count(url) -> int:
        with time_machine.travel(NOW, tick=False), CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries.captured_queries)

    urls = [
        reverse("staff:field_safety_notice", args=[notice.pk]),
        reverse("staff:field_safety_list"),
        reverse("staff:worklist"),
    ]
    small = [count(url) for url in urls]
    for n in range(8):
        _pump(f"More{n}", f"NGP15{n:02d}", lot_at_fill="LOT-A")
    _flag(clinician, RANGE_1)
    _flag(clinician, RecallCriteria(drug_lot="LOT-A"), reference="FA-2025-08")
    assert FieldSafetyFlag.objects.count() == 11 + 10
    assert [count(url) for url in urls] == small
