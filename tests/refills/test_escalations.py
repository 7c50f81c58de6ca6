"""Events that must escalate (docs/domain.md): raised level-triggered, texted, escalated until acknowledged."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError

from patients.models import Patient
from pumps.models import Implant
from refills.alerts.digest import alerts_escalate
from refills.alerts.services import alert_acknowledge, alert_resolve
from refills.models import Alert, Appointment, ClinicSettings, ReservoirEmptying
from tests import factories
from tests.refills.escalation_helpers import local, open_alerts, pump, scan, visit

pytestmark = pytest.mark.django_db

FAR = {"due_by": dt.date(2025, 12, 1), "alarm_on": dt.date(2025, 12, 6), "empty_on": dt.date(2025, 12, 16)}
FAR_FORECAST = {f"forecast_{name}": value for name, value in FAR.items()}
ON_CALL = "+447700900999"


@pytest.fixture
def on_call():
    clinic = ClinicSettings.load()
    clinic.on_call_phone = ON_CALL
    clinic.save()
    return clinic


# --- 1. a pump with no forecast -------------------------------------------------------------
def test_pump_without_a_recorded_fill_has_one_urgent_alert_until_its_forecast_appears(nurse):
    implant = pump(due_by=None, alarm_on=None, empty_on=None, problem="fill_not_recorded")
    # when the scan runs on three days
    assert scan(local(2025, 3, 3, 9)).raised == 1
    assert scan(local(2025, 3, 4, 9)).raised == 0
    assert scan(local(2025, 3, 5, 9)).raised == 0
    # then one open urgent alert for the nurses, keyed on the day it was first raised
    (alert,) = Alert.objects.all()
    assert (alert.kind, alert.severity, alert.audience, alert.key_date, alert.implant_id) == (
        "no_forecast",
        "urgent",
        "nurses",
        dt.date(2025, 3, 3),
        implant.pk,
    )
    assert "Fill not recorded: record the theatre fill or a refill." in alert.message
    # when the forecast appears, the scan resolves it
    Implant.objects.filter(pk=implant.pk).update(forecast_problem="", **FAR_FORECAST)
    assert scan(local(2025, 3, 6, 9)).resolved == 1
    alert.refresh_from_db()
    assert alert.resolution == "Cleared: the pump has a refill date again (or is explanted)."
    assert Alert.objects.count() == 1


def test_emptied_reservoir_says_when_and_a_hand_resolve_only_quiets_it_for_the_day(nurse):
    implant = pump(due_by=None, alarm_on=None, empty_on=None, problem="reservoir_emptied")
    ReservoirEmptying.objects.create(implant=implant, emptied_at=local(2025, 3, 2, 14), recorded_by=nurse)
    scan(local(2025, 3, 3, 9))
    alert = Alert.objects.get()
    assert "Reservoir emptied on Sun 2 Mar 2025: record the refill." in alert.message
    # a nurse resolves it by hand while the pump still has no forecast
    alert_resolve(alert=alert, by=nurse, note="Patient phoned", now=local(2025, 3, 3, 10))
    assert scan(local(2025, 3, 3, 15)).raised == 0
    # the next day it is back: the condition still holds
    assert scan(local(2025, 3, 4, 9)).raised == 1
    assert open_alerts() == [("no_forecast", dt.date(2025, 3, 4), "urgent")]


def test_forecast_that_cannot_be_computed_says_check_the_record():
    pump(due_by=None, alarm_on=None, empty_on=None, problem="cannot_compute")
    scan(local(2025, 3, 3, 9))
    assert "The forecast cannot be computed: check the record." in Alert.objects.get().message


# --- 2. severity rises -----------------------------------------------------------------------
def test_resolving_the_unbooked_warning_never_silences_the_overdue_urgent_alert(nurse):
    pump()  # due by Tue 1 Apr, alarm Sun 6 Apr
    scan(local(2025, 3, 20, 9))
    warning = Alert.objects.get()
    assert (warning.kind, warning.severity) == ("refill_unbooked", "warning")
    alert_resolve(alert=warning, by=nurse, note="Left a message", now=local(2025, 3, 20, 10))
    scan(local(2025, 4, 1, 9))  # due today: not yet overdue, but the alarm is 5 days away
    assert open_alerts(kind="refill_unbooked") == []
    # when the due-by date has passed with nothing booked
    scan(local(2025, 4, 2, 9))
    # then an urgent alert for the same date, open; the warning keeps the nurse's note
    assert open_alerts() == [
        ("refill_unbooked", dt.date(2025, 4, 1), "urgent"),
        ("refill_urgent", dt.date(2025, 4, 2), "urgent"),
    ]
    warning.refresh_from_db()
    assert (warning.resolution, warning.resolved_by) == ("Left a message", nurse)


def test_unbooked_warning_left_open_is_closed_as_superseded_when_it_turns_urgent():
    pump()
    scan(local(2025, 3, 31, 9))
    scan(local(2025, 4, 2, 9))
    warning = Alert.objects.get(kind="refill_unbooked", severity="warning")
    assert warning.resolution == "Now urgent: see the newer alert."
    assert Alert.objects.filter(kind="refill_unbooked", severity="urgent", resolved_at__isnull=True).count() == 1


def test_refill_urgent_still_repeats_daily_while_nothing_is_booked():
    pump()
    scan(local(2025, 3, 30, 9))
    scan(local(2025, 3, 30, 15))
    scan(local(2025, 3, 31, 9))
    urgent = list(Alert.objects.filter(kind="refill_urgent").order_by("key_date"))
    assert [(a.key_date, a.resolution) for a in urgent] == [
        (dt.date(2025, 3, 30), "Repeated on 31 Mar 2025."),
        (dt.date(2025, 3, 31), ""),
    ]


# --- 3. withdrawal-risk flags ----------------------------------------------------------------
def test_risk_flags_raise_every_alert_one_step_and_ride_on_it_in_words():
    flagged = pump(risk_high_sci=True, risk_communication_difficulty=True, risk_previous_withdrawal=True)
    plain = pump()
    # a battery window (info) for the flagged patient too
    old = pump(implanted_on=dt.date(2020, 1, 6), risk_previous_withdrawal=True, **FAR)
    scan(local(2025, 3, 20, 9))
    rows = {
        (a.patient_id, a.kind): (a.severity, a.risk_flags)
        for a in Alert.objects.filter(kind__in=["refill_unbooked", "battery_window"])
    }
    assert rows == {
        (flagged.patient_id, "refill_unbooked"): (
            "urgent",
            "SCI at T6 or above; communication difficulty; previous withdrawal",
        ),
        (plain.patient_id, "refill_unbooked"): ("warning", ""),
        (old.patient_id, "battery_window"): ("warning", "previous withdrawal"),
    }
    # the digest says how urgent, not why (the flags are clinical details: they stay in the app),
    # and a second scan changes nothing
    line = f"[URGENT] Refill due soon, nothing booked — patient {flagged.patient.mrn}"
    assert any(line in m.body for m in mail.outbox)
    assert not any("SCI" in m.body or "withdrawal" in m.body for m in mail.outbox)
    assert scan(local(2025, 3, 20, 9, 5)).raised == 0


# --- 4. events read at a visit ---------------------------------------------------------------
def test_end_of_service_read_at_a_refill_alerts_the_clinicians_on_the_date_the_pump_logged(on_call):
    implant = pump(**FAR)
    refill = visit(
        implant=implant, at=local(2025, 3, 3, 10), battery_status="eos", battery_event_on=dt.date(2025, 2, 27)
    )
    scan(local(2025, 3, 3, 11))
    (alert,) = Alert.objects.all()
    assert (alert.kind, alert.severity, alert.audience, alert.key_date, alert.visit_id) == (
        "end_of_service",
        "urgent",
        "clinicians",
        dt.date(2025, 2, 27),
        refill.pk,
    )
    assert scan(local(2025, 3, 4, 11)).raised == 0


def test_end_of_service_without_a_logged_date_uses_the_visit_date():
    visit(implant=pump(**FAR), at=local(2025, 3, 3, 10), battery_status="eos")
    scan(local(2025, 3, 3, 11))
    assert open_alerts() == [("end_of_service", dt.date(2025, 3, 3), "urgent")]


@pytest.mark.parametrize(
    ("actual", "meaning"),
    [
        ("6.00", "under-delivery (more drug left than forecast): withdrawal risk"),
        ("0.00", "over-delivery (less drug left than forecast): overdose risk"),
    ],
)
def test_flagged_discrepancy_is_a_clinician_review_with_its_meaning_and_trend(actual, meaning):
    implant = pump(**FAR)
    visit(implant=implant, at=local(2024, 9, 2, 10), actual_residual_ml=Decimal("2.60"))
    visit(implant=implant, at=local(2024, 11, 4, 10), actual_residual_ml=Decimal("3.00"))
    visit(implant=implant, at=local(2025, 1, 6, 10), actual_residual_ml=Decimal("1.50"))
    flagged = visit(
        implant=implant, at=local(2025, 3, 3, 10), actual_residual_ml=Decimal(actual), discrepancy_flagged=True
    )
    scan(local(2025, 3, 3, 11))
    (alert,) = Alert.objects.all()
    assert (alert.kind, alert.severity, alert.audience, alert.key_date, alert.visit_id) == (
        "discrepancy",
        "warning",
        "clinicians",
        dt.date(2025, 3, 3),
        flagged.pk,
    )
    assert meaning in alert.message
    expected_trend = f"3 Mar 2025 {Decimal(actual) - Decimal('2.50'):+} mL, 6 Jan 2025 -1.00 mL, 4 Nov 2024 +0.50 mL"
    assert f"Trend (last 3 visits, actual − expected): {expected_trend}." in alert.message
    assert "2 Sep 2024" not in alert.message


def test_refill_after_the_empty_date_is_urgent_for_the_clinicians():
    visit(implant=pump(**FAR), at=local(2025, 3, 3, 10), after_empty_date=True)
    scan(local(2025, 3, 3, 11))
    (alert,) = Alert.objects.all()
    assert (alert.kind, alert.severity, alert.audience) == ("refill_after_empty", "urgent", "clinicians")
    assert "may already have been in withdrawal" in alert.message


@pytest.mark.parametrize(
    ("check", "gap", "alerted"),
    [
        ("failed", None, True),
        ("passed", "1.5", True),  # above the SynchroMed II 20 mL's 1 mL tolerance
        ("passed", "-1.5", True),
        ("passed", "1.0", False),  # at the tolerance: passes
        ("not_done", None, False),
    ],
)
def test_pocket_fill_risk_after_a_failed_check_or_a_gap_above_the_tolerance(check, gap, alerted):
    implant = pump(**FAR)
    visit(
        implant=implant,
        at=local(2025, 3, 3, 10),
        post_fill_check=check,
        post_fill_discrepancy_ml=Decimal(gap) if gap else None,
    )
    scan(local(2025, 3, 3, 11))
    assert open_alerts() == ([("pocket_fill", dt.date(2025, 3, 3), "urgent")] if alerted else [])


def test_visit_alerts_stay_until_reviewed_and_clear_if_the_visit_was_entered_in_error(nurse):
    implant = pump(**FAR)
    refill = visit(implant=implant, at=local(2025, 3, 3, 10), after_empty_date=True, battery_status="eos")
    scan(local(2025, 3, 3, 11))
    assert scan(local(2025, 5, 3, 11)).resolved == 0  # two months on: still open, nobody reviewed
    assert len(open_alerts()) == 2
    refill.mark_entered_in_error(by=nurse, reason="Wrong patient", now=local(2025, 5, 3, 12))
    assert scan(local(2025, 5, 3, 13)).resolved == 2
    assert set(Alert.objects.values_list("resolution", flat=True)) == {
        "Cleared: the visit was marked entered in error."
    }


def test_visits_older_than_the_alert_window_raise_nothing():
    visit(implant=pump(**FAR), at=local(2024, 11, 1, 10), after_empty_date=True)
    assert scan(local(2025, 3, 3, 11)).raised == 0


# --- 5. explant with no replacement ----------------------------------------------------------
def test_explant_with_no_replacement_warns_the_clinicians_until_one_is_booked(nurse):
    implant = pump(**FAR)
    Implant.objects.filter(pk=implant.pk).update(explanted_on=dt.date(2025, 3, 1), explant_reason="Infection")
    scan(local(2025, 3, 3, 9))
    (alert,) = Alert.objects.all()
    assert (alert.kind, alert.severity, alert.audience, alert.key_date, alert.implant_id) == (
        "explant_no_replacement",
        "warning",
        "clinicians",
        dt.date(2025, 3, 1),
        implant.pk,
    )
    factories.AppointmentFactory(
        implant=None, patient=implant.patient, kind=Appointment.Kind.REPLACEMENT, starts_at=local(2025, 4, 2, 8)
    )
    assert scan(local(2025, 3, 4, 9)).resolved == 1
    alert.refresh_from_db()
    assert alert.resolution == "Cleared: a new pump was implanted or its replacement booked."


def test_no_explant_alert_once_a_new_pump_is_implanted():
    implant = pump(**FAR)
    Implant.objects.filter(pk=implant.pk).update(explanted_on=dt.date(2025, 3, 1))
    new = factories.ImplantFactory(patient=implant.patient, implanted_on=dt.date(2025, 3, 2))
    Implant.objects.filter(pk=new.pk).update(**FAR_FORECAST)
    assert scan(local(2025, 3, 3, 9)).raised == 0


# --- 6. transferred or deceased --------------------------------------------------------------
def test_transferred_patient_with_a_pump_asks_the_nurses_to_confirm_the_handover(nurse):
    with time_machine.travel(local(2024, 4, 2), tick=False):
        implant = pump(**FAR)
    patient = implant.patient
    with time_machine.travel(local(2025, 3, 2, 16), tick=False):
        patient.status = Patient.Status.TRANSFERRED
        patient.save()
    scan(local(2025, 3, 3, 9))
    (alert,) = Alert.objects.all()
    assert (alert.kind, alert.severity, alert.audience, alert.key_date) == (
        "patient_status",
        "warning",
        "nurses",
        dt.date(2025, 3, 2),
    )
    assert "Recorded as transferred on 2 Mar 2025 with a pump not explanted here" in alert.message
    assert "confirm the handover to the receiving clinic" in alert.message
    # it is resolved only by hand, and the note must say what happened
    assert scan(local(2025, 3, 10, 9)).resolved == 0
    with pytest.raises(ValidationError):
        alert_resolve(alert=alert, by=nurse, note="  ", now=local(2025, 3, 10, 10))
    alert.refresh_from_db()
    assert alert.resolved_at is None
    alert_resolve(alert=alert, by=nurse, note="Handed over to St Elsewhere ITB clinic", now=local(2025, 3, 10))
    # and not raised again while the status stands
    assert scan(local(2025, 3, 11, 9)).raised == 0
    alert.refresh_from_db()
    assert (alert.resolution, Alert.objects.count()) == ("Handed over to St Elsewhere ITB clinic", 1)


def test_deceased_patient_asks_to_close_the_record():
    with time_machine.travel(local(2024, 4, 2), tick=False):
        implant = pump(**FAR)
    with time_machine.travel(local(2025, 3, 2, 16), tick=False):
        implant.patient.status = Patient.Status.DECEASED
        implant.patient.save()
    scan(local(2025, 3, 3, 9))
    assert "Recorded as deceased on 2 Mar 2025" in Alert.objects.get(kind="patient_status").message
    assert "close the record" in Alert.objects.get(kind="patient_status").message


# --- 7. SMS and re-escalation ----------------------------------------------------------------
def test_urgent_alert_is_texted_once_to_the_on_call_phone_without_the_patients_name(on_call, sms_outbox, settings):
    implant = pump(due_by=None, alarm_on=None, empty_on=None, problem="fill_not_recorded")
    pump()  # a warning (due in 12 days): not texted
    scan(local(2025, 3, 20, 9))
    scan(local(2025, 3, 20, 9, 5))
    (sms,) = sms_outbox
    assert sms.to == ON_CALL
    mrn = implant.patient.mrn
    assert sms.body == f"ITB Clinic URGENT: pump with no forecast, patient {mrn}. Acknowledge: {settings.SITE_URL}/"
    assert implant.patient.family_name not in sms.body and implant.patient.given_name not in sms.body
    assert Alert.objects.get(kind="no_forecast").sms_sent_at == local(2025, 3, 20, 9)


def test_no_sms_without_an_on_call_phone(sms_outbox):
    pump(due_by=None, alarm_on=None, empty_on=None, problem="fill_not_recorded")
    assert scan(local(2025, 3, 20, 9)).texted == 0
    assert sms_outbox == []
    assert Alert.objects.get().sms_sent_at is None


def test_unacknowledged_urgent_alert_is_escalated_after_the_delay_and_not_before(on_call, sms_outbox):
    pump(due_by=None, alarm_on=None, empty_on=None, problem="fill_not_recorded")
    scan(local(2025, 3, 20, 9))
    mail.outbox.clear()
    # 59 minutes: nothing more
    assert scan(local(2025, 3, 20, 9, 59)).escalated == 0
    assert (len(sms_outbox), mail.outbox) == (1, [])
    # 60 minutes: texted again and emailed to both lists
    assert scan(local(2025, 3, 20, 10)).escalated == 1
    alert = Alert.objects.get()
    assert (alert.escalated_at, alert.escalation_count) == (local(2025, 3, 20, 10), 1)
    assert len(sms_outbox) == 2 and "(not acknowledged, reminder 1)" in sms_outbox[1].body
    (message,) = mail.outbox
    assert message.to == ["itb-nurses@clinic.invalid", "itb-clinicians@clinic.invalid"]
    assert message.subject == "[ITB Clinic] ESCALATED: 1 urgent alert not acknowledged"
    assert alert.patient.family_name not in message.body
    # the next escalation counts from the last one
    assert scan(local(2025, 3, 20, 10, 59)).escalated == 0
    assert scan(local(2025, 3, 20, 11)).escalated == 1
    alert.refresh_from_db()
    assert (alert.escalation_count, len(sms_outbox), len(mail.outbox)) == (2, 3, 2)


def test_acknowledged_alert_is_not_escalated(on_call, sms_outbox, nurse):
    pump(due_by=None, alarm_on=None, empty_on=None, problem="fill_not_recorded")
    scan(local(2025, 3, 20, 9))
    alert = alert_acknowledge(alert=Alert.objects.get(), by=nurse, now=local(2025, 3, 20, 9, 30))
    mail.outbox.clear()
    assert scan(local(2025, 3, 20, 12)).escalated == 0
    alert.refresh_from_db()
    assert (alert.acknowledged_by, alert.escalation_count, alert.resolved_at) == (nurse, 0, None)
    assert (len(sms_outbox), mail.outbox) == (1, [])


def test_two_escalations_at_the_same_instant_send_once(on_call, sms_outbox):
    pump(due_by=None, alarm_on=None, empty_on=None, problem="fill_not_recorded")
    scan(local(2025, 3, 20, 9))
    at = local(2025, 3, 20, 10, 30)
    with time_machine.travel(at, tick=False):
        first = alerts_escalate(now=at)
        second = alerts_escalate(now=at + dt.timedelta(seconds=1))
    assert (first, second, len(sms_outbox), Alert.objects.get().escalation_count) == (1, 0, 2, 1)


def test_sms_failure_does_not_break_the_scan_and_is_retried(on_call, sms_outbox, settings):
    pump(due_by=None, alarm_on=None, empty_on=None, problem="fill_not_recorded")
    settings.SMS_BACKEND = "tests.refills.escalation_helpers.FailingSmsBackend"
    result = scan(local(2025, 3, 20, 9))
    assert (result.raised, result.texted, result.emailed) == (1, 0, 1)
    assert Alert.objects.get().sms_sent_at is None
    # an escalation that cannot be texted is given back whole
    assert scan(local(2025, 3, 20, 10)).escalated == 0
    assert Alert.objects.get().escalation_count == 0
    settings.SMS_BACKEND = "refills.sms_backends.LocmemBackend"
    result = scan(local(2025, 3, 20, 10, 5))
    assert (result.texted, result.escalated, len(sms_outbox)) == (1, 1, 2)


# --- 8. one bad record never stops the clinic ------------------------------------------------
def test_impossible_eri_date_alerts_on_that_record_and_everyone_else_is_still_alerted():
    # given an ERI date planted straight into the database, bypassing validation
    poisoned = pump(**FAR)
    Implant.objects.filter(pk=poisoned.pk).update(eri_reported_on=dt.date(9999, 12, 1))
    other = pump()
    # when the scan runs, twice
    first = scan(local(2025, 3, 20, 9))
    second = scan(local(2025, 3, 20, 9, 5))
    # then the bad record is on the nurses' list, naming the field, and the others are alerted
    assert (first.raised, second.raised, second.resolved) == (2, 0, 0)
    attention = Alert.objects.get(kind="record_attention")
    assert (attention.patient_id, attention.severity, attention.audience) == (poisoned.patient_id, "urgent", "nurses")
    assert f"Pump {poisoned.serial_number}" in attention.message
    assert "eri_reported_on = 9999-12-01" in attention.message
    assert Alert.objects.get(kind="refill_unbooked").patient_id == other.patient_id
    # once the record is corrected, the alert clears
    Implant.objects.filter(pk=poisoned.pk).update(eri_reported_on=None)
    assert scan(local(2025, 3, 21, 9)).resolved == 1
    assert Alert.objects.get(kind="record_attention").resolution == "Cleared: the record can be computed again."


def test_refill_row_with_a_missing_alarm_date_is_isolated():
    broken = pump(alarm_on=None)
    other = pump()
    scan(local(2025, 3, 20, 9))
    assert open_alerts(patient=broken.patient) == [("record_attention", dt.date(2025, 3, 20), "urgent")]
    assert "forecast_alarm_on = empty" in Alert.objects.get(kind="record_attention").message
    assert open_alerts(patient=other.patient) == [("refill_unbooked", dt.date(2025, 4, 1), "warning")]


# --- the scan as a whole ---------------------------------------------------------------------
def test_a_second_scan_changes_nothing(on_call, sms_outbox, nurse):
    pump(due_by=None, alarm_on=None, empty_on=None, problem="fill_not_recorded")
    pump(risk_previous_withdrawal=True)
    visit(implant=pump(**FAR), at=local(2025, 3, 19, 10), discrepancy_flagged=True, actual_residual_ml=Decimal("7"))
    explanted = pump(**FAR)
    Implant.objects.filter(pk=explanted.pk).update(explanted_on=dt.date(2025, 3, 1))
    first = scan(local(2025, 3, 20, 9))
    rows = list(Alert.objects.order_by("id").values())
    outbox = (len(mail.outbox), len(sms_outbox))
    second = scan(local(2025, 3, 20, 9, 1))
    assert first.raised == 4 and (second.raised, second.resolved, second.texted, second.escalated) == (0, 0, 0, 0)
    assert list(Alert.objects.order_by("id").values()) == rows
    assert (len(mail.outbox), len(sms_outbox)) == outbox == (2, 2)
