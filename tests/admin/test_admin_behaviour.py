"""Search, never-delete, "Mark entered in error", history with its author, catalogues and settings."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from patients.models import Patient
from pumps.models import Implant, PumpModel
from refills.models import ClinicSettings, ClosedDay, RefillVisit
from tests import factories

from .conftest import changeform_data

pytestmark = pytest.mark.django_db

CLINICAL_CHANGELISTS = [
    "patients_patient",
    "patients_screeningtrial",
    "patients_trialstep",
    "patients_trialassessment",
    "pumps_implant",
    "pumps_doseprescription",
    "refills_refillvisit",
    "refills_appointment",
]


def _changelist(name: str) -> str:
    return reverse(f"admin:{name}_changelist")


def test_patient_search_finds_by_mrn_name_and_pump_serial(client, superuser):
    wanted = factories.PatientFactory(mrn="RX1001", given_name="Ada", family_name="Lovelace")
    factories.PatientFactory(mrn="RX2002", given_name="Alan", family_name="Turing")
    factories.ImplantFactory(patient=wanted, serial_number="NGP7654321")
    client.force_login(superuser)

    for term in ("RX1001", "lovelace", "NGP7654321"):
        response = client.get(_changelist("patients_patient"), {"q": term})
        assert [p.pk for p in response.context["cl"].result_list] == [wanted.pk], term


def test_refill_visit_search_by_patient_name_and_lot(client, superuser):
    patient = factories.PatientFactory(family_name="Nightingale")
    visit = factories.RefillVisitFactory(implant=factories.ImplantFactory(patient=patient), drug_lot="LOT-XYZ-9")
    factories.RefillVisitFactory()
    client.force_login(superuser)

    for term in ("nightingale", "LOT-XYZ-9"):
        response = client.get(_changelist("refills_refillvisit"), {"q": term})
        assert [v.pk for v in response.context["cl"].result_list] == [visit.pk], term


def test_alert_and_reminder_lists_filter_by_status_channel_kind_audience(client, superuser, make_row):
    from refills.models import Alert, Reminder

    reminder = make_row(Reminder)
    alert = make_row(Alert)
    client.force_login(superuser)

    hits = client.get(_changelist("refills_reminder"), {"status": "pending", "channel": "email"})
    misses = client.get(_changelist("refills_reminder"), {"status": "failed"})
    assert list(hits.context["cl"].result_list) == [reminder]
    assert list(misses.context["cl"].result_list) == []
    hits = client.get(_changelist("refills_alert"), {"kind": "refill_urgent", "audience": "nurses", "open": "yes"})
    misses = client.get(_changelist("refills_alert"), {"open": "no"})
    assert list(hits.context["cl"].result_list) == [alert]
    assert list(misses.context["cl"].result_list) == []


@pytest.mark.parametrize("name", CLINICAL_CHANGELISTS)
def test_clinical_records_offer_no_delete_but_mark_entered_in_error(client, superuser, name):
    client.force_login(superuser)

    response = client.get(_changelist(name))

    choices = [value for value, _label in response.context["action_form"].fields["action"].choices]
    assert "delete_selected" not in choices
    assert "mark_entered_in_error" in choices


def test_delete_page_and_bulk_delete_are_refused_for_a_clinical_record(client, superuser):
    visit = factories.RefillVisitFactory()
    client.force_login(superuser)

    page = client.get(reverse("admin:refills_refillvisit_delete", args=[visit.pk]))
    posted = client.post(reverse("admin:refills_refillvisit_delete", args=[visit.pk]), {"post": "yes"})
    bulk = client.post(
        _changelist("refills_refillvisit"),
        {"action": "delete_selected", ACTION_CHECKBOX_NAME: [visit.pk], "post": "yes"},
    )

    assert page.status_code == 403
    assert posted.status_code == 403
    assert bulk.status_code in (200, 302)
    assert RefillVisit.objects.filter(pk=visit.pk, entered_in_error=False).exists()


def test_mark_entered_in_error_asks_for_a_reason_first(client, superuser):
    visit = factories.RefillVisitFactory()
    client.force_login(superuser)

    response = client.post(
        _changelist("refills_refillvisit"), {"action": "mark_entered_in_error", ACTION_CHECKBOX_NAME: [visit.pk]}
    )

    assert response.status_code == 200
    assert "admin/mark_entered_in_error.html" in [t.name for t in response.templates]
    assert "reason" in response.context["form"].fields
    visit.refresh_from_db()
    assert visit.entered_in_error is False


def test_mark_entered_in_error_without_a_reason_changes_nothing(client, superuser):
    visit = factories.RefillVisitFactory()
    client.force_login(superuser)

    response = client.post(
        _changelist("refills_refillvisit"),
        {"action": "mark_entered_in_error", ACTION_CHECKBOX_NAME: [visit.pk], "apply": "1", "reason": "   "},
    )

    assert response.status_code == 200
    assert response.context["form"].errors["reason"]
    visit.refresh_from_db()
    assert visit.entered_in_error is False
    assert visit.history.count() == 1


def test_mark_entered_in_error_with_a_reason_keeps_the_rows_and_records_who_and_why(client, superuser):
    visits = [factories.RefillVisitFactory(), factories.RefillVisitFactory()]
    untouched = factories.RefillVisitFactory()
    client.force_login(superuser)

    response = client.post(
        _changelist("refills_refillvisit"),
        {
            "action": "mark_entered_in_error",
            ACTION_CHECKBOX_NAME: [v.pk for v in visits],
            "apply": "1",
            "reason": "Recorded against the wrong patient",
        },
    )

    assert response.status_code == 302
    for visit in visits:
        visit.refresh_from_db()
        assert visit.entered_in_error is True
        assert visit.entered_in_error_reason == "Recorded against the wrong patient"
        assert visit.entered_in_error_by == superuser
        assert visit.entered_in_error_at is not None
        assert visit.history.first().history_user == superuser
    untouched.refresh_from_db()
    assert untouched.entered_in_error is False
    assert RefillVisit.objects.count() == 3


def test_clinic_admin_cannot_mark_patients_entered_in_error(client, admin_staff):
    patient = factories.PatientFactory()
    client.force_login(admin_staff)

    response = client.post(
        _changelist("patients_patient"),
        {"action": "mark_entered_in_error", ACTION_CHECKBOX_NAME: [patient.pk], "apply": "1", "reason": "x"},
    )

    assert response.status_code in (200, 302)
    patient.refresh_from_db()
    assert patient.entered_in_error is False


def test_history_page_shows_a_change_and_the_user_who_made_it(client, superuser):
    patient = factories.PatientFactory(notes="")
    client.force_login(superuser)
    change_url = reverse("admin:patients_patient_change", args=[patient.pk])
    data = changeform_data(client.get(change_url), notes="Moved to the spinal injuries unit follow-up")

    saved = client.post(change_url, data)

    assert saved.status_code == 302, saved.context["adminform"].form.errors if saved.context else saved
    patient.refresh_from_db()
    assert patient.notes == "Moved to the spinal injuries unit follow-up"
    latest = patient.history.first()
    assert latest.history_user == superuser
    assert latest.history_type == "~"
    history = client.get(reverse("admin:patients_patient_history", args=[patient.pk]))
    assert history.status_code == 200
    html = history.content.decode()
    assert str(superuser) in html
    assert "Changed" in html


def test_history_revert_is_refused_for_clinical_records(client, superuser):
    patient = factories.PatientFactory(notes="first")
    version = patient.history.first()
    client.force_login(superuser)
    url = reverse("admin:patients_patient_simple_history", args=[patient.pk, version.history_id])

    assert client.get(url).status_code == 200
    assert client.post(url, {"notes": "reverted"}).status_code == 403
    patient.refresh_from_db()
    assert patient.notes == "first"


def test_superuser_adds_a_patient_through_the_service(client, superuser):
    client.force_login(superuser)

    response = client.post(
        reverse("admin:patients_patient_add"),
        {
            "mrn": "NEW0001",
            "given_name": "Mary",
            "family_name": "Seacole",
            "date_of_birth": "1960-11-23",
            "spasticity_origin": "spinal",
            "diagnosis": "sci",
            "sci_level": "T4",
            "risk_high_sci": "on",
            "reminder_channel": "sms",
            "phone": "+442079460321",
            "status": "active",
            "trials-TOTAL_FORMS": "0",
            "trials-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    patient = Patient.objects.get(mrn="NEW0001")
    assert (patient.family_name, patient.sci_level, patient.risk_high_sci) == ("Seacole", "T4", True)
    assert patient.history.first().history_user == superuser


def test_schedule_fields_of_an_implant_are_read_only_in_the_admin(client, superuser):
    implant = factories.ImplantFactory(surgeon="Mr Old")
    client.force_login(superuser)

    url = reverse("admin:pumps_implant_change", args=[implant.pk])
    response = client.get(url)

    form_fields = set(response.context["adminform"].form.fields)
    assert form_fields == {"serial_number", "surgeon", "hospital", "catheter_model", "catheter_tip_level", "mri_notes"}
    saved = client.post(
        url, changeform_data(response, surgeon="Ms New", explanted_on="2025-01-01", forecast_due_by="2030-01-01")
    )
    assert saved.status_code == 302
    implant.refresh_from_db()
    assert implant.surgeon == "Ms New"
    assert implant.explanted_on is None
    assert implant.forecast_due_by is None
    assert Implant.objects.count() == 1


def test_clinic_admin_edits_a_pump_model_and_the_constraint_is_a_form_error(client, admin_staff):
    model = factories.pump_model("SynchroMed II", "20")
    client.force_login(admin_staff)
    url = reverse("admin:pumps_pumpmodel_change", args=[model.pk])
    data = changeform_data(client.get(url))

    too_high = client.post(url, {**data, "alarm_threshold_ml": "25.0"})
    saved = client.post(url, {**data, "alarm_threshold_ml": "2.5"})

    assert too_high.status_code == 200
    assert too_high.context["adminform"].form.non_field_errors() == [
        "The alarm volume must be 0 mL or more and less than the reservoir."
    ]
    assert "pumpmodel_alarm_below_reservoir" not in too_high.content.decode()
    assert saved.status_code == 302
    model.refresh_from_db()
    assert model.alarm_threshold_ml == Decimal("2.5")
    assert model.history.first().history_user == admin_staff


def test_clinic_admin_adds_and_removes_a_closed_day(client, admin_staff):
    client.force_login(admin_staff)

    client.post(reverse("admin:refills_closedday_add"), {"date": "2025-12-25", "reason": "Christmas Day"})
    day = ClosedDay.objects.get(date=dt.date(2025, 12, 25))
    client.post(reverse("admin:refills_closedday_delete", args=[day.pk]), {"post": "yes"})

    assert not ClosedDay.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reminder_offsets_days", "14, two"),
        ("reminder_offsets_days", "14, -2"),
        ("reminder_offsets_days", "400"),
        ("closed_weekdays", ["5", "7"]),
        ("closed_weekdays", ["sat"]),
        ("usual_dose_ranges", "Spinal: 300 to 800"),
        ("usual_dose_ranges", "Spinal: 800 to 300\nCerebral: 90 to 703\nOther: 90 to 800\nChild: 25 to 1000"),
        ("usual_dose_ranges", '{"spinal": [300, 800]}'),
    ],
)
def test_clinic_settings_reject_malformed_lists_naming_the_field(client, admin_staff, field, value):
    settings_row = ClinicSettings.load()
    client.force_login(admin_staff)
    url = reverse("admin:refills_clinicsettings_change", args=[settings_row.pk])
    data = changeform_data(client.get(url))

    response = client.post(url, {**data, field: value})

    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    settings_row.refresh_from_db()
    assert settings_row.reminder_offsets_days == [14, 2]
    assert settings_row.closed_weekdays == [5, 6]


def test_clinic_settings_lists_read_as_words_not_json(client, admin_staff):
    settings_row = ClinicSettings.load()
    client.force_login(admin_staff)
    url = reverse("admin:refills_clinicsettings_change", args=[settings_row.pk])

    page = client.get(url)
    html = page.content.decode()
    data = changeform_data(page)
    response = client.post(
        url,
        {
            **data,
            "reminder_offsets_days": "2, 14, 7, 14",
            "closed_weekdays": ["6", "0"],
            "usual_dose_ranges": "Spinal: 250 to 800\nCerebral: 90 to 700\nOther: 90 to 800\nChild: 25 to 900",
        },
    )

    # the form shows the lists as a clinic admin reads them, never as JSON
    assert 'value="14, 2"' in html
    assert 'type="checkbox" name="closed_weekdays" value="5"' in html and "Saturday" in html
    assert "Spinal: 300 to 800" in html
    assert "[14, 2]" not in html and "[5, 6]" not in html and '"spinal"' not in html
    assert response.status_code == 302
    settings_row.refresh_from_db()
    assert settings_row.reminder_offsets_days == [14, 7, 2]
    assert settings_row.closed_weekdays == [0, 6]
    assert settings_row.usual_dose_ranges == {
        "spinal": [250, 800],
        "cerebral": [90, 700],
        "other": [90, 800],
        "child": [25, 900],
    }
    listing = client.get(reverse("admin:refills_clinicsettings_changelist")).content.decode()
    assert "14, 7, 2" in listing and "Monday, Sunday" in listing


def test_clinic_admin_changes_the_safety_margin(client, admin_staff):
    settings_row = ClinicSettings.load()
    client.force_login(admin_staff)
    url = reverse("admin:refills_clinicsettings_change", args=[settings_row.pk])
    data = changeform_data(client.get(url))

    response = client.post(url, {**data, "safety_margin_days": "3"})

    assert response.status_code == 302
    settings_row.refresh_from_db()
    assert settings_row.safety_margin_days == 3
    assert ClinicSettings.objects.count() == 1


def test_pump_model_list_loads_catalogue_rows(client, admin_staff):
    client.force_login(admin_staff)

    response = client.get(_changelist("pumps_pumpmodel"), {"q": "Prometra"})

    names = {str(m) for m in response.context["cl"].result_list}
    assert names == {str(m) for m in PumpModel.objects.filter(name="Prometra II")}
    assert len(names) == 2
