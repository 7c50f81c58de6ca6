"""The bulk import writes exactly what the services write one row at a time, in a few queries per batch."""

import math

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from audit.models import AccessLog
from interop.onboarding import BATCH_SIZE, clinic_import
from interop.sheet import sheet_read
from patients.models import Patient
from pumps.models import DosePrescription, Implant
from refills.models import RefillVisit
from refills.selectors import implant_forecast_compute
from tests import factories
from tests.interop import sample as messy
from tests.staff.conftest import NOW

pytestmark = pytest.mark.django_db

# Each table the import writes, the natural key of its rows, and the ids that differ between two
# runs (the rows' own and those of the rows the import creates: compared through their keys).
_TABLES = [
    (Patient, "mrn", {"id"}),
    (Implant, "serial_number", {"id", "patient_id"}),
    (RefillVisit, "pump_serial", {"id", "implant_id"}),
    (DosePrescription, "implant__serial_number", {"id", "implant_id"}),
]


@pytest.fixture
def frozen(clock):
    return clock(NOW)


@pytest.fixture
def taken_serial(db):
    return factories.ImplantFactory(serial_number=messy.TAKEN_SERIAL, patient=factories.PatientFactory(mrn="OTHER-1"))


def _rows(model, key, ignored, *, history=False):
    manager = model.history if history else model.objects
    ignored = ignored | ({"history_id"} if history else set())
    rows = {}
    for values in manager.annotate(_key=F(key)).values():
        name = values.pop("_key")
        rows.setdefault(name, []).append({k: v for k, v in values.items() if k not in ignored})
    return {name: sorted(versions, key=repr) for name, versions in rows.items()}


def _snapshot():
    """Every row the import writes, keyed by MRN or serial, field by field; the audit entries."""
    tables = {}
    for model, key, ignored in _TABLES:
        tables[model.__name__] = _rows(model, key, ignored)
        tables[f"history of {model.__name__}"] = _rows(model, key, ignored, history=True)
    tables["AccessLog"] = sorted(
        (patient_mrn, detail, action, resource, username)
        for patient_mrn, detail, action, resource, username in AccessLog.objects.filter(
            resource="interop.clinic_import"
        ).values_list("patient__mrn", "detail", "action", "resource", "username")
    )
    return tables


def _report(report):
    data = report.as_dict()
    for row in data["rows"]:
        row["patient"] = Patient.objects.get(pk=row.pop("patient_id")).mrn if row["patient_id"] else None
    return data


def _import_both_ways(content, admin):
    """The import through the services one row at a time, then in bulk: (report, tables) each."""
    results = []
    for through_services in (True, False):
        with transaction.atomic():
            report = clinic_import(
                sheet=sheet_read(content=content, filename="s.xlsx"),
                by=admin,
                dry_run=False,
                through_services=through_services,
            )
            results.append((_report(report), _snapshot()))
            transaction.set_rollback(True)
    return results


def test_the_bulk_import_writes_what_the_services_write_row_by_row(frozen, clinic_admin, taken_serial):
    content = messy.build().xlsx(without_errors=True)

    (services_report, services_tables), (bulk_report, bulk_tables) = _import_both_ways(content, clinic_admin)

    assert bulk_report == services_report
    assert bulk_report["counts"] == {"created": 204, "updated": 0, "unchanged": 0, "error": 0}
    assert bulk_tables.keys() == services_tables.keys()
    for table, rows in services_tables.items():
        assert bulk_tables[table] == rows, table
    # One history row each, as a save writes it: the pump as registered, before its forecast.
    assert {len(versions) for versions in bulk_tables["history of Implant"].values()} == {1}
    imported = {mrn for mrn in bulk_tables["history of Patient"] if mrn.startswith("IMP-")}
    assert len(imported) == len(bulk_tables["history of RefillVisit"]) == 204
    assert {v[0]["forecast_due_by"] for v in bulk_tables["history of Implant"].values()} == {None}
    assert len(bulk_tables["AccessLog"]) == 204


