"""Dates that cannot be true on a patient's record: refused in the services, named on the form and in the API.

A date of birth after today or before 1900, a referral after today (or before the birth), a screening
trial after today (or before the birth). The clock is frozen on Thursday 20 March 2025, 09:00 London.
"""

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.urls import reverse

from patients.models import Patient, ScreeningTrial
from patients.services import patient_create, patient_update, trial_start
from tests import factories

pytestmark = pytest.mark.django_db
LONDON = ZoneInfo("Europe/London")
NOW = dt.datetime(2025, 3, 20, 9, 0, tzinfo=LONDON)
TODAY = NOW.date()

PATIENT = {
    "mrn": "MRN-DATES",
    "given_name": "Mary",
    "family_name": "Somerville",
    "date_of_birth": dt.date(1980, 12, 26),
    "spasticity_origin": "spinal",
    "diagnosis": "ms",
    "reminder_channel": "email",
}


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


# --- the services ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"date_of_birth": dt.date(2025, 3, 21)},
            "date_of_birth",
            "The date of birth 2025-03-21 is in the future: today is 2025-03-20.",
        ),
        (
            {"date_of_birth": dt.date(1899, 12, 31)},
            "date_of_birth",
            "The date of birth 1899-12-31 is before 1900: check the year.",
        ),
        (
            {"referred_on": dt.date(2025, 3, 21)},
            "referred_on",
            "The referral date 2025-03-21 is in the future: today is 2025-03-20.",
        ),
        (
            {"referred_on": dt.date(1979, 1, 1)},
            "referred_on",
            "The referral date 1979-01-01 is before the date of birth (1980-12-26).",
        ),
        # Text, as a script might pass it: judged once the model has turned it into a date.
        (
            {"date_of_birth": "2030-01-01"},
            "date_of_birth",
            "The date of birth 2030-01-01 is in the future: today is 2025-03-20.",
        ),
    ],
)
def test_patient_create_refuses_dates_that_cannot_be_true(changes, field, message):
    with pytest.raises(ValidationError) as exc:
        patient_create(data={**PATIENT, **changes})

    assert exc.value.message_dict == {field: [message]}
    assert not Patient.objects.filter(mrn="MRN-DATES").exists()


@pytest.mark.parametrize(
    "changes",
    [
        {"date_of_birth": TODAY},  # born today: the limit itself is fine
        {"date_of_birth": dt.date(1900, 1, 1)},
        {"date_of_birth": dt.date(2024, 2, 29), "referred_on": dt.date(2024, 2, 29)},  # leap day
        {"referred_on": TODAY},
        {"referred_on": None},
    ],
)
def test_patient_create_accepts_dates_up_to_today(changes):
    patient = patient_create(data={**PATIENT, **changes})

    assert Patient.objects.get(pk=patient.pk).date_of_birth == changes.get("date_of_birth", PATIENT["date_of_birth"])


def test_today_is_an_argument_of_the_service():
    with pytest.raises(ValidationError) as exc:
        patient_create(data={**PATIENT, "referred_on": dt.date(2025, 3, 20)}, today=dt.date(2025, 3, 19))
    assert list(exc.value.message_dict) == ["referred_on"]


def test_a_missing_date_of_birth_is_the_model_s_error_alongside_a_future_referral():
    data = {key: value for key, value in PATIENT.items() if key != "date_of_birth"}
    with pytest.raises(ValidationError) as exc:
        patient_create(data={**data, "referred_on": dt.date(2026, 1, 1)})

    assert exc.value.message_dict == {
        "date_of_birth": ["This field cannot be null."],
        "referred_on": ["The referral date 2026-01-01 is in the future: today is 2025-03-20."],
    }


def test_patient_update_with_a_future_date_changes_nothing():
    patient = factories.PatientFactory(date_of_birth=dt.date(1970, 5, 1), family_name="Before", notes="")

    with pytest.raises(ValidationError) as exc:
        patient_update(patient=patient, data={"family_name": "After", "date_of_birth": dt.date(2031, 1, 1)})

    assert list(exc.value.message_dict) == ["date_of_birth"]
    patient.refresh_from_db()
    assert (patient.family_name, patient.date_of_birth) == ("Before", dt.date(1970, 5, 1))
    assert patient.history.count() == 1


def test_patient_update_judges_only_the_dates_it_sets():
    # An old record whose referral predates today's rule can still have its notes edited.
    patient = factories.PatientFactory(date_of_birth=dt.date(1970, 5, 1), referred_on=dt.date(1960, 1, 1))

    patient_update(patient=patient, data={"notes": "Prefers mornings"})

    patient.refresh_from_db()
    assert patient.notes == "Prefers mornings"


