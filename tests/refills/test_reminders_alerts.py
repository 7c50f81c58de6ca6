"""Nurse and clinician alerts: raised level-triggered, resolved when the condition clears, emailed once."""

import datetime as dt

import pytest
from django.core import mail

from pumps.services import implant_explant, implant_record_eri
from refills.alerts.reads import alert_list_open
from refills.alerts.scan import alerts_scan
from refills.alerts.services import alert_resolve
from refills.models import Alert, Appointment, ClinicSettings
from refills.services import appointment_move
from tests import factories
from tests.helpers import refill_record
from tests.refills.reminder_helpers import book, local, refilled_implant

pytestmark = pytest.mark.django_db


def scan(now):
    return alerts_scan(now=now)


def open_alerts(**filters):
    return list(alert_list_open(**filters).values_list("kind", "key_date", "severity"))


@pytest.fixture
def implant(nurse):
    # refilled 6 Jan 2025: due by Tue 1 Apr, alarm Sun 6 Apr (docs/domain.md's worked example)
    return refilled_implant(nurse=nurse, on=local(2025, 1, 6))


def test_no_alert_while_the_due_date_is_far(implant):
    assert scan(local(2025, 3, 10, 9)).raised == 0  # due in 22 days
    assert Alert.objects.count() == 0 and mail.outbox == []


def test_unbooked_refill_21_days_before_due_by_alerts_the_nurses_once(implant):
    # when the scan runs at 21 days, twice, and the next day
    first = scan(local(2025, 3, 11, 9))
    second = scan(local(2025, 3, 11, 9, 5))
    third = scan(local(2025, 3, 12, 9))
    # then one alert, emailed once in a digest to the nursing address
    assert (first.raised, second.raised, third.raised) == (1, 0, 0)
    assert open_alerts(audience="nurses") == [("refill_unbooked", dt.date(2025, 4, 1), "warning")]
    (message,) = mail.outbox
    assert message.to == ["itb-nurses@clinic.invalid"]
    assert message.subject == "[ITB Clinic] 1 new alert for the nurses"
    assert "[WARNING] Refill due soon, nothing booked — patient " + implant.patient.mrn in message.body
    assert f"/staff/patients/{implant.patient.pk}/" in message.body
    # the dates and the name stay in the app (tests/security/test_messages_carry_no_patient_details.py)
    assert "Apr 2025" not in message.body and implant.patient.family_name not in message.body
    assert Alert.objects.get().emailed_at == local(2025, 3, 11, 9)


def test_booking_resolves_the_unbooked_alert(implant, nurse):
    scan(local(2025, 3, 11, 9))
    book(implant=implant, nurse=nurse, starts_at=local(2025, 3, 27, 10), now=local(2025, 3, 11, 10))
    result = scan(local(2025, 3, 11, 10, 5))
    assert result.resolved == 1 and open_alerts() == []
    alert = Alert.objects.get()
    assert (alert.resolution, alert.resolved_by) == ("Cleared: a refill was booked or recorded.", None)


def test_urgent_alert_every_day_from_seven_days_before_the_alarm_until_refilled(implant, nurse):
    # 30 Mar is 7 days before the alarm (6 Apr): urgent, repeated daily, nothing booked
    assert scan(local(2025, 3, 29, 9)).raised == 1  # only the unbooked one
    assert scan(local(2025, 3, 30, 9)).raised == 1
    assert scan(local(2025, 3, 30, 15)).raised == 0
    assert scan(local(2025, 3, 31, 9)).raised == 1
    urgent = Alert.objects.filter(kind="refill_urgent").order_by("key_date")
    assert [(a.key_date, a.severity) for a in urgent] == [
        (dt.date(2025, 3, 30), "urgent"),
        (dt.date(2025, 3, 31), "urgent"),
    ]
    # yesterday's is closed as repeated, today's is open and says nothing is booked
    first, second = urgent
    assert first.resolution == "Repeated on 31 Mar 2025."
    assert second.resolved_at is None and "NOTHING BOOKED" in second.message and "in 6 days" in second.message
    # each new urgent alert is emailed with URGENT in the subject
    urgent_mails = [m for m in mail.outbox if m.subject.startswith("[ITB Clinic] URGENT")]
    assert len(urgent_mails) == 2
    # when the refill is recorded, everything clears
    refill_record(implant=implant, by=nurse, at=local(2025, 3, 31, 14))
    scan(local(2025, 3, 31, 15))
    assert open_alerts() == []


