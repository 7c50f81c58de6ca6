import datetime as dt
import re

import pytest
from django.urls import reverse

from audit.models import AccessLog
from refills.services import appointment_book
from tests import factories
from tests.helpers import refill_record

from .conftest import at

pytestmark = pytest.mark.django_db


def test_the_patient_page_shows_dates_chart_battery_and_timeline(nurse_client, nurse, refilled):
    refilled.patient.referred_on = dt.date(2024, 1, 15)
    refilled.patient.save()
    factories.ScreeningTrialFactory(patient=refilled.patient, started_on=dt.date(2024, 3, 4), verdict="positive")
    appointment_book(patient=refilled.patient, kind="refill", starts_at=at(2025, 3, 31), booked_by=nurse)
    # when
    response = nurse_client.get(reverse("staff:patient_detail", args=[refilled.patient_id]))
    html = response.content.decode()
    # then: the forecast in force
    assert response.status_code == 200
    assert "1 Apr 2025" in html and "in 12 days" in html  # due by
    assert "6 Apr 2025" in html and "in 17 days" in html  # alarm
    assert "16 Apr 2025" in html  # empty
    assert "Mon 31 Mar 2025" in html  # booked refill
    # the reservoir chart and the battery bar are inline SVG without style attributes (CSP)
    assert html.count("<svg") == 2
    assert 'class="chart reservoir-chart"' in html and 'class="chart battery-bar"' in html
    assert "due by 1 Apr 2025" in html
    assert " style=" not in html and "<script>" not in html
    # the timeline runs from referral to what is booked ahead (the dose set at a refill is in its line)
    timeline = html.split('class="timeline"', 1)[1].split("</ol>", 1)[0]
    titles = re.findall(r'<span class="what">([^<]+)</span>', timeline)
    assert titles == [
        "Referred for ITB",
        "Screening trial (bolus (lumbar puncture))",
        "Pump implanted: Medtronic SynchroMed II 20 mL",
        "Refill",
        "Today",
        # planned by appointment_book itself (the reminder hook); the 14-day one was already past
        "Email reminder 2 days before: pending",
        "Refill appointment: booked",
    ]
    # the portal invitation link (nurses invite)
    assert f"/portal/invite/{refilled.patient_id}/" in html


def test_each_view_of_a_record_is_in_the_access_log(nurse_client, nurse, refilled):
    nurse_client.get(reverse("staff:patient_detail", args=[refilled.patient_id]))
    entry = AccessLog.objects.get(patient=refilled.patient)
    assert (entry.user, entry.action, entry.resource) == (nurse, "view", "staff:patient_detail")


def test_printing_the_wallet_card_is_logged_as_an_export(nurse_client, nurse, refilled):
    nurse_client.get(reverse("staff:wallet_card", args=[refilled.patient_id]))
    entry = AccessLog.objects.get(patient=refilled.patient)
    assert (entry.user, entry.action, entry.detail) == (nurse, "export", "pump passport")


def test_a_flagged_discrepancy_is_visible_on_the_page_and_in_the_timeline(nurse_client, nurse, refilled, frozen):
    refill_record(implant=refilled, by=nurse, at=at(2025, 3, 19), residual="1.0")
    html = nurse_client.get(reverse("staff:patient_detail", args=[refilled.patient_id])).content.decode()
    assert "Residual discrepancy -4.60 mL" in html
    assert "Refill: residual discrepancy" in html


def test_a_patient_without_a_pump_is_offered_the_trial_and_the_implant(clinician_client):
    patient = factories.PatientFactory()
    html = clinician_client.get(reverse("staff:patient_detail", args=[patient.pk])).content.decode()
    assert "No active pump" in html
    assert reverse("staff:trial_start", args=[patient.pk]) in html
    assert reverse("staff:implant_register", args=[patient.pk]) in html
    assert "<svg" not in html