def test_a_new_date_of_birth_after_the_referral_is_refused():
    patient = factories.PatientFactory(date_of_birth=dt.date(1970, 5, 1), referred_on=dt.date(2020, 1, 1))

    with pytest.raises(ValidationError) as exc:
        patient_update(patient=patient, data={"date_of_birth": dt.date(2021, 1, 1)})

    assert exc.value.message_dict == {
        "date_of_birth": ["The referral date 2020-01-01 is before the date of birth (2021-01-01)."]
    }


@pytest.mark.parametrize(
    ("started_on", "message"),
    [
        (dt.date(2025, 3, 21), "The trial date 2025-03-21 is in the future: today is 2025-03-20."),
        (dt.date(1899, 12, 31), "The trial date 1899-12-31 is before 1900: check the year."),
        (dt.date(1969, 12, 31), "The trial date 1969-12-31 is before the patient's date of birth (1970-05-01)."),
    ],
)
def test_trial_start_refuses_a_date_that_cannot_be_true(clinician, started_on, message):
    patient = factories.PatientFactory(date_of_birth=dt.date(1970, 5, 1))

    with pytest.raises(ValidationError) as exc:
        trial_start(patient=patient, clinician=clinician, started_on=started_on)

    assert exc.value.message_dict == {"started_on": [message]}
    assert not ScreeningTrial.objects.filter(patient=patient).exists()


def test_trial_start_today_is_fine(clinician):
    trial = trial_start(patient=factories.PatientFactory(), clinician=clinician, started_on=TODAY)
    assert trial.started_on == TODAY


# --- the staff pages ---------------------------------------------------------------------


def form_data(**changes) -> dict[str, str]:
    return {key: str(value) for key, value in {**PATIENT, **changes}.items()} | {"email": "", "phone": ""}


def test_staff_form_shows_a_future_date_of_birth_next_to_the_field(client, nurse):
    client.force_login(nurse)

    response = client.post(reverse("staff:patient_create"), form_data(date_of_birth="2025-03-21"))

    assert response.status_code == 400
    assert response.context["form"].errors == {
        "date_of_birth": ["The date of birth 2025-03-21 is in the future: today is 2025-03-20."]
    }
    assert "The date of birth 2025-03-21 is in the future: today is 2025-03-20." in response.content.decode()
    assert not Patient.objects.filter(mrn="MRN-DATES").exists()


def test_staff_form_refuses_a_future_referral(client, nurse):
    client.force_login(nurse)

    response = client.post(reverse("staff:patient_create"), form_data(referred_on="2025-04-01"))

    assert response.status_code == 400
    assert list(response.context["form"].errors) == ["referred_on"]
    assert not Patient.objects.filter(mrn="MRN-DATES").exists()


def test_staff_trial_form_refuses_a_future_date(client, clinician):
    patient = factories.PatientFactory()
    client.force_login(clinician)

    response = client.post(
        reverse("staff:trial_start", args=[patient.pk]),
        {"started_on": "2025-03-21", "kind": "bolus", "positivity_rule": "clinician", "goals": ""},
    )

    assert response.status_code == 400
    assert "The trial date 2025-03-21 is in the future: today is 2025-03-20." in response.content.decode()
    assert not ScreeningTrial.objects.filter(patient=patient).exists()


# --- the API -----------------------------------------------------------------------------


def api(client, method: str, path: str, body: dict):
    return client.generic(method, path, json.dumps(body), content_type="application/json")


def api_patient(**changes) -> dict:
    return {key: str(value) for key, value in PATIENT.items()} | changes


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"date_of_birth": "2025-03-21"}, "date_of_birth"),
        ({"referred_on": "2025-03-21"}, "referred_on"),
        ({"referred_on": "1979-01-01"}, "referred_on"),
    ],
)
def test_api_create_answers_400_naming_the_field(client, nurse, changes, field):
    client.force_login(nurse)

    response = api(client, "POST", "/api/patients/", api_patient(**changes))

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert not Patient.objects.filter(mrn="MRN-DATES").exists()


def test_api_patch_with_a_future_date_of_birth_changes_nothing(client, nurse):
    patient = factories.PatientFactory(date_of_birth=dt.date(1970, 5, 1), notes="")
    client.force_login(nurse)

    response = api(client, "PATCH", f"/api/patients/{patient.pk}/", {"date_of_birth": "2026-01-01", "notes": "x"})

    assert response.status_code == 400
    assert response.json() == {"date_of_birth": ["The date of birth 2026-01-01 is in the future: today is 2025-03-20."]}
    patient.refresh_from_db()
    assert (patient.date_of_birth, patient.notes) == (dt.date(1970, 5, 1), "")


def test_api_trial_in_the_future_answers_400_naming_started_on(client, clinician):
    patient = factories.PatientFactory()
    client.force_login(clinician)

    response = api(client, "POST", "/api/trials/", {"patient": patient.pk, "started_on": "2025-03-21"})

    assert response.status_code == 400
    assert list(response.json()) == ["started_on"]
    assert not ScreeningTrial.objects.filter(patient=patient).exists()
