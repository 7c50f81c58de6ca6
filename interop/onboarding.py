"""Onboarding a clinic from its spreadsheet: every row judged by the staff forms' rules, dry run first.

`clinic_import` reads each row (interop/sheet.py, interop/normalise.py). A row that brings a new
pump (and, for a new MRN, its patient) is validated in memory by the services' own functions —
`patients.services.patient_build`, `pumps.services.implant_entry_check` / `implant_build` (the
pump registered without a fill: the sheet has the last refill instead), `refills.services.
refill_visit_prepare` and `pumps.services.dose_prescription_build` — so every rule of the staff
forms applies (an impossible date or dose is a row error), and its forecast is computed by the
one forecast function over the history being written. Those rows are then written in bulk with
their history rows (django-simple-history), a few queries per batch of rows. A row that changes
a record already in ITB Clinic (new contact details, a newer refill) goes through the services
themselves (`patient_update`, `refill_visit_record`), in its own savepoint. The whole import is
one transaction, rolled back for a dry run and whenever any row has an error (all or nothing).

Keys: a patient by MRN (without case), a pump by its serial. Re-importing the same file finds
everything in place and changes nothing. For each pump the report sets ITB Clinic's due-by and
alarm dates beside the dates the clinic had written, so a transcription or arithmetic slip in
the old spreadsheet shows before the clinic relies on the new dates.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models.functions import Upper
from django.utils import timezone
from phonenumber_field.phonenumber import to_python
from simple_history.utils import bulk_create_with_history

from audit.models import AccessLog
from itbclinic.accounts.models import User
from patients.models import VERTEBRAL_LEVELS, Patient, normalise_mrn
from patients.services import patient_build, patient_create, patient_update
from pumps.models import DosePrescription, Drug, DrugPumpInterval, Implant, PumpModel
from pumps.services import dose_prescription_build, implant_build, implant_entry_check, implant_register
from refills.clinic_time import clinic_day_start
from refills.models import ClinicSettings, RefillVisit
from refills.selectors import implant_forecast_compute, implant_history_events_of
from refills.services import REFILL_DOSE_REASON, refill_visit_prepare, refill_visit_record
from refills.validation import CONFIRMATION_HINT

from .columns import BY_KEY
from .models import ClinicImport, content_digest
from .normalise import (
    CellError,
    clean_text,
    parse_concentration,
    parse_daily_dose,
    parse_date,
    parse_volume,
    parse_yes_no,
    squash,
)
from .sheet import Sheet, sheet_read

NOT_RECORDED = "Not recorded (import)"
LOT_NOT_RECORDED = "not recorded (import)"
IMPORT_NOTE = "Imported from the clinic's spreadsheet."
# Rows read and written per query: well under SQLite's and PostgreSQL's parameter limits.
BATCH_SIZE = 500
_FORECAST_FIELDS = ["forecast_due_by", "forecast_alarm_on", "forecast_empty_on", "forecast_problem"]

_DIAGNOSES = {
    squash(alias): value
    for value, label in Patient.Diagnosis.choices
    for alias in (value, label, {"ms": "MS", "sci": "SCI", "cp": "CP"}.get(value, label))
}
_ORIGINS = {squash(alias): value for value, label in Patient.Origin.choices for alias in (value, label)}
_ORIGIN_OF_DIAGNOSIS = {
    Patient.Diagnosis.SCI: Patient.Origin.SPINAL,
    Patient.Diagnosis.CP: Patient.Origin.CEREBRAL,
    Patient.Diagnosis.BRAIN_INJURY: Patient.Origin.CEREBRAL,
    Patient.Diagnosis.STROKE: Patient.Origin.CEREBRAL,
}
_LEVELS = {squash(value): value for value, _ in VERTEBRAL_LEVELS}

# Where a service names a field, the sheet's column that holds it.
_COLUMN_OF_FIELD = {
    "mrn": "mrn",
    "given_name": "given_name",
    "family_name": "family_name",
    "date_of_birth": "date_of_birth",
    "email": "email",
    "phone": "phone",
    "diagnosis": "diagnosis",
    "spasticity_origin": "spasticity_origin",
    "serial_number": "pump_serial",
    "implanted_on": "implanted_on",
    "catheter_tip_level": "catheter_tip_level",
    "catheter_model": "catheter_model",
    "surgeon": "surgeon",
    "hospital": "hospital",
    "pump_model": "pump_model",
    "performed_at": "last_refill_on",
    "actual_residual_ml": "residual_ml",
    "volume_added_ml": "volume_added_ml",
    "drug": "concentration",
    "drug_lot": "drug_lot",
    "daily_dose_after_mcg": "daily_dose_mcg",
    "alarm_threshold_ml": "alarm_threshold_ml",
}


class Outcome:
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    ERROR = "error"


@dataclass
class DateCheck:
    """One forecast date: ITB Clinic's beside the sheet's, and the days between them."""

    label: str
    computed: dt.date | None
    sheet: dt.date | None

    @property
    def difference_days(self) -> int | None:
        if self.computed is None or self.sheet is None:
            return None
        return (self.sheet - self.computed).days

    @property
    def differs(self) -> bool:
        return self.sheet is not None and self.sheet != self.computed


@dataclass
class RowReport:
    row: int
    mrn: str
    outcome: str = Outcome.UNCHANGED
    errors: dict[str, str] = field(default_factory=dict)  # column header -> message
    notes: list[str] = field(default_factory=list)
    patient_id: int | None = None
    implant_id: int | None = None
    due_by: DateCheck | None = None
    alarm_on: DateCheck | None = None
    empty_on: dt.date | None = None

    @property
    def differences(self) -> list[DateCheck]:
        return [check for check in (self.due_by, self.alarm_on) if check is not None and check.differs]


@dataclass
class ImportReport:
    dry_run: bool
    rows: list[RowReport]
    notes: list[str]

    @property
    def error_rows(self) -> list[RowReport]:
        return [row for row in self.rows if row.errors]

    @property
    def written(self) -> bool:
        """Whether the import was kept: a confirmed run of at least one row, none in error."""
        return not self.dry_run and not self.error_rows and bool(self.rows)

    def count(self, outcome: str) -> int:
        return sum(1 for row in self.rows if row.outcome == outcome)

    @property
    def counts(self) -> dict[str, int]:
        outcomes = (Outcome.CREATED, Outcome.UPDATED, Outcome.UNCHANGED, Outcome.ERROR)
        return {outcome: self.count(outcome) for outcome in outcomes}

    @property
    def difference_count(self) -> int:
        return sum(1 for row in self.rows if row.differences)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-safe data (stored with the import, shown again on its page)."""

        def check(value: DateCheck | None) -> dict[str, Any] | None:
            if value is None:
                return None
            return {
                "label": value.label,
                "computed": value.computed.isoformat() if value.computed else None,
                "sheet": value.sheet.isoformat() if value.sheet else None,
                "difference_days": value.difference_days,
                "differs": value.differs,
            }

        return {
            "dry_run": self.dry_run,
            "written": self.written,
            "counts": self.counts,
            "differences": self.difference_count,
            "notes": self.notes,
            "rows": [
                {
                    "row": row.row,
                    "mrn": row.mrn,
                    "outcome": row.outcome,
                    "errors": row.errors,
                    "notes": row.notes,
                    "patient_id": row.patient_id if self.written else None,
                    "due_by": check(row.due_by),
                    "alarm_on": check(row.alarm_on),
                    "empty_on": row.empty_on.isoformat() if row.empty_on else None,
                }
                for row in self.rows
            ],
        }


