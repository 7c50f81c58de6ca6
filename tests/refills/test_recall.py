"""Recall and field-safety search (issue 14, item 2): two lots and two serial ranges."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from audit.models import AccessLog
from patients.models import Patient
from refills.models import Appointment
from refills.recall import RecallCriteria, recall_search
from refills.services import appointment_book, implant_explant_record
from tests import factories
from tests.helpers import implant_register_filled, refill_record
from tests.refills.reminder_helpers import local

NOW = local(2025, 6, 2, 9)


def _pump(given, serial, *, lot_at_fill, implanted_on=dt.date(2024, 4, 2), pump=("SynchroMed II", "20"), **fields):
    patient = factories.PatientFactory(given_name=given, family_name="Recall")
    at = local(implanted_on.year, implanted_on.month, implanted_on.day, 12)
    with time_machine.travel(at, tick=False):
        implant = implant_register_filled(
            patient=patient, serial_number=serial, pump=pump, implanted_on=implanted_on, now=at, **fields
        )
    implant.fill_drug_lot = lot_at_fill
    implant.save(update_fields=["fill_drug_lot"])
    return implant


def seed(nurse):
    """Serials NGP1000–1002 (range 1) and NGP2000–2001 (range 2); lot A at fills, lot B at one refill."""
    p1 = _pump("One", "NGP1000", lot_at_fill="LOT-A")
    p2 = _pump("Two", "NGP1001", lot_at_fill="LOT-A", catheter_model="8709SC")
    p3 = _pump("Three", "NGP1002", lot_at_fill="LOT-C", implanted_on=dt.date(2024, 5, 20))
    p4 = _pump("Four", "NGP2000", lot_at_fill="LOT-C")
    p5 = _pump("Five", "NGP2001", lot_at_fill="LOT-C", pump=("SynchroMed II", "40"))
    # Lot B reached Three and Four at a refill; a later refill of Four used lot C again.
    with time_machine.travel(local(2024, 6, 25), tick=False):
        refill_record(implant=p3, by=nurse, at=local(2024, 6, 25), drug_lot="LOT-B")
        refill_record(implant=p4, by=nurse, at=local(2024, 6, 25), drug_lot="lot-b")
    with time_machine.travel(local(2024, 9, 10), tick=False):
        refill_record(implant=p4, by=nurse, at=local(2024, 9, 10), drug_lot="LOT-C")
    # Two is explanted (a past pump); One has a review booked.
    with time_machine.travel(NOW, tick=False):
        implant_explant_record(
            implant=p2, explanted_on=dt.date(2025, 5, 1), reason="Infection", by=factories.ClinicianFactory()
        )
        booked = appointment_book(
            patient=p1.patient,
            kind=Appointment.Kind.REVIEW,
            starts_at=local(2025, 6, 20, 10),
            booked_by=nurse,
        )
    return {"p": (p1, p2, p3, p4, p5), "booked": booked}


def _serials(**criteria) -> list[str]:
    found = recall_search(criteria=RecallCriteria(**criteria), visible=Patient.objects.all(), now=NOW)
    return [implant.serial_number for implant in found]


@pytest.mark.django_db
def test_recall_by_serial_range_lot_model_catheter_and_dates():
    nurse = factories.NurseFactory()
    seeded = seed(nurse)
    model_20 = seeded["p"][0].pump_model
    drug = seeded["p"][0].fill_drug

    assert _serials(serial_from="NGP1000", serial_to="NGP1999") == ["NGP1000", "NGP1001", "NGP1002"]
    assert _serials(serial_from="NGP2000", serial_to="NGP2999") == ["NGP2000", "NGP2001"]
    assert _serials(drug_lot="LOT-A") == ["NGP1000", "NGP1001"]  # at the fill in theatre
    assert _serials(drug_lot="lot-b") == ["NGP1002", "NGP2000"]  # at a refill, whatever the case
    assert _serials(drug_lot="LOT-B", serial_from="NGP2000", serial_to="NGP2999") == ["NGP2000"]
    assert _serials(drug=drug, drug_lot="LOT-C") == ["NGP1002", "NGP2000", "NGP2001"]
    assert _serials(pump_model=model_20) == ["NGP1000", "NGP1001", "NGP1002", "NGP2000"]
    assert _serials(catheter_model="8709sc") == ["NGP1001"]
    assert _serials(implanted_from=dt.date(2024, 5, 1), implanted_to=dt.date(2024, 5, 31)) == ["NGP1002"]
    assert _serials(drug_lot="LOT-A", status="active") == ["NGP1000"]
    assert _serials(drug_lot="LOT-A", status="past") == ["NGP1001"]
    assert _serials(drug_lot="LOT-Z") == []


@pytest.mark.django_db
def test_results_list_the_next_appointment_and_are_access_logged(client):
    nurse = factories.NurseFactory()
    seeded = seed(nurse)
    client.force_login(nurse)
    url = reverse("staff:recall_search")

    with time_machine.travel(NOW, tick=False):
        response = client.get(url, {"serial_from": "NGP1000", "serial_to": "NGP1999"})

    assert response.status_code == 200
    results = response.context["results"]
    assert [(i.serial_number, i.next_appointment_at) for i in results] == [
        ("NGP1000", seeded["booked"].starts_at),
        ("NGP1001", None),
        ("NGP1002", None),
    ]
    assert "None booked" in response.content.decode()
    logged = AccessLog.objects.filter(action="view", resource="staff:recall_search")
    assert sorted(logged.values_list("patient__given_name", flat=True)) == ["One", "Three", "Two"]


@pytest.mark.django_db
def test_the_csv_export_lists_every_match_and_logs_an_export_per_patient(client):
    nurse = factories.NurseFactory()
    seed(nurse)
    client.force_login(nurse)

    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse("staff:recall_csv"), {"drug_lot": "LOT-B"})

    assert response.status_code == 200
    lines = response.content.decode().splitlines()
    assert lines[0].startswith("mrn,patient,pump_model,serial")
    assert [line.split(",")[3] for line in lines[1:]] == ["NGP1002", "NGP2000"]
    exported = AccessLog.objects.filter(action="export", resource="staff:recall_csv")
    assert sorted(exported.values_list("patient__given_name", flat=True)) == ["Four", "Three"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params,field,message",
    [
        ({}, "__all__", "at least one criterion"),
        ({"serial_from": "NGP1000", "serial_to": "NGP999"}, "serial_to", "same number of characters"),
        ({"serial_from": "NGP2000", "serial_to": "NGP1000"}, "serial_to", "after its start"),
        ({"implanted_from": "2024-06-01", "implanted_to": "2024-01-01"}, "implanted_to", "on or after"),
        ({"implanted_from": "June"}, "implanted_from", "valid date"),
        ({"pump_model": "99999"}, "pump_model", "valid choice"),
    ],
)
def test_bad_criteria_are_form_errors_and_a_400_for_the_download(client, params, field, message):
    client.force_login(factories.ClinicianFactory())
    page = client.get(reverse("staff:recall_search"), {**params, "status": ""})
    assert page.status_code == 200
    assert message in " ".join(page.context["form"].errors[field])
    assert "results" not in page.context
    download = client.get(reverse("staff:recall_csv"), params)
    assert download.status_code == 400
    assert not AccessLog.objects.exists()


@pytest.mark.django_db
def test_the_search_costs_the_same_queries_for_three_and_for_many_matches(client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    nurse = factories.NurseFactory()
    seed(nurse)
    client.force_login(nurse)

    def count() -> int:
        with time_machine.travel(NOW, tick=False), CaptureQueriesContext(connection) as queries:
            response = client.get(reverse("staff:recall_search"), {"serial_from": "NGP1000", "serial_to": "NGP1999"})
        assert response.status_code == 200
        return len(queries.captured_queries)

    small = count()
    for n in range(10):
        _pump(f"More{n}", f"NGP15{n:02d}", lot_at_fill="LOT-A")
    assert count() == small