def test_a_booking_inside_the_last_week_does_not_silence_the_urgent_alert(implant, nurse):
    # booked for Thu 3 Apr (after due-by 1 Apr, so a clinician overrides): one missed visit would leave 3 days
    clinician = factories.ClinicianFactory()
    book(
        implant=implant,
        nurse=clinician,
        starts_at=local(2025, 4, 3, 10),
        now=local(2025, 3, 20),
        outside_window_reason="Patient abroad until 2 April",
    )
    scan(local(2025, 3, 30, 9))
    kinds = {kind: severity for kind, _, severity in open_alerts()}
    assert kinds == {"refill_urgent": "urgent", "booked_after_due": "warning"}
    urgent = Alert.objects.get(kind="refill_urgent")
    assert "refill booked for Thu 3 Apr: make sure the patient comes." in urgent.message
    # raised once while the booking stands, not every day
    assert scan(local(2025, 3, 31, 9)).raised == 0
    assert Alert.objects.filter(kind="refill_urgent").count() == 1
    assert Alert.objects.get(kind="refill_urgent").resolved_at is None


def test_booked_after_due_resolves_when_brought_forward(implant, nurse):
    clinician = factories.ClinicianFactory()
    appointment = book(
        implant=implant,
        nurse=clinician,
        starts_at=local(2025, 4, 3, 10),
        now=local(2025, 3, 10),
        outside_window_reason="Transport only on Thursdays",
    )
    scan(local(2025, 3, 10, 9))
    assert open_alerts() == [("booked_after_due", dt.date(2025, 4, 1), "warning")]
    appointment_move(appointment=appointment, starts_at=local(2025, 3, 27, 10), moved_by=nurse, now=local(2025, 3, 11))
    scan(local(2025, 3, 11, 9))
    assert open_alerts() == []


def test_no_show_is_marked_and_alerted_then_cleared_by_rebooking(implant, nurse):
    appointment = book(implant=implant, nurse=nurse, starts_at=local(2025, 3, 20, 10), now=local(2025, 3, 10))
    # three hours later it is not yet a no-show; five hours later it is
    assert scan(local(2025, 3, 20, 13)).no_shows == 0
    result = scan(local(2025, 3, 20, 15))
    assert result.no_shows == 1
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.NO_SHOW
    assert ("no_show", dt.date(2025, 3, 20), "warning") in open_alerts()
    assert ("refill_unbooked", dt.date(2025, 4, 1), "warning") in open_alerts()
    assert scan(local(2025, 3, 20, 16)).no_shows == 0  # marked once
    book(implant=implant, nurse=nurse, starts_at=local(2025, 3, 24, 10), now=local(2025, 3, 21))
    scan(local(2025, 3, 21, 10))
    assert open_alerts() == []


def test_an_attended_appointment_is_not_a_no_show(implant, nurse):
    appointment = book(implant=implant, nurse=nurse, starts_at=local(2025, 3, 20, 10), now=local(2025, 3, 10))
    refill_record(implant=implant, by=nurse, at=local(2025, 3, 20, 10, 20))
    assert scan(local(2025, 3, 21, 9)).no_shows == 0
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.COMPLETED
    assert Alert.objects.filter(kind="no_show").count() == 0


def test_no_refill_alerts_without_an_active_pump(nurse):
    explanted = refilled_implant(nurse=nurse, on=local(2025, 1, 6))
    implant_explant(implant=explanted, explanted_on=dt.date(2025, 2, 1), reason="Infection", by=nurse)
    factories.PatientFactory()  # no implant at all
    # No refill alert of any kind; the one alert is the clinicians' "explanted, no replacement".
    assert scan(local(2025, 4, 5, 9)).raised == 1
    assert list(Alert.objects.values_list("kind", "key_date")) == [
        (Alert.Kind.EXPLANT_NO_REPLACEMENT, dt.date(2025, 2, 1))
    ]


