"""The onboarding sheet's columns: one row per patient with the pump and its last refill.

This list is the template (interop/template.py writes it as CSV and XLSX), the page that documents
it, and the reader's header matching (a header may be any of a column's names, case, spaces and
punctuation aside, and a unit in brackets ignored: "Volume added (mL)").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    required: bool
    accepts: str
    example: str
    aliases: tuple[str, ...] = ()


DATE_FORMATS = "a date: 2026-03-01, 01/03/2026 (day first), 1.3.2026, a spreadsheet date or an Excel serial number"

COLUMNS: tuple[Column, ...] = (
    Column(
        "mrn",
        "MRN",
        True,
        "the medical record number; compared without case",
        "DEMO-0101",
        ("medical record number", "hospital number", "patient id", "mrn number"),
    ),
    Column("given_name", "Given name", True, "text", "Alex", ("first name", "forename", "given names")),
    Column("family_name", "Family name", True, "text", "Morgan", ("surname", "last name")),
    Column("date_of_birth", "Date of birth", True, DATE_FORMATS, "14/02/1978", ("dob", "birth date", "born")),
    Column(
        "diagnosis",
        "Diagnosis",
        True,
        "multiple sclerosis (MS), spinal cord injury (SCI), cerebral palsy (CP), brain injury, stroke or other",
        "MS",
        ("condition",),
    ),
    Column(
        "spasticity_origin",
        "Spasticity origin",
        False,
        "spinal, cerebral or other; blank: spinal for SCI, cerebral for CP, brain injury and stroke, "
        "otherwise other (review it on the patient page)",
        "spinal",
        ("origin",),
    ),
    Column("email", "Email", False, "an email address", "alex@example.org", ("email address", "e mail")),
    Column(
        "phone",
        "Phone",
        False,
        "a phone number, national or international (+44…)",
        "020 7946 0101",
        ("phone number", "mobile", "telephone"),
    ),
    Column(
        "pump_model",
        "Pump model",
        True,
        "the catalogue's model and reservoir, e.g. SynchroMed II 20 mL (manufacturer optional)",
        "SynchroMed II 20 mL",
        ("pump", "model"),
    ),
    Column(
        "pump_serial",
        "Pump serial",
        True,
        "the serial number; one pump per serial",
        "NGP123456",
        ("serial", "serial number", "pump serial number"),
    ),
    Column("implanted_on", "Implanted on", True, DATE_FORMATS, "03/05/2022", ("implant date", "date implanted")),
    Column(
        "catheter_tip_level",
        "Catheter tip level",
        True,
        "a vertebral level, C1–S5 (e.g. T10)",
        "T10",
        ("catheter tip", "catheter level", "tip level"),
    ),
    Column("catheter_model", "Catheter model", False, "text", "Ascenda 8781", ("catheter",)),
    Column("surgeon", "Surgeon", False, "text; blank: “Not recorded (import)”", "Ms Okafor", ()),
    Column(
        "hospital",
        "Implanting hospital",
        False,
        "text; blank: “Not recorded (import)”",
        "City Hospital",
        ("hospital", "implanting centre", "implanting center"),
    ),
    Column(
        "last_refill_on",
        "Last refill",
        True,
        DATE_FORMATS + "; not in the future",
        "02/11/2026",
        ("last refill date", "refilled on", "date of last refill", "refill date"),
    ),
    Column(
        "residual_ml",
        "Volume withdrawn",
        True,
        "mL aspirated at that refill: 3.5, 3,5 or 3.5 mL",
        "3.5",
        ("residual", "aspirated", "volume aspirated", "residual volume", "withdrawn"),
    ),
    Column(
        "volume_added_ml",
        "Volume added",
        True,
        "mL put in at that refill",
        "20",
        ("added", "fill volume", "volume filled", "refill volume"),
    ),
    Column(
        "concentration",
        "Concentration",
        True,
        "mcg/mL (2000, 2000 mcg/mL or 2 mg/mL)",
        "2000",
        ("concentration mcg ml", "strength"),
    ),
    Column(
        "drug",
        "Drug",
        False,
        "the catalogue's drug name, when two drugs have the same concentration",
        "",
        ("drug name", "product"),
    ),
    Column(
        "daily_dose_mcg",
        "Daily dose",
        True,
        "mcg/day (400, 400 mcg/day or 0.4 mg/day)",
        "400",
        ("dose", "daily dose mcg", "dose mcg day", "rate"),
    ),
    Column(
        "dose_confirmed",
        "Dose confirmed",
        False,
        "yes when a daily dose outside the clinic's usual range for the patient is the prescription "
        "in force (yes, y, true, 1 or x); blank or no: such a dose is refused, as on the refill form",
        "",
        ("confirmed", "dose outside usual range confirmed", "prescription confirmed", "unusual dose confirmed"),
    ),
    Column(
        "drug_lot",
        "Drug lot",
        False,
        "the lot number; blank: “not recorded (import)”",
        "LT2291",
        ("lot", "batch", "lot number"),
    ),
    Column(
        "alarm_threshold_ml",
        "Alarm volume",
        False,
        "mL; blank: the pump model's",
        "2",
        ("low reservoir alarm", "alarm ml", "alarm threshold"),
    ),
    Column(
        "sheet_refill_by",
        "Refill by",
        False,
        DATE_FORMATS + "; the date the clinic worked out, compared with ITB Clinic's",
        "26/01/2027",
        ("next refill", "refill due", "due by", "next refill due"),
    ),
    Column(
        "sheet_alarm_on",
        "Alarm date",
        False,
        DATE_FORMATS + "; the low-reservoir alarm date the clinic worked out, compared",
        "31/01/2027",
        ("alarm on", "low reservoir alarm date"),
    ),
)

BY_KEY = {column.key: column for column in COLUMNS}
REQUIRED = tuple(column.key for column in COLUMNS if column.required)
