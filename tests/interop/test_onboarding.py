"""Onboarding from a messy 220-row sheet: the dry run's errors and differences, the import, the re-import."""

import datetime as dt
from decimal import Decimal

import pytest

from audit.models import AccessLog
from interop.onboarding import Outcome, clinic_import
from interop.sheet import SheetError, sheet_read
from patients.models import Patient
from pumps.models import DosePrescription, Implant
from refills.models import RefillVisit
from refills.selectors import patient_list_due_for_refill
from tests import factories
from tests.interop import sample as messy
from tests.staff.conftest import NOW

pytestmark = pytest.mark.django_db


@pytest.fixture
def frozen(clock):
    return clock(NOW)


@pytest.fixture
def taken_serial(db):
    """A pump already in ITB Clinic under another patient (the sheet's row 24 reuses its serial)."""
    return factories.ImplantFactory(serial_number=messy.TAKEN_SERIAL, patient=factories.PatientFactory(mrn="OTHER-1"))


@pytest.fixture
def sample():
    return messy.build()


def _counts():
    return (
        Patient.objects.count(),
        Implant.objects.count(),
        RefillVisit.objects.count(),
        DosePrescription.objects.count(),
        AccessLog.objects.count(),
    )


def test_the_dry_run_reports_every_mess_and_writes_nothing(frozen, clinic_admin, taken_serial, sample):
    before = _counts()
    sheet = sheet_read(content=sample.xlsx(), filename="schedule.xlsx")
    report = clinic_import(sheet=sheet, by=clinic_admin, dry_run=True)

    assert _counts() == before
    assert len(report.rows) == 220
    by_row = {row.row: row for row in report.rows}
    assert [e.row for e in sample.expected] == [row.row for row in report.rows]
    for expected in sample.errors:
        row = by_row[expected.row]
        assert row.outcome == Outcome.ERROR, (expected, row)
        assert expected.error_column in row.errors, (expected, row.errors)
        assert expected.error_words in row.errors[expected.error_column], (expected, row.errors)
    for expected in sample.good:
        row = by_row[expected.row]
        assert row.errors == {}, (expected, row.errors)
        assert row.outcome == Outcome.CREATED
        assert (row.due_by.computed, row.alarm_on.computed, row.empty_on) == (
            messy.DUE_BY,
            messy.ALARM_ON,
            messy.EMPTY_ON,
        ), expected
        assert row.due_by.sheet == expected.sheet_due_by
        assert row.due_by.differs is expected.differs
    assert report.counts == {"created": 204, "updated": 0, "unchanged": 0, "error": 16}
    # Every 25th row's own date was a week late: eight pumps, each highlighted with its difference.
    assert report.difference_count == 8
    assert {row.due_by.difference_days for row in report.rows if row.differences} == {7}
    assert "Row 1 is above the header; skipped." in report.notes
    assert any("repeats the header" in note for note in report.notes)
    assert any("“Comments” is not one ITB Clinic reads" in note for note in report.notes)


def test_a_confirmed_import_with_a_row_in_error_writes_nothing(frozen, clinic_admin, taken_serial, sample):
    before = _counts()
    sheet = sheet_read(content=sample.xlsx(), filename="schedule.xlsx")
    report = clinic_import(sheet=sheet, by=clinic_admin, dry_run=False)
    assert not report.written
    assert _counts() == before


def test_the_import_creates_every_pump_on_the_worklist_and_a_reimport_changes_nothing(
    frozen, clinic_admin, taken_serial, sample
):
    content = sample.xlsx(without_errors=True)
    report = clinic_import(sheet=sheet_read(content=content, filename="s.xlsx"), by=clinic_admin, dry_run=False)
    assert report.written
    assert report.counts == {"created": 204, "updated": 0, "unchanged": 0, "error": 0}

    imported = Implant.objects.filter(serial_number__startswith="SN0")
    assert imported.count() == 204
    assert set(
        imported.values_list("forecast_due_by", "forecast_alarm_on", "forecast_empty_on", "forecast_problem")
    ) == {(messy.DUE_BY, messy.ALARM_ON, messy.EMPTY_ON, "")}
    visit = RefillVisit.objects.get(implant__serial_number="SN00001")
    assert visit.volume_added_ml == Decimal("20")
    assert visit.daily_dose_after_mcg == Decimal("400")
    assert visit.performed_at.date() == messy.REFILLED
    assert visit.performed_by == clinic_admin
    patient = Patient.objects.get(mrn__iexact="IMP-0001")
    assert (patient.given_name, patient.spasticity_origin) == ("Given1", Patient.Origin.OTHER)  # MS
    assert Patient.objects.get(mrn__iexact="IMP-0003").spasticity_origin == Patient.Origin.SPINAL  # SCI
    assert patient.history.count() == 1
    assert AccessLog.objects.filter(resource="interop.clinic_import", action="change").count() == 204

    # On the nurses' worklist at once, with the computed dates.
    listed = set(patient_list_due_for_refill(today=NOW.date()).values_list("serial_number", flat=True))
    assert {f"SN{i:05d}" for i in (1, 2, 100, 220)} <= listed

    before = _counts()
    again = clinic_import(sheet=sheet_read(content=content, filename="s.xlsx"), by=clinic_admin, dry_run=False)
    assert again.counts == {"created": 0, "updated": 0, "unchanged": 204, "error": 0}
    assert _counts()[:4] == before[:4]


