"""FHIR R4 export: every resource validated by fhir.resources' models, and read back against the database."""

import datetime as dt
import io
import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from audit.models import AccessLog
from interop.fhir import US_CORE_IMPLANTABLE_DEVICE
from interop.tasks import export_fhir
from pumps.models import DosePrescription
from refills.models import RefillVisit
from refills.services import care_record_mark_entered_in_error, dose_change_record, implant_replace
from tests import factories
from tests.helpers import implant_register_filled, refill_record
from tests.staff.conftest import NOW, at

pytestmark = pytest.mark.django_db


@pytest.fixture
def frozen(clock):
    return clock(NOW)


@pytest.fixture
def record(frozen, nurse, clinician):
    """A patient with a replaced pump, refills (one with a bridge bolus, one entered in error), a
    planned dose change, appointments of each status, a screening trial and two risk flags."""
    patient = factories.PatientFactory(
        mrn="FHIR-1",
        given_name="Ada",
        family_name="Lovelace",
        date_of_birth=dt.date(1970, 5, 17),
        phone="+447911123456",
        email="ada@example.org",
        address_line1="1 Analytical Row",
        address_town="London",
        address_postcode="N1 1AA",
        risk_high_sci=True,
        risk_previous_withdrawal=True,
    )
    trial = factories.ScreeningTrialFactory(patient=patient, clinician=clinician)
    step = factories.TrialStepFactory(trial=trial)
    factories.TrialAssessmentFactory(trial=trial, step=step)
    first = implant_register_filled(patient=patient, recorded_by=clinician, implanted_on=dt.date(2019, 2, 4))
    refill_record(implant=first, by=nurse, at=at(2019, 5, 2))
    pump = implant_replace(
        implant=first,
        explanted_on=dt.date(2024, 6, 3),
        reason="Battery at end of service",
        recorded_by=clinician,
        pump_model=factories.pump_model(),
        serial_number="NEW-2",
        surgeon="Ms Okafor",
        hospital="City Hospital",
        catheter_model="8781",
        catheter_tip_level="T9",
        fill_volume_ml=Decimal("20"),
        fill_drug=factories.drug("2000"),
        fill_drug_lot="L-THEATRE",
        starting_daily_dose_mcg=Decimal("400"),
    )
    refill_record(implant=pump, by=nurse, at=at(2024, 8, 20), bridge_bolus_mcg=Decimal("50"))
    refill_record(implant=pump, by=nurse, at=at(2024, 11, 10))
    wrong = refill_record(implant=pump, by=nurse, at=at(2025, 1, 6), added="18")
    care_record_mark_entered_in_error(record=wrong, by=nurse, reason="Wrong pump's numbers")
    dose_change_record(
        implant=pump,
        daily_dose_mcg=Decimal("420"),
        effective_at=at(2025, 3, 25, 9),
        prescribed_by=clinician,
        reason="Titration",
    )
    for status, day in (("completed", 6), ("cancelled", 10), ("no_show", 12), ("booked", 27)):
        factories.AppointmentFactory(
            implant=pump,
            status=status,
            starts_at=at(2025, 3 if day > 20 else 2, day),
            cancel_reason="Patient unwell" if status == "cancelled" else "",
        )
    return patient, first, pump, trial


def _bundle(client, patient) -> Bundle:
    response = client.get(reverse("api:fhir-patient-everything", args=[patient.pk]))
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/fhir+json"
    return Bundle.model_validate_json(response.content)


def _by_type(bundle: Bundle) -> dict[str, list]:
    found: dict[str, list] = {}
    for entry in bundle.entry:
        found.setdefault(entry.resource.get_resource_type(), []).append(entry.resource)
    return found


