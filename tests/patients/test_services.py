import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from patients.models import Patient
from patients.selectors import patient_list, patient_list_visible_to, trial_get_summary
from patients.services import (
    patient_create,
    patient_update,
    trial_assessment_add,
    trial_record_verdict,
    trial_start,
    trial_step_add,
)
from tests import factories

pytestmark = pytest.mark.django_db
LONDON = ZoneInfo("Europe/London")


def test_patient_create_validates_and_names_the_field():
    with pytest.raises(ValidationError) as exc:
        patient_create(data={"mrn": "X1", "given_name": "Ann", "family_name": "Lee", "phone": "12"})
    assert {"date_of_birth", "phone", "spasticity_origin", "diagnosis"} <= set(exc.value.message_dict)
    assert Patient.objects.count() == 0


def test_patient_update_refuses_fields_it_does_not_know():
    patient = factories.PatientFactory()
    with pytest.raises(ValidationError) as exc:
        patient_update(patient=patient, data={"entered_in_error": True})
    assert "entered_in_error" in exc.value.message_dict


def test_patient_changes_are_kept_in_history():
    patient = factories.PatientFactory(family_name="Old")
    patient_update(patient=patient, data={"family_name": "New"})
    assert [h.family_name for h in patient.history.all()] == ["New", "Old"]


def test_a_patient_user_sees_only_their_own_record(patient_user, nurse):
    own = factories.PatientFactory(user=patient_user)
    other = factories.PatientFactory()
    assert list(patient_list_visible_to(user=patient_user)) == [own]
    assert set(patient_list_visible_to(user=nurse)) == {own, other}


def test_search_by_pump_serial():
    implant = factories.ImplantFactory(serial_number="NGP5550001")
    factories.PatientFactory()
    assert list(patient_list(search="5550001")) == [implant.patient]


def test_trial_summary_shows_change_from_baseline_and_the_starting_dose(clinician):
    trial = trial_start(patient=factories.PatientFactory(), clinician=clinician, started_on=dt.date(2025, 5, 6))
    step = trial_step_add(
        trial=trial,
        given_at=dt.datetime(2025, 5, 6, 9, tzinfo=LONDON),
        dose_mcg=Decimal("50"),
        volume_ml=Decimal("1"),
        given_by=clinician,
    )
    baseline = {"knee_extensors_l": "3", "knee_extensors_r": "1+"}
    trial_assessment_add(
        trial=trial,
        assessed_at=dt.datetime(2025, 5, 6, 8, 45, tzinfo=LONDON),
        assessed_by=clinician,
        hours_after=Decimal("0"),
        ashworth=baseline,
        penn_score=3,
    )
    trial_assessment_add(
        trial=trial,
        step=step,
        assessed_at=dt.datetime(2025, 5, 6, 13, tzinfo=LONDON),
        assessed_by=clinician,
        hours_after=Decimal("4"),
        ashworth={"knee_extensors_l": "1", "knee_extensors_r": "1"},
        penn_score=1,
    )
    trial_record_verdict(
        trial=trial,
        verdict="positive",
        positivity_rule="mas_lower_limb_mean_1",
        by=clinician,
        effective_bolus_mcg=Decimal("50"),
        effect_hours=Decimal("6"),
    )
    summary = trial_get_summary(trial_id=trial.pk)
    # (1 − 3) and (1 − 1.5) → mean −1.25
    assert summary.best_mas_change == Decimal("-1.25")
    assert [c.penn_change for c in summary.changes] == [None, -2]
    assert summary.suggested_starting_dose_mcg == Decimal("100")


def test_bad_ashworth_score_is_refused(clinician):
    trial = factories.ScreeningTrialFactory()
    with pytest.raises(ValidationError) as exc:
        trial_assessment_add(
            trial=trial,
            assessed_at=dt.datetime(2025, 5, 6, 8, tzinfo=LONDON),
            assessed_by=clinician,
            hours_after=Decimal("0"),
            ashworth={"knee_extensors_l": "5"},
        )
    assert "ashworth" in exc.value.message_dict


def test_a_positive_verdict_needs_the_effective_bolus(clinician):
    trial = factories.ScreeningTrialFactory()
    with pytest.raises(ValidationError) as exc:
        trial_record_verdict(trial=trial, verdict="positive", positivity_rule="clinician", by=clinician)
    assert "effective_bolus_mcg" in exc.value.message_dict
