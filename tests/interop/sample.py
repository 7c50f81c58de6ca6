"""A realistic messy onboarding sheet (220 patient rows) with what each row must come to.

Every row is docs/domain.md's worked example — a 20 mL SynchroMed II at 2000 mcg/mL and 400 mcg/day
refilled on 6 January 2025: due by 1 April 2025, alarm 6 April, empty 16 April — written in the
ways real sheets write it (dates in four formats and as spreadsheet cells, decimal commas, units in
cells, trailing spaces, other header names), plus the rows a real sheet gets wrong. The clock of
the tests is 20 March 2025, 09:00 London (tests/staff/conftest.py).
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass, field

from openpyxl import Workbook

# Other names for the columns, as clinics write them (the reader knows them as aliases).
HEADERS = [
    "Hospital number",
    "First name",
    "Surname",
    "DOB",
    "Diagnosis",
    "Email",
    "Mobile",
    "Pump",
    "Serial number",
    "Implant date",
    "Catheter tip",
    "Surgeon",
    "Implanting centre",
    "Last refill date",
    "Volume withdrawn (mL)",
    "Volume added (mL)",
    "Concentration (mcg/mL)",
    "Daily dose (mcg/day)",
    "Lot",
    "Next refill due",
    "Alarm date",
    "Comments",
]

DUE_BY = dt.date(2025, 4, 1)
ALARM_ON = dt.date(2025, 4, 6)
EMPTY_ON = dt.date(2025, 4, 16)
REFILLED = dt.date(2025, 1, 6)
TAKEN_SERIAL = "SN-TAKEN-1"


@dataclass
class Expected:
    row: int
    mrn: str
    error_column: str | None = None  # the header named in the row's error
    error_words: str = ""
    sheet_due_by: dt.date | None = None
    differs: bool = False


@dataclass
class Sample:
    rows: list[list[object]]
    expected: list[Expected] = field(default_factory=list)

    @property
    def errors(self) -> list[Expected]:
        return [e for e in self.expected if e.error_column]

    @property
    def good(self) -> list[Expected]:
        return [e for e in self.expected if not e.error_column]

    def xlsx(self, *, without_errors: bool = False) -> bytes:
        book = Workbook()
        sheet = book.active
        sheet.title = "Patients"
        skip = {e.row for e in self.errors} if without_errors else set()
        for number, row in enumerate(self.rows, start=1):
            sheet.append([] if number in skip else row)
        out = io.BytesIO()
        book.save(out)
        return out.getvalue()


_DATE_STYLES = [
    lambda d: d.isoformat(),
    lambda d: f"{d:%d/%m/%Y}",
    lambda d: f"{d.day}.{d.month}.{d.year}",
    lambda d: d,  # a date cell
    lambda d: (d - dt.date(1899, 12, 30)).days,  # an Excel serial number
    lambda d: dt.datetime.combine(d, dt.time.min),  # a date-time cell at midnight
]
_DIAGNOSES = ["MS", "Multiple sclerosis", "SCI", "spinal cord injury", "CP", "Cerebral palsy", "stroke", "Brain injury"]
_VOLUMES = ["20", "20 mL", "20ml", 20, "20,0"]
_RESIDUALS = ["3.5", "3,5", "3.5 mL", 3.5, "0"]
_CONCENTRATIONS = ["2000", "2000 mcg/mL", "2000mcg/ml", "2 mg/mL", 2000]
_DOSES = ["400", "400 mcg/day", 400, "0,4 mg/day", "400 µg/d"]
_MODELS = ["SynchroMed II 20 mL", "Synchromed II 20ml", " SynchroMed II 20 mL ", "Medtronic SynchroMed II 20 mL"]


def good_row(i: int) -> list[object]:
    date = _DATE_STYLES[i % len(_DATE_STYLES)]
    return [
        f"IMP-{i:04d}" + (" " if i % 7 == 0 else ""),
        f"Given{i}" + ("  " if i % 5 == 0 else ""),
        f"Family{i}",
        date(dt.date(1960 + i % 40, 1 + i % 12, 1 + i % 28)),
        _DIAGNOSES[i % len(_DIAGNOSES)],
        f"p{i}@example.org" if i % 3 else "",
        f"+44 7911 123{i % 1000:03d}" if i % 4 == 0 else "",
        _MODELS[i % len(_MODELS)],
        f"SN{i:05d}",
        date(dt.date(2024, 6, 3)),
        "T10" if i % 2 else "t 10",
        "Ms Okafor" if i % 2 else "",
        "City Hospital" if i % 3 else "",
        date(REFILLED),
        _RESIDUALS[i % len(_RESIDUALS)],
        _VOLUMES[i % len(_VOLUMES)],
        _CONCENTRATIONS[i % len(_CONCENTRATIONS)],
        _DOSES[i % len(_DOSES)],
        f"LOT{i % 4}" if i % 6 else "",
        date(DUE_BY),
        date(ALARM_ON) if i % 2 else "",
        "",
    ]


def build(count: int = 220) -> Sample:
    """`count` patient rows; the bad ones (and the mess around them) at fixed places."""
    rows: list[list[object]] = [["ITB pump refill schedule — exported 19/03/2025"], [], HEADERS]
    sample = Sample(rows=rows)

    def add(row: list[object], *, mrn: str, **expected) -> None:
        rows.append(row)
        sample.expected.append(Expected(row=len(rows), mrn=mrn.strip(), **expected))

    bad: dict[int, tuple[int, object, str, str]] = {
        # i: (column index, value, error column, words in the error)
        10: (7, "SynchroMed III 20 mL", "Pump", "not a pump model"),
        11: (16, "3000", "Concentration (mcg/mL)", "No drug"),
        12: (17, "99999", "Daily dose (mcg/day)", "mcg/day"),
        13: (15, "25", "Volume added (mL)", "holds 20 mL at most"),
        14: (13, "2025-04-02", "Last refill date", "future"),
        15: (13, "2024-05-01", "Last refill date", "before the implant"),
        16: (3, "2030-01-01", "DOB", ""),
        17: (9, "01/13/2024", "Implant date", "month first"),
        18: (3, "1/2/60", "DOB", "two-digit year"),
        19: (16, "2,000", "Concentration (mcg/mL)", "two ways"),
        20: (15, "20 L", "Volume added (mL)", "not mL"),
        21: (10, "T13", "Catheter tip", "not a vertebral level"),
        22: (4, "migraine", "Diagnosis", "not one of"),
        23: (14, "", "Volume withdrawn (mL)", "Required"),
        24: (8, TAKEN_SERIAL, "Serial number", "already the pump of"),
    }
    for i in range(1, count + 1):
        row = good_row(i)
        mrn = f"IMP-{i:04d}"
        if i in bad:
            column, value, error_column, words = bad[i]
            row[column] = value
            add(row, mrn=mrn, error_column=error_column, error_words=words)
        elif i == 30:
            # The same patient again, the MRN in lower case: a duplicated MRN.
            row = good_row(29)
            row[0] = "imp-0029"
            add(row, mrn="imp-0029", error_column="Hospital number", error_words="same MRN as row")
        elif i % 25 == 0:
            # The clinic's own date was a week late (it counted to the empty date): highlighted.
            row[19] = "08/04/2025"
            add(row, mrn=mrn, sheet_due_by=dt.date(2025, 4, 8), differs=True)
        else:
            add(row, mrn=mrn, sheet_due_by=DUE_BY)
        if i % 50 == 0:
            rows.append([])  # blank rows between blocks
        if i == 100:
            rows.append(list(HEADERS))  # the header repeated mid-sheet (a second printout pasted in)
    return sample