def test_everything_validates_and_reads_back_as_the_database(client, nurse, record):
    patient, first, pump, _trial = record
    client.force_login(nurse)
    bundle = _bundle(client, patient)
    assert bundle.type == "searchset"
    assert bundle.total == len(bundle.entry)
    found = _by_type(bundle)

    (fhir_patient,) = found["Patient"]
    assert fhir_patient.identifier[0].value == "FHIR-1"
    assert (fhir_patient.name[0].family, fhir_patient.name[0].given) == ("Lovelace", ["Ada"])
    assert fhir_patient.birthDate == dt.date(1970, 5, 17)
    assert {t.value for t in fhir_patient.telecom} == {"+447911123456", "ada@example.org"}
    assert fhir_patient.address[0].postalCode == "N1 1AA"

    pumps = {d.serialNumber: d for d in found["Device"] if d.id.startswith("pump-")}
    assert set(pumps) == {first.serial_number, "NEW-2"}
    assert pumps["NEW-2"].status == "active" and pumps[first.serial_number].status == "inactive"
    assert pumps["NEW-2"].meta.profile == [US_CORE_IMPLANTABLE_DEVICE]
    assert pumps["NEW-2"].deviceName[0].name == "SynchroMed II 20 mL"
    catheters = [d for d in found["Device"] if d.id.startswith("catheter-")]
    assert {c.note[0].text for c in catheters} == {"Catheter tip at T10", "Catheter tip at T9"}
    uses = {u.device.reference: u for u in found["DeviceUseStatement"]}
    assert uses[f"Device/pump-{first.pk}"].timingPeriod.end == dt.date(2024, 6, 3)
    assert uses[f"Device/pump-{pump.pk}"].status == "active"

    codes = sorted(p.code.coding[0].code for p in found["Procedure"])
    valid_refills = RefillVisit.objects.valid().filter(implant__patient=patient)
    assert valid_refills.count() == 3
    assert codes == sorted(["pump-implant", "pump-explant", "pump-replacement"] + ["pump-refill"] * 3)

    statements = sorted(found["MedicationStatement"], key=lambda m: m.effectivePeriod.start)
    prescriptions = DosePrescription.objects.valid().filter(implant__patient=patient).order_by("effective_at")
    assert [s.dosage[0].doseAndRate[0].rateQuantity.value for s in statements] == [
        p.daily_dose_mcg for p in prescriptions
    ]
    assert all(s.dosage[0].doseAndRate[0].rateQuantity.code == "ug/d" for s in statements)
    assert all(s.dosage[0].route.coding[0].code == "72607000" for s in statements)
    assert statements[-1].status == "intended"  # the dose change planned for 25 March
    assert statements[-2].status == "active"

    administrations = {m.id: m for m in found["MedicationAdministration"]}
    assert f"fill-implant-{pump.pk}" in administrations
    bolus = next(m for key, m in administrations.items() if key.startswith("bolus-"))
    assert (bolus.dosage.dose.value, bolus.dosage.dose.code) == (Decimal("50"), "ug")
    fills = [m for key, m in administrations.items() if key.startswith("fill-refill-")]
    assert sorted(m.dosage.dose.value for m in fills) == sorted(v.volume_added_ml for v in valid_refills)
    assert any(key.startswith("trial-step-") for key in administrations)

    residuals = [o for o in found["Observation"] if o.code.coding[0].code == "aspirated-residual-volume"]
    assert sorted(o.valueQuantity.value for o in residuals) == sorted(v.actual_residual_ml for v in valid_refills)
    assert any(o.code.coding[0].code == "penn-spasm-frequency" for o in found["Observation"])

    statuses = sorted(a.status for a in found["Appointment"])
    assert statuses == ["booked", "cancelled", "fulfilled", "noshow"]
    assert sorted(f.code.coding[0].code for f in found["Flag"]) == ["high-sci", "previous-withdrawal"]
    # The refill entered in error is not exported.
    assert all(str(m.dosage.dose.value) != "18" for m in fills)


def test_everything_is_logged_limited_to_staff_and_constant_in_queries(client, nurse, record, patient_user):
    patient = record[0]
    client.force_login(nurse)
    _bundle(client, patient)
    assert AccessLog.objects.filter(patient=patient, action="export", detail="FHIR $everything").count() == 1
    assert client.get(reverse("api:fhir-patient-everything", args=[999999])).status_code == 404

    # The same kinds of record, fewer of each: one pump, one refill, one appointment, a trial.
    other = factories.PatientFactory()
    trial = factories.ScreeningTrialFactory(patient=other)
    factories.TrialAssessmentFactory(trial=trial, step=factories.TrialStepFactory(trial=trial))
    small_pump = implant_register_filled(patient=other, implanted_on=dt.date(2024, 9, 2))
    refill_record(implant=small_pump, by=nurse, at=at(2024, 12, 2))
    factories.AppointmentFactory(implant=small_pump)
    client.get(reverse("api:fhir-patient-everything", args=[other.pk]))  # warm the session and caches
    with CaptureQueriesContext(connection) as small:
        _bundle(client, other)
    with CaptureQueriesContext(connection) as large:
        _bundle(client, patient)
    assert len(small.captured_queries) == len(large.captured_queries)

    client.force_login(patient_user)
    assert client.get(reverse("api:fhir-patient-everything", args=[patient.pk])).status_code == 403


def test_bulk_export_writes_one_valid_ndjson_file_per_type(record, tmp_path):
    patient = record[0]
    factories.PatientFactory()  # a patient with nothing but demographics
    out = io.StringIO()
    call_command("export_fhir", str(tmp_path), stdout=out)
    counts = {}
    for path in sorted(tmp_path.glob("*.ndjson")):
        kind = path.stem
        lines = path.read_text().splitlines()
        counts[kind] = len(lines)
        for line in lines:
            data = json.loads(line)
            assert data["resourceType"] == kind
            get_fhir_model_class(kind).model_validate(data)
    assert counts["Patient"] == 2
    assert counts["Device"] == 4
    assert "resources written" in out.getvalue()
    assert AccessLog.objects.filter(action="export", resource="interop.export_fhir").count() == 2

    again = export_fhir.apply(args=[str(tmp_path / "task")]).get()
    assert again == counts
    assert patient.pk
