"""The refill visit's safety checklist and lots (on the form), and the printable refill record."""

import datetime as dt

import pytest
from django.urls import reverse

from audit.models import AccessLog
from refills.alerts.scan import alerts_scan
from refills.models import Alert, RefillVisit
from tests.helpers import refill_record

from .conftest import NOW, at
from .test_refill_visit import form_data

pytestmark = pytest.mark.django_db


def _post(client, implant, **overrides):
    return client.post(reverse("staff:refill_visit_record", args=[implant.patient_id]), form_data(**overrides))


def test_the_form_asks_every_checklist_item_with_no_answer_chosen(nurse_client, refilled):
    html = nurse_client.get(reverse("staff:refill_visit_record", args=[refilled.patient_id])).content.decode()
    for label in (
        "Pump site checked",
        "Needle placement confirmed",
        "Aspiration before fill",
        "Alarm settings confirmed",
        "Symptom screen for withdrawal and overdose",
        "Post-fill check",
        "Drug lot expiry date",
        "Refill kit lot number",
    ):
        assert label in html
    assert (
        'name="check_pump_site" value="done"' in html and "checked" not in html.split('name="check_pump_site"')[1][:40]
    )


def test_all_done_is_recorded_with_the_lots(nurse_client, refilled):
    response = _post(nurse_client, refilled)

    assert response.status_code == 302
    visit = RefillVisit.objects.get(drug_lot="LOT-77")
    assert (visit.check_pump_site, visit.check_needle_placement, visit.check_aspiration) == ("done",) * 3
    assert (visit.check_alarm_settings, visit.check_symptom_screen, visit.post_fill_check) == ("done", "done", "passed")
    assert (visit.drug_lot_expires_on, visit.kit_lot) == (dt.date(2027, 6, 30), "KIT-55")
    assert visit.check_pump_site_reason == ""


@pytest.mark.parametrize(
    "item",
    ["check_pump_site", "check_needle_placement", "check_aspiration", "check_alarm_settings", "check_symptom_screen"],
)
def test_a_skipped_item_without_a_reason_is_refused_naming_its_reason(nurse_client, refilled, item):
    response = _post(nurse_client, refilled, **{item: "not_done"})

    assert response.status_code == 400
    assert list(response.context["form"].errors) == [f"{item}_reason"]
    assert "was not done: give the reason." in response.content.decode()
    assert not RefillVisit.objects.filter(drug_lot="LOT-77").exists()


def test_a_skipped_item_with_its_reason_is_accepted(nurse_client, refilled):
    response = _post(
        nurse_client,
        refilled,
        check_symptom_screen="not_done",
        check_symptom_screen_reason="Patient non-verbal today; carer reports no change",
    )

    assert response.status_code == 302
    visit = RefillVisit.objects.get(drug_lot="LOT-77")
    assert (visit.check_symptom_screen, visit.check_symptom_screen_reason) == (
        "not_done",
        "Patient non-verbal today; carer reports no change",
    )


def test_a_post_fill_check_not_done_needs_its_reason(nurse_client, refilled):
    refused = _post(nurse_client, refilled, post_fill_check="not_done")
    assert refused.status_code == 400
    assert list(refused.context["form"].errors) == ["post_fill_check_reason"]

    accepted = _post(nurse_client, refilled, post_fill_check="not_done", post_fill_check_reason="Programmer failed")
    assert accepted.status_code == 302
    assert RefillVisit.objects.get(drug_lot="LOT-77").post_fill_check_reason == "Programmer failed"


def test_an_unanswered_item_is_a_form_error(nurse_client, refilled):
    response = _post(nurse_client, refilled, check_aspiration="")

    assert response.status_code == 400
    assert list(response.context["form"].errors) == ["check_aspiration"]


def test_an_expired_lot_is_refused_with_a_clear_error(nurse_client, refilled):
    # the refill is on 20 Mar 2025: a lot that expired the day before is refused, one expiring that day is not
    refused = _post(nurse_client, refilled, drug_lot_expires_on="2025-03-19")
    assert refused.status_code == 400
    assert list(refused.context["form"].errors) == ["drug_lot_expires_on"]
    assert (
        "Lot LOT-77 expired on 19 Mar 2025, before the refill on 20 Mar 2025: never fill the pump with expired drug."
        in refused.content.decode()
    )
    assert not RefillVisit.objects.filter(drug_lot="LOT-77").exists()

    assert _post(nurse_client, refilled, drug_lot_expires_on="2025-03-20").status_code == 302


def test_a_failed_post_fill_check_on_the_form_raises_the_pocket_fill_alert(nurse_client, refilled):
    response = _post(nurse_client, refilled, post_fill_check="failed", post_fill_discrepancy_ml="1.5")
    assert response.status_code == 302
    visit = RefillVisit.objects.get(drug_lot="LOT-77")

    alerts_scan(now=NOW + dt.timedelta(minutes=5))

    alert = Alert.objects.get(kind=Alert.Kind.POCKET_FILL, visit=visit)
    assert (alert.severity, alert.audience, alert.resolved_at, alert.key_date) == (
        "urgent",
        "clinicians",
        None,
        dt.date(2025, 3, 20),
    )
    assert "the post-fill check failed: possible pocket fill, overdose risk" in alert.message