def test_explant_resolves_open_refill_alerts(implant, nurse):
    scan(local(2025, 3, 31, 9))
    assert len(open_alerts()) == 2
    implant_explant(implant=implant, explanted_on=dt.date(2025, 3, 31), reason="Infection", by=nurse)
    scan(local(2025, 3, 31, 15))
    # Every refill alert is resolved; what is left open says the patient now has no pump.
    assert open_alerts() == [(Alert.Kind.EXPLANT_NO_REPLACEMENT, dt.date(2025, 3, 31), Alert.Severity.WARNING)]


def test_a_hand_resolved_alert_is_not_raised_again_for_the_same_date(implant, nurse):
    scan(local(2025, 3, 11, 9))
    alert_resolve(alert=Alert.objects.get(), by=nurse, note="Patient phoned: books on Friday")
    assert scan(local(2025, 3, 12, 9)).raised == 0
    assert Alert.objects.get().resolution == "Patient phoned: books on Friday"


def test_email_failure_leaves_the_alert_for_the_next_scan(implant, settings):
    settings.EMAIL_BACKEND = "tests.refills.reminder_test_backends.FailingSmtpBackend"
    assert scan(local(2025, 3, 11, 9)).emailed == 0
    assert Alert.objects.get().emailed_at is None
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert scan(local(2025, 3, 11, 9, 5)).emailed == 1
    assert scan(local(2025, 3, 11, 9, 10)).emailed == 0
    assert len(mail.outbox) == 1


# --- clinicians ----------------------------------------------------------------------------
def test_battery_window_opens_five_years_after_implant(nurse):
    implant = refilled_implant(nurse=nurse, on=local(2025, 1, 6), implanted_on=dt.date(2020, 2, 29))
    assert scan(local(2025, 2, 27, 9)).raised == 0
    scan(local(2025, 2, 28, 9))  # 29 Feb 2020 + 5 years = 28 Feb 2025
    (alert,) = Alert.objects.filter(kind="battery_window")
    assert (alert.audience, alert.key_date, alert.implant_id) == ("clinicians", dt.date(2025, 2, 28), implant.pk)
    assert "stops by 28 Feb 2027" in alert.message
    assert scan(local(2025, 3, 1, 9)).raised == 0
    digest = [m for m in mail.outbox if m.to == ["itb-clinicians@clinic.invalid"]]
    assert len(digest) == 1


def test_replacement_plan_within_90_days_then_cleared_by_booking_the_surgery(nurse):
    # SynchroMed II implanted 2 Apr 2018: hard stop 2 Apr 2025, plan by 2 Oct 2024
    implant = refilled_implant(nurse=nurse, on=local(2024, 7, 1), implanted_on=dt.date(2018, 4, 2))
    scan(local(2024, 7, 3, 9))  # plan-by is 91 days away
    assert not Alert.objects.filter(kind="replacement_plan").exists()
    scan(local(2024, 7, 4, 9))  # 90 days
    alert = Alert.objects.get(kind="replacement_plan")
    assert (alert.key_date, alert.audience) == (dt.date(2024, 10, 2), "clinicians")
    assert "stops by 2 Apr 2025" in alert.message
    book(implant=implant, nurse=nurse, kind="replacement", starts_at=local(2024, 9, 10, 8), now=local(2024, 7, 5))
    scan(local(2024, 7, 5, 9))
    assert Alert.objects.get(kind="replacement_plan").resolved_at is not None


def test_eri_alerts_the_clinicians_at_once_with_the_stop_date(implant, nurse):
    implant_record_eri(implant=implant, eri_on=dt.date(2025, 2, 10), by=nurse)
    scan(local(2025, 2, 10, 9))
    alert = Alert.objects.get(kind="eri")
    assert (alert.severity, alert.key_date) == ("urgent", dt.date(2025, 2, 10))
    assert "stops by 11 May 2025" in alert.message  # ERI + 90 days
    assert scan(local(2025, 2, 10, 10)).raised == 0


def test_alert_thresholds_come_from_the_clinic_settings(implant):
    clinic = ClinicSettings.load()
    clinic.unbooked_alert_days = 30
    clinic.save()
    scan(local(2025, 3, 2, 9))
    assert open_alerts() == [("refill_unbooked", dt.date(2025, 4, 1), "warning")]