def test_a_later_sheet_adds_the_newer_refill_and_updates_contact_details(frozen, clinic_admin, clock):
    first = messy.Sample(rows=[messy.HEADERS, messy.good_row(1)])
    clinic_import(sheet=sheet_read(content=first.xlsx(), filename="a.xlsx"), by=clinic_admin, dry_run=False)
    later = messy.good_row(1)
    later[5] = "new@example.org"
    later[13] = "2025-03-18"
    later[19] = "2025-06-10"
    report = clinic_import(
        sheet=sheet_read(content=messy.Sample(rows=[messy.HEADERS, later]).xlsx(), filename="b.xlsx"),
        by=clinic_admin,
        dry_run=False,
    )
    assert report.counts["updated"] == 1
    implant = Implant.objects.get(serial_number="SN00001")
    assert RefillVisit.objects.filter(implant=implant).count() == 2
    assert implant.patient.email == "new@example.org"
    assert implant.forecast_due_by == dt.date(2025, 6, 11)  # alarm 16 June (90 days), five days before
    assert report.rows[0].due_by.difference_days == -1


def test_an_mrn_of_another_person_is_refused(frozen, clinic_admin):
    factories.PatientFactory(mrn="IMP-0001", given_name="Someone", family_name="Else")
    report = clinic_import(
        sheet=sheet_read(content=messy.Sample(rows=[messy.HEADERS, messy.good_row(1)]).xlsx(), filename="a.xlsx"),
        by=clinic_admin,
        dry_run=True,
    )
    assert "another name or date of birth" in report.rows[0].errors["Hospital number"]


def test_a_csv_with_semicolons_and_a_bom_reads_like_the_xlsx(frozen, clinic_admin):
    lines = [";".join(messy.HEADERS), ";".join(str(c) for c in messy.good_row(2))]
    content = ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8")
    report = clinic_import(sheet=sheet_read(content=content, filename="s.csv"), by=clinic_admin, dry_run=True)
    assert report.rows[0].errors == {}
    assert report.rows[0].due_by.computed == messy.DUE_BY


@pytest.mark.parametrize(
    ("content", "filename", "words"),
    [
        (b"", "a.csv", "empty"),
        (b"PK\x03\x04not really a zip", "a.xlsx", "not a readable XLSX"),
        (b"name,age\nx,1\n", "a.csv", "No header row"),
        (b"MRN,Given name,Family name\nA,B,C\n", "a.csv", "Required columns are missing"),
        (b"MRN,Hospital number,Given name,Family name\n", "a.csv", "Two columns"),
    ],
)
def test_a_file_that_is_not_a_sheet_is_refused_whole(content, filename, words):
    with pytest.raises(SheetError, match=words):
        sheet_read(content=content, filename=filename)


def _dose_row(i: int, dose: str, confirmed: str | None) -> tuple[list[str], list[object]]:
    headers = [*messy.HEADERS, "Dose confirmed"] if confirmed is not None else list(messy.HEADERS)
    row = messy.good_row(i)
    row[17] = dose
    return headers, [*row, confirmed] if confirmed is not None else row


@pytest.mark.parametrize(
    ("dose", "confirmed", "error"),
    [
        ("60", None, "Write yes in the “Dose confirmed” column if this is the prescription in force."),
        ("60", "", "Write yes in the “Dose confirmed” column"),
        ("60", "no", "Write yes in the “Dose confirmed” column"),
        ("60", "maybe", "“maybe” is not yes or no."),
        ("60", "Yes", None),
        ("60", "x", None),
        ("99999", "yes", "above the 2000 mcg/day limit"),  # a hard bound stays refused
    ],
)
def test_a_dose_outside_the_usual_range_imports_only_when_the_sheet_confirms_it(
    frozen, clinic_admin, dose, confirmed, error
):
    headers, row = _dose_row(1, dose, confirmed)
    report = clinic_import(
        sheet=sheet_read(content=messy.Sample(rows=[headers, row]).xlsx(), filename="a.xlsx"),
        by=clinic_admin,
        dry_run=False,
    )
    (result,) = report.rows
    if error is None:
        assert result.errors == {}
        assert result.outcome == Outcome.CREATED
        assert Implant.objects.get(serial_number="SN00001").forecast_due_by is not None
        assert DosePrescription.objects.get().daily_dose_mcg == Decimal(60)
        return
    column = "Dose confirmed" if "yes or no" in error else "Daily dose (mcg/day)"
    assert error in result.errors.get(column, ""), result.errors
    assert not Implant.objects.exists()


def test_the_templates_example_row_imports_as_it_stands(clock, clinic_admin):
    from interop.template import template_csv

    clock(dt.datetime(2026, 11, 20, 9, tzinfo=NOW.tzinfo))  # after the example's last refill
    report = clinic_import(
        sheet=sheet_read(content=template_csv(), filename="template.csv"), by=clinic_admin, dry_run=True
    )
    (row,) = report.rows
    assert row.errors == {}, row.errors
    assert row.outcome == Outcome.CREATED