def test_a_passed_post_fill_check_raises_no_pocket_fill_alert(nurse_client, refilled):
    _post(nurse_client, refilled)
    alerts_scan(now=NOW + dt.timedelta(minutes=5))
    assert not Alert.objects.filter(kind=Alert.Kind.POCKET_FILL).exists()


def test_the_refill_record_has_every_item_of_the_printout(nurse_client, clinician, refilled):
    # given a refill that changes the dose (prescribed by the clinician), with a bridge bolus,
    # a skipped check and an ERI read from the pump
    response = _post(
        nurse_client,
        refilled,
        daily_dose_after_mcg="440",
        prescriber=str(clinician.pk),
        bridge_bolus_mcg="50",
        check_alarm_settings="not_done",
        check_alarm_settings_reason="Programmer battery flat; alarm re-checked by phone",
        battery_status="eri",
        battery_event_on="2025-03-10",
        post_fill_discrepancy_ml="0.2",
        notes="Site clean",
    )
    assert response.status_code == 302, response.context["form"].errors
    visit = RefillVisit.objects.get(drug_lot="LOT-77")

    # when the record is printed
    page = nurse_client.get(reverse("staff:refill_visit_print", args=[visit.pk]))
    html = page.content.decode()

    # then
    assert page.status_code == 200
    expected = [
        "Intrathecal pump refill record",
        f"<strong>{refilled.patient.full_name}</strong>",
        "MRN MRN-GH",
        "Thu 20 Mar 2025, 09:00",
        "Medtronic SynchroMed II 20 mL",
        f"<dd>{refilled.serial_number}</dd>",
        "<dt>Reservoir volume</dt><dd>20 mL</dd>",
        "Elective replacement indicator (ERI) (logged by the pump 10 Mar 2025)",
        '<td data-testid="dose-before">400 mcg/day</td><td data-testid="dose-after">440 mcg/day</td>',
        "<td>Simple continuous</td><td>Simple continuous</td>",
        '<td data-testid="concentration-before">2000 mcg/mL</td><td data-testid="concentration-after">2000 mcg/mL</td>',
        "lot LOT-77, expires 30 Jun 2027",
        "<dt>Refill kit lot</dt><dd>KIT-55</dd>",
        "<dt>Bridge or priming bolus</dt><dd>50 mcg</dd>",
        "<dt>Patient bolus</dt><dd>none</dd>",
        "<dt>Expected residual</dt><dd>5.40 mL</dd>",
        "<dt>Aspirated residual</dt><dd>5.20 mL</dd>",
        "<dt>Discrepancy</dt><dd>-0.20 mL</dd>",
        "<dt>Volume added</dt><dd>20 mL</dd>",
        "<dt>Alarm volume</dt><dd>2 mL</dd>",
        f"<dt>Refill due by</dt><dd><strong>{visit.due_by:%a} {visit.due_by.day} {visit.due_by:%b %Y}</strong></dd>",
        f"<dt>Low-reservoir alarm</dt><dd><strong>{visit.alarm_on:%a} {visit.alarm_on.day} {visit.alarm_on:%b %Y}",
        f"<dt>Reservoir empty</dt><dd>{visit.empty_on:%a} {visit.empty_on.day} {visit.empty_on:%b %Y}</dd>",
        '<th scope="row">Pump site checked</th><td>Done</td>',
        '<th scope="row">Needle placement confirmed</th><td>Done</td>',
        '<th scope="row">Aspiration before fill</th><td>Done</td>',
        '<th scope="row">Alarm settings confirmed</th><td><strong>Not done</strong> — Programmer battery flat; '
        "alarm re-checked by phone</td>",
        '<th scope="row">Symptom screen for withdrawal and overdose</th><td>Done</td>',
        '<th scope="row">Post-fill check</th><td>Passed (gap 0.20 mL)</td>',
        f"<dt>Refilled by</dt><dd>{visit.performed_by.get_full_name()}</dd>",
        f"<dt>Prescribed by</dt><dd>{clinician.get_full_name()}</dd>",
        "Site clean",
        "data-print",
    ]
    missing = [item for item in expected if item not in html]
    assert missing == []
    assert "Not recorded: this visit was entered before" not in html
    log = AccessLog.objects.filter(patient=refilled.patient, detail="refill record").get()
    assert (log.action, log.user) == (AccessLog.Action.VIEW, visit.performed_by)


def test_a_visit_from_before_the_checklist_shows_it_as_not_recorded(nurse_client, refilled):
    # the fixture's visit went through the service without checklist or lots, as old visits did
    visit = RefillVisit.objects.get(implant=refilled)
    html = nurse_client.get(reverse("staff:refill_visit_print", args=[visit.pk])).content.decode()

    assert "Not recorded: this visit was entered before the checklist was asked for." in html
    assert html.count("<td>Not recorded</td>") == 5
    assert "expires <em>not recorded</em>" in html
    assert "<dt>Refill kit lot</dt><dd>not recorded</dd>" in html


def test_the_visit_page_and_patient_page_link_the_record(nurse_client, nurse, refilled):
    visit = refill_record(implant=refilled, by=nurse, at=at(2025, 3, 20, 8), drug_lot="LOT-LINK")
    url = reverse("staff:refill_visit_print", args=[visit.pk])
    assert url in nurse_client.get(reverse("staff:refill_visit_done", args=[visit.pk])).content.decode()
    assert url in nurse_client.get(reverse("staff:patient_detail", args=[refilled.patient_id])).content.decode()