class _RowError(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.errors = errors


class _Catalogue:
    """The pump models and drugs, read once per import."""

    def __init__(self) -> None:
        self.models = list(PumpModel.objects.filter(is_active=True))
        self.drugs = list(Drug.objects.filter(is_active=True, screening_only=False))

    def pump_model(self, text: str) -> PumpModel:
        wanted = squash(text.replace("ml", "").replace("mL", "").replace("ML", ""))
        matches = []
        for model in self.models:
            reservoir = squash(f"{model.reservoir_ml.normalize():f}")
            names = {squash(model.name) + reservoir, squash(f"{model.manufacturer} {model.name}") + reservoir}
            if wanted in names:
                matches.append(model)
        if len(matches) != 1:
            known = "; ".join(sorted(f"{m.name} {m.reservoir_ml.normalize():f} mL" for m in self.models))
            raise CellError(f"“{text}” is not a pump model of the catalogue ({known}).")
        return matches[0]

    def drug(self, *, concentration: Decimal, name: str) -> Drug:
        matches = [drug for drug in self.drugs if drug.concentration_mcg_per_ml == concentration]
        if name:
            matches = [drug for drug in matches if squash(drug.name) == squash(name)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            known = ", ".join(sorted({f"{d.concentration_mcg_per_ml.normalize():f}" for d in self.drugs}, key=float))
            what = (
                f"“{name}” at {concentration.normalize():f} mcg/mL" if name else f"{concentration.normalize():f} mcg/mL"
            )
            raise CellError(f"No drug of the catalogue is {what} (concentrations: {known} mcg/mL).")
        raise CellError("Two drugs of the catalogue have this concentration: name the drug in the “Drug” column.")


@dataclass
class _Parsed:
    mrn: str
    patient: dict[str, Any]
    pump_model: PumpModel
    serial: str
    implant: dict[str, Any]
    refilled_on: dt.date
    residual_ml: Decimal
    volume_added_ml: Decimal
    drug: Drug
    daily_dose_mcg: Decimal
    dose_confirmed: bool
    drug_lot: str
    alarm_threshold_ml: Decimal | None
    sheet_due_by: dt.date | None
    sheet_alarm_on: dt.date | None


def _parse(cells: dict[str, object], catalogue: _Catalogue, headers: dict[str, str]) -> tuple[_Parsed, list[str]]:
    errors: dict[str, str] = {}
    notes: list[str] = []
    values: dict[str, Any] = {}

    def header(key: str) -> str:
        return headers.get(key, BY_KEY[key].header)

    def read(key: str, parse: Any = clean_text) -> Any:
        try:
            value = parse(cells.get(key))
        except CellError as exc:
            errors[header(key)] = str(exc)
            return None
        if BY_KEY[key].required and value in (None, ""):
            errors[header(key)] = "Required."
        return value

    for key in ("mrn", "given_name", "family_name", "email", "phone", "pump_serial", "catheter_model", "drug"):
        values[key] = read(key)
    for key in ("surgeon", "hospital", "drug_lot"):
        values[key] = read(key)
    for key in ("date_of_birth", "implanted_on", "last_refill_on", "sheet_refill_by", "sheet_alarm_on"):
        values[key] = read(key, parse_date)
    for key in ("residual_ml", "volume_added_ml", "alarm_threshold_ml"):
        values[key] = read(key, parse_volume)
    values["concentration"] = read("concentration", parse_concentration)
    values["daily_dose_mcg"] = read("daily_dose_mcg", parse_daily_dose)
    values["dose_confirmed"] = read("dose_confirmed", parse_yes_no)

    diagnosis_text = read("diagnosis")
    diagnosis = _DIAGNOSES.get(squash(diagnosis_text)) if diagnosis_text else None
    if diagnosis_text and diagnosis is None:
        errors[header("diagnosis")] = f"“{diagnosis_text}” is not one of: MS, SCI, CP, brain injury, stroke, other."
    origin_text = read("spasticity_origin")
    origin = _ORIGINS.get(squash(origin_text)) if origin_text else None
    if origin_text and origin is None:
        errors[header("spasticity_origin")] = f"“{origin_text}” is not spinal, cerebral or other."
    if not origin_text and diagnosis:
        origin = _ORIGIN_OF_DIAGNOSIS.get(Patient.Diagnosis(diagnosis), Patient.Origin.OTHER)
        notes.append(f"Spasticity origin not given: {Patient.Origin(origin).label.lower()} from the diagnosis.")
    level_text = read("catheter_tip_level")
    level = _LEVELS.get(squash(level_text)) if level_text else None
    if level_text and level is None:
        errors[header("catheter_tip_level")] = f"“{level_text}” is not a vertebral level (C1–S5, e.g. T10)."

    model = None
    if model_text := read("pump_model"):
        try:
            model = catalogue.pump_model(model_text)
        except CellError as exc:
            errors[header("pump_model")] = str(exc)
    drug = None
    if values["concentration"] is not None:
        try:
            drug = catalogue.drug(concentration=values["concentration"], name=values["drug"] or "")
        except CellError as exc:
            errors[header("drug") if values["drug"] else header("concentration")] = str(exc)
    for key in ("surgeon", "hospital"):
        if not values[key]:
            values[key] = NOT_RECORDED
    if not values["drug_lot"]:
        values["drug_lot"] = LOT_NOT_RECORDED
        notes.append("Drug lot not given: recorded as “not recorded (import)”.")
    if errors:
        raise _RowError(errors)
    assert model is not None and drug is not None and diagnosis is not None and level is not None
    return (
        _Parsed(
            mrn=values["mrn"],
            patient={
                "mrn": values["mrn"],
                "given_name": values["given_name"],
                "family_name": values["family_name"],
                "date_of_birth": values["date_of_birth"],
                "diagnosis": diagnosis,
                "spasticity_origin": origin,
                "email": values["email"],
                "phone": values["phone"],
            },
            pump_model=model,
            serial=values["pump_serial"],
            implant={
                "implanted_on": values["implanted_on"],
                "surgeon": values["surgeon"],
                "hospital": values["hospital"],
                "catheter_tip_level": level,
                "catheter_model": values["catheter_model"],
            },
            refilled_on=values["last_refill_on"],
            residual_ml=values["residual_ml"],
            volume_added_ml=values["volume_added_ml"],
            drug=drug,
            daily_dose_mcg=values["daily_dose_mcg"],
            dose_confirmed=bool(values["dose_confirmed"]),
            drug_lot=values["drug_lot"],
            alarm_threshold_ml=values["alarm_threshold_ml"],
            sheet_due_by=values["sheet_refill_by"],
            sheet_alarm_on=values["sheet_alarm_on"],
        ),
        notes,
    )


_SHEET_CONFIRMATION_HINT = (
    f"Write yes in the “{BY_KEY['dose_confirmed'].header}” column if this is the prescription in force."
)


def _column_errors(exc: ValidationError, headers: dict[str, str], *, default: str) -> dict[str, str]:
    """A service's field errors under the sheet's column headers."""
    if not hasattr(exc, "error_dict"):
        return {default: " ".join(exc.messages)}
    errors: dict[str, str] = {}
    for name, messages in exc.message_dict.items():
        key = _COLUMN_OF_FIELD.get(name)
        column = headers.get(key, BY_KEY[key].header) if key else default
        text = " ".join(messages).replace(CONFIRMATION_HINT, _SHEET_CONFIRMATION_HINT)
        errors[column] = f"{errors[column]} {text}" if column in errors else text
    return errors


def _refill_time(day: dt.date, now: dt.datetime) -> dt.datetime:
    """A refill known by its date only: at noon that day, or now when noon is still to come today."""
    noon = clinic_day_start(day) + dt.timedelta(hours=12)
    return min(noon, now) if day == timezone.localdate(now) else noon


class _NeedsServices(Exception):
    """The row changes a record already in ITB Clinic: it goes through the services one by one."""


def _check_same_person(patient: Patient, parsed: _Parsed, headers: dict[str, str]) -> None:
    same_person = (
        squash(patient.given_name) == squash(parsed.patient["given_name"])
        and squash(patient.family_name) == squash(parsed.patient["family_name"])
        and patient.date_of_birth == parsed.patient["date_of_birth"]
    )
    if not same_person:
        raise _RowError(
            {
                headers.get("mrn", "MRN"): (
                    "This MRN is already a patient of ITB Clinic with another name or date of birth: check the MRN."
                )
            }
        )


def _contact_changes(patient: Patient, parsed: _Parsed) -> dict[str, str]:
    contact = {}
    if parsed.patient["email"] and parsed.patient["email"].lower() != patient.email.lower():
        contact["email"] = parsed.patient["email"]
    # The same number however it is spaced or prefixed ("+44 7911…" is "+447911…").
    if parsed.patient["phone"] and to_python(parsed.patient["phone"]) != patient.phone:
        contact["phone"] = parsed.patient["phone"]
    return contact


def _refill_is_new(latest: RefillVisit, parsed: _Parsed, report: RowReport, headers: dict[str, str]) -> bool:
    """Whether the sheet's refill is after ITB Clinic's latest (an earlier one is noted, not added)."""
    latest_on = timezone.localdate(latest.performed_at)
    if latest_on > parsed.refilled_on:
        report.notes.append(f"ITB Clinic has a later refill ({latest_on:%-d %b %Y}); the sheet's is not added.")
        return False
    if latest_on == parsed.refilled_on:
        if latest.volume_added_ml != parsed.volume_added_ml or latest.actual_residual_ml != parsed.residual_ml:
            raise _RowError(
                {
                    headers.get("last_refill_on", "Last refill"): (
                        "ITB Clinic has a refill on this date with other volumes: correct it on the patient page."
                    )
                }
            )
        return False
    return True


def _refill_arguments(parsed: _Parsed, *, by: User, performed_at: dt.datetime) -> dict[str, Any]:
    """The sheet's last refill as `refill_visit_record` takes it (the importing admin prescribes)."""
    return {
        "performed_at": performed_at,
        "performed_by": by,
        "actual_residual_ml": parsed.residual_ml,
        "volume_added_ml": parsed.volume_added_ml,
        "drug": parsed.drug,
        "drug_lot": parsed.drug_lot,
        "daily_dose_after_mcg": parsed.daily_dose_mcg,
        # A dose outside the usual range is imported only when the sheet says it is the prescription.
        "titration_confirmed": parsed.dose_confirmed,
        "prescriber": by,
        "alarm_threshold_ml": parsed.alarm_threshold_ml,
        "notes": IMPORT_NOTE,
    }


def _report_forecast(report: RowReport, parsed: _Parsed, implant: Implant) -> None:
    report.due_by = DateCheck("Refill by", implant.forecast_due_by, parsed.sheet_due_by)
    report.alarm_on = DateCheck("Alarm date", implant.forecast_alarm_on, parsed.sheet_alarm_on)
    report.empty_on = implant.forecast_empty_on


def _row_import(
    parsed: _Parsed,
    report: RowReport,
    *,
    by: User,
    now: dt.datetime,
    headers: dict[str, str],
    clinic: ClinicSettings,
) -> None:
    """One row through the services, for a row that changes a record already in ITB Clinic."""
    created = updated = False
    patient = Patient.objects.filter(mrn__iexact=parsed.mrn).first()
    if patient is None:
        try:
            patient = patient_create(data=parsed.patient, today=timezone.localdate(now))
        except ValidationError as exc:
            raise _service_error(exc, headers, default="MRN") from None
        created = True
    else:
        _check_same_person(patient, parsed, headers)
        if contact := _contact_changes(patient, parsed):
            try:
                patient = patient_update(patient=patient, data=contact, today=timezone.localdate(now))
            except ValidationError as exc:
                raise _service_error(exc, headers, default="MRN") from None
            updated = True
    report.patient_id = patient.pk

    implant = Implant.objects.valid().filter(serial_number__iexact=parsed.serial).select_related("patient").first()
    if implant is not None and implant.patient_id != patient.pk:
        raise _RowError(
            {
                headers.get(
                    "pump_serial", "Pump serial"
                ): f"Serial {parsed.serial} is already the pump of {implant.patient.mrn}."
            }
        )
    if implant is None:
        current = Implant.objects.valid().filter(patient=patient, explanted_on__isnull=True).first()
        if current is not None:
            raise _RowError(
                {
                    headers.get("pump_serial", "Pump serial"): (
                        f"{parsed.mrn} already has pump {current.serial_number} in ITB Clinic: record a "
                        "replacement on the patient page instead."
                    )
                }
            )
        try:
            # Registered without a fill (the sheet has none): the refill below gives the pump its
            # forecast, in the same savepoint, so registering alone computes none.
            implant = implant_register(
                patient=patient,
                recorded_by=by,
                now=now,
                skew_minutes=clinic.clock_skew_minutes,
                pump_model=parsed.pump_model,
                serial_number=parsed.serial,
                **parsed.implant,
            )
        except ValidationError as exc:
            raise _service_error(exc, headers, default="Pump serial") from None
        created = True
    elif implant.pump_model_id != parsed.pump_model.pk:
        raise _RowError(
            {headers.get("pump_model", "Pump model"): f"Pump {parsed.serial} is a {implant.pump_model} in ITB Clinic."}
        )
    report.implant_id = implant.pk

    latest = RefillVisit.objects.valid().filter(implant=implant).order_by("-performed_at").first()
    if latest is None or _refill_is_new(latest, parsed, report, headers):
        try:
            refill_visit_record(
                implant=implant,
                now=now,
                **_refill_arguments(parsed, by=by, performed_at=_refill_time(parsed.refilled_on, now)),
            )
        except ValidationError as exc:
            raise _service_error(exc, headers, default="Last refill") from None
        updated = updated or not created
    implant.refresh_from_db(fields=_FORECAST_FIELDS)
    _report_forecast(report, parsed, implant)
    report.outcome = Outcome.CREATED if created else Outcome.UPDATED if updated else Outcome.UNCHANGED


@dataclass
class _Found:
    """What ITB Clinic already holds for the rows of the file, read in a few queries per batch."""

    patients: dict[str, Patient] = field(default_factory=dict)  # by MRN as filed (upper case)
    implants: dict[str, Implant] = field(default_factory=dict)  # by serial, upper case
    active_implants: dict[int, Implant] = field(default_factory=dict)  # by patient id
    latest_visits: dict[int, RefillVisit] = field(default_factory=dict)  # by implant id
    caps: dict[int, dict[int, int | None]] = field(default_factory=dict)  # pump model id -> drug id -> days

    @classmethod
    def read(cls, parsed: list[_Parsed]) -> _Found:
        found = cls()
        for pump_model_id, drug_id, days in DrugPumpInterval.objects.values_list(
            "pump_model_id", "drug_id", "max_interval_days"
        ):
            found.caps.setdefault(pump_model_id, {})[drug_id] = days
        for start in range(0, len(parsed), BATCH_SIZE):
            batch = parsed[start : start + BATCH_SIZE]
            for patient in Patient.objects.filter(mrn__in={normalise_mrn(row.mrn) for row in batch}):
                found.patients[patient.mrn.upper()] = patient
            serials = (
                Implant.objects.valid()
                .annotate(serial_key=Upper("serial_number"))
                .filter(serial_key__in={row.serial.upper() for row in batch})
                .select_related("patient", "pump_model")
            )
            for implant in serials:  # the model's order (latest implant first), as `.first()` takes it
                found.implants.setdefault(implant.serial_number.upper(), implant)
        patient_ids = [patient.pk for patient in found.patients.values()]
        for start in range(0, len(patient_ids), BATCH_SIZE):
            active = Implant.objects.valid().filter(
                patient_id__in=patient_ids[start : start + BATCH_SIZE], explanted_on__isnull=True
            )
            for implant in active:
                found.active_implants.setdefault(implant.patient_id, implant)
        implant_ids = [implant.pk for implant in found.implants.values()]
        for start in range(0, len(implant_ids), BATCH_SIZE):
            visits = (
                RefillVisit.objects.valid()
                .filter(implant_id__in=implant_ids[start : start + BATCH_SIZE])
                .order_by("implant_id", "-performed_at")
            )
            for visit in visits:
                found.latest_visits.setdefault(visit.implant_id, visit)
        return found


@dataclass
class _NewPump:
    """A row that registers a pump (and, for a new MRN, its patient) with its last refill: built and
    validated in memory by the services' own rules, written in bulk."""

    report: RowReport
    patient: Patient
    patient_is_new: bool
    implant: Implant
    visit: RefillVisit
    prescription: DosePrescription


# A related row that the import has just read (or is creating) exists: full_clean need not ask.
_RELATIONS = {
    Patient: ["user", "entered_in_error_by"],
    Implant: ["patient", "pump_model", "recorded_by", "fill_drug", "entered_in_error_by"],
    DosePrescription: ["implant", "prescribed_by", "entered_in_error_by"],
}


def _service_error(exc: ValidationError, headers: dict[str, str], *, default: str) -> _RowError:
    return _RowError(_column_errors(exc, headers, default=default))


def _row_plan(
    parsed: _Parsed,
    report: RowReport,
    found: _Found,
    *,
    by: User,
    now: dt.datetime,
    headers: dict[str, str],
    clinic: ClinicSettings,
) -> _NewPump | None:
    """The row judged against what ITB Clinic holds, as `_row_import` judges it, without a query.

    Returns the new pump to write, or None when the row is in place already (its outcome and
    dates set on `report`). Raises `_NeedsServices` for a row that changes an existing record
    (contact details, a newer refill): that row goes through the services one by one.
    """
    patient = found.patients.get(normalise_mrn(parsed.mrn))
    if patient is None:
        try:
            patient = patient_build(data=parsed.patient, today=timezone.localdate(now), check_unique=False)
        except ValidationError as exc:
            raise _service_error(exc, headers, default="MRN") from None
        patient_is_new = True
    else:
        _check_same_person(patient, parsed, headers)
        if _contact_changes(patient, parsed):
            raise _NeedsServices
        patient_is_new = False

    implant = found.implants.get(parsed.serial.upper())
    if implant is not None:
        if patient_is_new or implant.patient_id != patient.pk:
            raise _RowError(
                {
                    headers.get(
                        "pump_serial", "Pump serial"
                    ): f"Serial {parsed.serial} is already the pump of {implant.patient.mrn}."
                }
            )
        if implant.pump_model_id != parsed.pump_model.pk:
            raise _RowError(
                {
                    headers.get(
                        "pump_model", "Pump model"
                    ): f"Pump {parsed.serial} is a {implant.pump_model} in ITB Clinic."
                }
            )
        report.patient_id = patient.pk
        report.implant_id = implant.pk
        latest = found.latest_visits.get(implant.pk)
        if latest is None or _refill_is_new(latest, parsed, report, headers):
            raise _NeedsServices
        _report_forecast(report, parsed, implant)
        report.outcome = Outcome.UNCHANGED
        return None

    if not patient_is_new and (current := found.active_implants.get(patient.pk)) is not None:
        raise _RowError(
            {
                headers.get("pump_serial", "Pump serial"): (
                    f"{parsed.mrn} already has pump {current.serial_number} in ITB Clinic: record a "
                    "replacement on the patient page instead."
                )
            }
        )
    try:
        entry = implant_entry_check(
            pump_model=parsed.pump_model,
            implanted_on=parsed.implant["implanted_on"],
            now=now,
            skew_minutes=clinic.clock_skew_minutes,
        )
        if entry.errors:
            raise ValidationError(entry.errors)
        implant = implant_build(
            patient=patient,
            pump_model=parsed.pump_model,
            serial_number=parsed.serial,
            recorded_by=by,
            entry=entry,
            **parsed.implant,
        )
        implant.full_clean(exclude=_RELATIONS[Implant], validate_constraints=False)
    except ValidationError as exc:
        raise _service_error(exc, headers, default="Pump serial") from None

    caps = found.caps.get(parsed.pump_model.pk, {})
    performed_at = _refill_time(parsed.refilled_on, now)
    try:
        # A new pump has no history: no fill, no refill, no prescription in force.
        prepared = refill_visit_prepare(
            implant=implant,
            clinic=clinic,
            now=now,
            history=[],
            caps=caps,
            dose_in_force=lambda at: None,
            **_refill_arguments(parsed, by=by, performed_at=performed_at),
        )
        visit = prepared.visit
        prescription = dose_prescription_build(
            implant=implant,
            daily_dose_mcg=visit.daily_dose_after_mcg,
            concentration_mcg_per_ml=parsed.drug.concentration_mcg_per_ml,
            effective_at=performed_at,
            prescribed_by=prepared.prescriber or by,
            reason=REFILL_DOSE_REASON,
        )
        prescription.full_clean(exclude=_RELATIONS[DosePrescription], validate_constraints=False)
    except ValidationError as exc:
        raise _service_error(exc, headers, default="Last refill") from None
    # The forecast the pump is stored with: the one function, over the history being written.
    history = implant_history_events_of(
        implant=implant, visits=[visit], prescriptions=[prescription], emptied_at=[], caps=caps
    )
    forecast = implant_forecast_compute(implant=implant, clinic=clinic, history=history)
    implant.forecast_alarm_on = forecast.alarm_on
    implant.forecast_empty_on = forecast.empty_on
    implant.forecast_due_by = forecast.due_by
    implant.forecast_problem = forecast.problem
    _report_forecast(report, parsed, implant)
    report.outcome = Outcome.CREATED
    return _NewPump(
        report=report,
        patient=patient,
        patient_is_new=patient_is_new,
        implant=implant,
        visit=visit,
        prescription=prescription,
    )


def _new_pumps_write(new: list[_NewPump]) -> None:
    """Patients, implants, refills and prescriptions in a few queries per batch, each with its
    history row (django-simple-history, as a save writes it).

    As the services leave it, the implant's history row is the pump as registered (no forecast
    yet: `implant_forecast_refresh` stores the forecast with an UPDATE, which writes no history),
    while the implant itself is inserted with its forecast, saving that UPDATE.
    """
    patients = [row.patient for row in new if row.patient_is_new]
    bulk_create_with_history(patients, Patient, batch_size=BATCH_SIZE)
    implants = Implant.objects.bulk_create([row.implant for row in new], batch_size=BATCH_SIZE)
    registered = []
    for implant in implants:
        as_registered = copy.copy(implant)
        as_registered.forecast_alarm_on = as_registered.forecast_empty_on = as_registered.forecast_due_by = None
        as_registered.forecast_problem = ""
        registered.append(as_registered)
    # No change reason, as a save leaves it (bulk_history_create would store "").
    Implant.history.bulk_history_create(registered, batch_size=BATCH_SIZE, default_change_reason=None)
    bulk_create_with_history([row.visit for row in new], RefillVisit, batch_size=BATCH_SIZE)
    bulk_create_with_history([row.prescription for row in new], DosePrescription, batch_size=BATCH_SIZE)
    for row in new:
        row.report.patient_id = row.patient.pk
        row.report.implant_id = row.implant.pk


def clinic_import(
    *, sheet: Sheet, by: User, dry_run: bool, now: dt.datetime | None = None, through_services: bool = False
) -> ImportReport:
    """Validate (and, unless `dry_run`, keep) every row of `sheet`; nothing is kept if a row is in error.

    A new pump (and its patient) is validated in memory by the services' own rules and written in
    bulk: a few queries per batch of rows, whatever the file's length. A row that changes a
    record already in ITB Clinic (new contact details, a newer refill) goes through the services
    themselves, in its own savepoint. `through_services=True` sends every row that way, one by
    one: the reference the bulk path is tested against (tests/interop/test_import_bulk.py).
    """
    now = timezone.localtime(now or timezone.now())
    catalogue = _Catalogue()
    clinic = ClinicSettings.load()
    report = ImportReport(dry_run=dry_run, rows=[], notes=list(sheet.notes))
    seen_mrn: dict[str, int] = {}
    seen_serial: dict[str, int] = {}
    with transaction.atomic():
        parsed_rows: list[tuple[_Parsed, RowReport]] = []
        for sheet_row in sheet.rows:
            row = RowReport(row=sheet_row.number, mrn=clean_text(sheet_row.cells.get("mrn")))
            report.rows.append(row)
            try:
                parsed, notes = _parse(sheet_row.cells, catalogue, sheet.headers)
                row.notes.extend(notes)
                for key, seen, value, name in (
                    ("mrn", seen_mrn, parsed.mrn, "MRN"),
                    ("pump_serial", seen_serial, parsed.serial, "serial"),
                ):
                    first = seen.setdefault(value.upper(), sheet_row.number)
                    if first != sheet_row.number:
                        raise _RowError({sheet.headers.get(key, name): f"The same {name} as row {first}."})
            except _RowError as exc:
                row.errors = exc.errors
                row.outcome = Outcome.ERROR
            else:
                parsed_rows.append((parsed, row))
        found = _Found() if through_services else _Found.read([parsed for parsed, _row in parsed_rows])
        new: list[_NewPump] = []
        for parsed, row in parsed_rows:
            try:
                try:
                    if through_services:
                        raise _NeedsServices
                    planned = _row_plan(parsed, row, found, by=by, now=now, headers=sheet.headers, clinic=clinic)
                except _NeedsServices:
                    with transaction.atomic():
                        _row_import(parsed, row, by=by, now=now, headers=sheet.headers, clinic=clinic)
                else:
                    if planned is not None:
                        new.append(planned)
            except _RowError as exc:
                row.errors = exc.errors
                row.outcome = Outcome.ERROR
        if dry_run or report.error_rows:
            transaction.set_rollback(True)
        else:
            _new_pumps_write(new)
            AccessLog.objects.bulk_create(
                (
                    AccessLog(
                        user=by,
                        username=by.get_username(),
                        patient_id=row.patient_id,
                        action=AccessLog.Action.CHANGE,
                        resource="interop.clinic_import",
                        detail=f"row {row.row}: {row.outcome}",
                    )
                    for row in report.rows
                    if row.patient_id is not None and row.outcome != Outcome.UNCHANGED
                ),
                batch_size=BATCH_SIZE,
            )
    return report


def clinic_import_check(*, content: bytes, filename: str, by: User, now: dt.datetime | None = None) -> ClinicImport:
    """Keep the uploaded file and its dry-run report; SheetError when the file is not a readable sheet."""
    now = now or timezone.now()
    sheet = sheet_read(content=content, filename=filename)
    report = clinic_import(sheet=sheet, by=by, dry_run=True, now=now)
    return ClinicImport.objects.create(
        filename=filename[:255],
        content=content,
        sha256=content_digest(content),
        uploaded_by=by,
        uploaded_at=now,
        report=report.as_dict(),
    )


def clinic_import_confirm(*, checked: ClinicImport, by: User, now: dt.datetime | None = None) -> ClinicImport:
    """Import the checked file, all or nothing; a second confirmation (a double click) imports nothing more.

    The rows are checked again: the clinic's records may have changed since the dry run. When a row
    is now in error nothing is written and the new report says why.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = ClinicImport.objects.select_for_update().get(pk=checked.pk)
        if locked.imported_at is not None:
            return locked
        sheet = sheet_read(content=bytes(locked.content), filename=locked.filename)
        report = clinic_import(sheet=sheet, by=by, dry_run=False, now=now)
        locked.report = report.as_dict()
        if report.written:
            locked.imported_at = now
            locked.imported_by = by
        locked.save(update_fields=["report", "imported_at", "imported_by"])
    return locked
