import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from pumps.models import DosePrescription, Implant
from pumps.selectors import implant_get_active, implant_get_battery_window_opens_on, implant_get_replacement_plan
from pumps.services import implant_explant, implant_record_eri, implant_register
from tests import factories

pytestmark = pytest.mark.django_db


def register(patient, clinician, **kw):
    defaults = dict(
        patient=patient,
        pump_model=factories.pump_model("SynchroMed II", "40"),
        serial_number="NGP1234567",
        implanted_on=dt.date(2020, 2, 29),
        surgeon="Mr B. Surgeon",
        hospital="City Hospital",
        catheter_tip_level="T10",
        recorded_by=clinician,
    )
    defaults.update(kw)
    return implant_register(**defaults)


def test_register_with_a_starting_dose_writes_the_first_prescription(clinician):
    patient = factories.PatientFactory()
    implant = register(
        patient, clinician, starting_daily_dose_mcg=Decimal("100"), concentration_mcg_per_ml=Decimal("500")
    )
    assert implant.manufacturer == "Medtronic"
    assert implant.mri_notes.startswith("Interrogate the pump after MRI")
    prescription = DosePrescription.objects.get(implant=implant)
    assert (prescription.daily_dose_mcg, prescription.concentration_mcg_per_ml) == (Decimal("100"), Decimal("500"))
    assert implant_get_active(patient=patient) == implant


def test_one_active_implant_per_patient(clinician):
    patient = factories.PatientFactory()
    register(patient, clinician)
    with pytest.raises(ValidationError) as exc:
        register(patient, clinician, serial_number="NGP7654321")
    assert "patient" in exc.value.message_dict
    assert Implant.objects.count() == 1


def test_the_database_also_refuses_a_second_active_implant(clinician):
    implant = factories.ImplantFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        factories.ImplantFactory(patient=implant.patient)


def test_serial_is_unique_per_manufacturer(clinician):
    register(factories.PatientFactory(), clinician)
    with pytest.raises(ValidationError) as exc:
        register(factories.PatientFactory(), clinician)
    assert "serial_number" in exc.value.message_dict
    # the same serial from another manufacturer is another pump
    register(factories.PatientFactory(), clinician, pump_model=factories.pump_model("Prometra II", "20"))


def test_explant_then_a_new_implant(clinician):
    patient = factories.PatientFactory()
    first = register(patient, clinician)
    with pytest.raises(ValidationError) as exc:
        implant_explant(implant=first, explanted_on=dt.date(2019, 1, 1), reason="Battery", by=clinician)
    assert "explanted_on" in exc.value.message_dict
    implant_explant(implant=first, explanted_on=dt.date(2026, 8, 1), reason="End of battery life", by=clinician)
    second = register(patient, clinician, serial_number="NGP0000002", implanted_on=dt.date(2026, 8, 1))
    assert implant_get_active(patient=patient) == second


def test_explant_before_implant_is_refused_by_the_database():
    implant = factories.ImplantFactory(implanted_on=dt.date(2024, 4, 2))
    with pytest.raises(IntegrityError), transaction.atomic():
        Implant.objects.filter(pk=implant.pk).update(explanted_on=dt.date(2024, 4, 1))


def test_replacement_plan_uses_the_model_settings_and_the_eri(clinician):
    implant = register(factories.PatientFactory(), clinician)  # implanted 29 Feb 2020
    plan = implant_get_replacement_plan(implant=implant)
    assert (plan.hard_stop_on, plan.plan_by, plan.stops_on) == (
        dt.date(2027, 2, 28),
        dt.date(2026, 8, 28),
        dt.date(2027, 2, 28),
    )
    assert implant_get_battery_window_opens_on(implant=implant) == dt.date(2025, 2, 28)
    implant = implant_record_eri(implant=implant, eri_on=dt.date(2026, 6, 1), by=clinician)
    plan = implant_get_replacement_plan(implant=implant)
    assert plan.stops_on == dt.date(2026, 8, 30)  # ERI + 90 days comes first


def test_a_pump_without_battery_has_no_replacement_plan(clinician):
    implant = register(factories.PatientFactory(), clinician, pump_model=factories.pump_model("Codman 3000", "30"))
    assert implant_get_replacement_plan(implant=implant) is None
    assert implant_get_battery_window_opens_on(implant=implant) is None