def test_the_bulk_import_stores_the_forecast_engines_dates(frozen, clinic_admin):
    content = messy.Sample(rows=[messy.HEADERS, *(messy.good_row(i) for i in range(1, 13))]).xlsx()
    report = clinic_import(sheet=sheet_read(content=content, filename="s.xlsx"), by=clinic_admin, dry_run=False)

    assert report.written
    for implant in Implant.objects.filter(serial_number__startswith="SN0").select_related("pump_model", "patient"):
        forecast = implant_forecast_compute(implant=implant)  # from the rows in the database
        assert (implant.forecast_due_by, implant.forecast_alarm_on, implant.forecast_empty_on) == (
            forecast.due_by,
            forecast.alarm_on,
            forecast.empty_on,
        )
        assert forecast.due_by == messy.DUE_BY
        visit = RefillVisit.objects.get(implant=implant)
        assert (visit.due_by, visit.alarm_on, visit.empty_on) == (messy.DUE_BY, messy.ALARM_ON, messy.EMPTY_ON)


def test_the_dry_run_reports_the_same_in_bulk_as_through_the_services(frozen, clinic_admin, taken_serial):
    sheet = sheet_read(content=messy.build().xlsx(), filename="s.xlsx")
    services = clinic_import(sheet=sheet, by=clinic_admin, dry_run=True, through_services=True)
    bulk = clinic_import(sheet=sheet, by=clinic_admin, dry_run=True)
    assert bulk.as_dict() == services.as_dict()
    assert bulk.counts == {"created": 204, "updated": 0, "unchanged": 0, "error": 16}


def test_a_reimport_and_a_later_sheet_report_the_same_both_ways(frozen, clinic_admin):
    first = messy.Sample(rows=[messy.HEADERS, *(messy.good_row(i) for i in range(1, 6))])
    clinic_import(sheet=sheet_read(content=first.xlsx(), filename="a.xlsx"), by=clinic_admin, dry_run=False)
    later = [messy.good_row(i) for i in range(1, 8)]  # two new pumps
    later[0][5] = "new@example.org"  # new contact details: through the services
    later[1][13] = "2025-03-18"  # a newer refill: through the services
    later[2][13] = "2024-12-01"  # an older refill: noted, unchanged
    sheet = sheet_read(content=messy.Sample(rows=[messy.HEADERS, *later]).xlsx(), filename="b.xlsx")

    (services_report, services_tables), (bulk_report, bulk_tables) = _import_both_ways(
        messy.Sample(rows=[messy.HEADERS, *later]).xlsx(), clinic_admin
    )

    assert bulk_report == services_report
    assert bulk_tables == services_tables
    assert [row["outcome"] for row in bulk_report["rows"]] == [
        "updated",
        "updated",
        "unchanged",
        "unchanged",
        "unchanged",
        "created",
        "created",
    ]
    assert "ITB Clinic has a later refill" in bulk_report["rows"][2]["notes"][-1]
    assert clinic_import(sheet=sheet, by=clinic_admin, dry_run=True).counts["updated"] == 2


def _batches(model, rows):
    """The INSERT statements Django sends for `rows` rows at the import's batch size."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    size = min(BATCH_SIZE, max(connection.ops.bulk_batch_size(fields, [None] * rows), 1))
    return math.ceil(rows / size)


def _written_statements(rows):
    models = [Patient, Implant, RefillVisit, DosePrescription]
    inserts = sum(_batches(m, rows) + _batches(m.history.model, rows) for m in models) + _batches(AccessLog, rows)
    return inserts


def _queries(rows, admin, *, start):
    content = messy.Sample(rows=[messy.HEADERS, *(messy.good_row(i) for i in range(start, start + rows))]).xlsx()
    sheet = sheet_read(content=content, filename="s.xlsx")
    with CaptureQueriesContext(connection) as captured:
        report = clinic_import(sheet=sheet, by=admin, dry_run=False)
    assert report.counts["created"] == rows
    writes = [q for q in captured.captured_queries if q["sql"].startswith(("INSERT", "UPDATE"))]
    assert not any(q["sql"].startswith("UPDATE") for q in writes)  # the forecast goes in with the pump
    return len(captured.captured_queries), len(writes)


def test_importing_200_rows_runs_the_queries_of_20_but_for_the_insert_batches(frozen, clinic_admin):
    small_total, small_writes = _queries(20, clinic_admin, start=1)
    large_total, large_writes = _queries(200, clinic_admin, start=1001)

    # Reads, savepoints and the catalogue: the same whatever the length of the file.
    assert large_total - large_writes == small_total - small_writes
    # Writes: one statement per table per batch (SQLite caps a batch by its parameter limit).
    assert small_writes <= _written_statements(20)
    assert large_writes <= _written_statements(200)
    if connection.vendor == "postgresql":
        assert large_total == small_total
