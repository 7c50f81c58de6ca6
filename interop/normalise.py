"""What a clinic's spreadsheet cell means: dates, numbers and units, each read or refused with a reason.

Pure functions (no database). Every normalisation is documented in the import template's column
notes (interop/columns.py) and in docs/import.md; anything else is a row error, never a guess:

- dates: ISO (2026-03-01), day first (01/03/2026, 1.3.2026, 1-3-2026), a spreadsheet date cell,
  or an Excel serial number (46082); a two-digit year, a month-first date that cannot be read day
  first, or an impossible date is refused.
- numbers: a decimal comma (20,5) or point, spaces trimmed, a unit typed in the
  cell when it is the column's unit ("20 mL", "2000mcg/ml", "150 µg/day"), mg converted to mcg
  exactly ("2 mg/mL" is 2000 mcg/mL); any other unit, two numbers, or a comma before exactly
  three digits ("2,000": 2 or 2000?) is refused.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

# Excel's day 0 is 1899-12-30 (the 1900 leap-year bug included), so serial 1 is 1900-01-01.
EXCEL_EPOCH = dt.date(1899, 12, 30)
# Serial numbers of 1 January 1950 and 31 December 2100: anything else is not a date of this clinic.
EXCEL_SERIAL_RANGE = (18264, 73415)


class CellError(ValueError):
    """A cell that cannot be read: the message says why, in words for the clinic admin."""


def clean_text(value: object) -> str:
    """A cell as text: None is blank, spaces (including non-breaking ones) trimmed and collapsed."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).replace("\u00a0", " ").strip()
    return re.sub(r"\s+", " ", text)


_YES = {"yes", "y", "true", "1", "x", "✓"}
_NO = {"", "no", "n", "false", "0"}


def parse_yes_no(value: object) -> bool:
    """A yes/no cell: yes, y, true, 1, x or a tick; blank, no, n, false or 0 (any case)."""
    if isinstance(value, bool):
        return value
    text = clean_text(value).lower()
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise CellError(f"“{clean_text(value)}” is not yes or no.")


_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]00:00(?::00)?)?$")
_DAY_FIRST = re.compile(r"^(\d{1,2})[./-](\d{1,2})[./-](\d{2,4})$")
_SERIAL = re.compile(r"^\d{5}(?:\.\d+)?$")


def parse_date(value: object) -> dt.date | None:
    """A date cell, or None when blank; CellError when it cannot be read without guessing."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        if value.time() != dt.time.min:
            raise CellError(f"{value:%Y-%m-%d %H:%M} has a time of day; give the date only.")
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_serial(value)
    text = clean_text(value)
    if not text:
        return None
    if _SERIAL.match(text):
        return _from_serial(float(text))
    if match := _ISO.match(text):
        year, month, day = (int(part) for part in match.groups())
        return _date(year, month, day, text)
    if match := _DAY_FIRST.match(text):
        day_text, month_text, year_text = match.groups()
        if len(year_text) != 4:
            raise CellError(f"“{text}” has a two-digit year; write the year in full (e.g. 01/03/2026).")
        if int(month_text) > 12 and int(day_text) <= 12:
            raise CellError(f"“{text}” reads month first; dates are day first (day/month/year).")
        return _date(int(year_text), int(month_text), int(day_text), text)
    raise CellError(f"“{text}” is not a date; use day/month/year (01/03/2026) or 2026-03-01.")


def _date(year: int, month: int, day: int, text: str) -> dt.date:
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise CellError(f"“{text}” is not a real date.") from None


def _from_serial(serial: float) -> dt.date:
    if not float(serial).is_integer():
        raise CellError(f"{serial} has a time of day; give the date only.")
    low, high = EXCEL_SERIAL_RANGE
    if not low <= serial <= high:
        raise CellError(f"{int(serial)} is not a date between 1950 and 2100.")
    return EXCEL_EPOCH + dt.timedelta(days=int(serial))


# The unit families a column may be written in, each spelling with its factor to the column's unit.
VOLUME_UNITS = {"ml": Decimal(1)}
CONCENTRATION_UNITS = {
    "mcg/ml": Decimal(1),
    "ug/ml": Decimal(1),
    "µg/ml": Decimal(1),
    "μg/ml": Decimal(1),
    "mg/ml": Decimal(1000),
}
DOSE_UNITS = {
    "mcg/day": Decimal(1),
    "mcg/d": Decimal(1),
    "mcg/24h": Decimal(1),
    "ug/day": Decimal(1),
    "ug/d": Decimal(1),
    "µg/day": Decimal(1),
    "µg/d": Decimal(1),
    "μg/day": Decimal(1),
    "μg/d": Decimal(1),
    "mcg": Decimal(1),
    "mg/day": Decimal(1000),
    "mg/d": Decimal(1000),
}

_NUMBER = re.compile(r"^([+-]?\d+(?:[.,]\d+)?)\s*(.*)$")


def parse_quantity(value: object, *, units: dict[str, Decimal], unit_label: str) -> Decimal | None:
    """A number in the column's unit, or None when blank; "20,5 mL" -> 20.5, "2 mg/mL" -> 2000."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise CellError(f"“{value}” is not a number.")
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    text = clean_text(value)
    if not text:
        return None
    if re.match(r"^[+-]?\d+,\d{3}(?!\d)", text) or re.match(r"^[+-]?\d{1,3}([,.]\d{3}){2,}", text):
        # "2,000" is 2 with a decimal comma or 2000 with a thousands comma: never guessed.
        raise CellError(f"“{text}” could be read two ways; write it without a thousands separator (2000 or 2.5).")
    match = _NUMBER.match(text)
    if not match:
        raise CellError(f"“{text}” is not a number in {unit_label}.")
    number_text, unit_text = match.groups()
    try:
        number = Decimal(number_text.replace(",", "."))
    except InvalidOperation:
        raise CellError(f"“{text}” is not a number in {unit_label}.") from None
    unit = unit_text.lower().replace(" ", "")
    if not unit:
        return number
    factor = units.get(unit)
    if factor is None:
        raise CellError(f"“{text}”: the unit “{unit_text}” is not {unit_label}.")
    return number * factor


def parse_volume(value: object) -> Decimal | None:
    return parse_quantity(value, units=VOLUME_UNITS, unit_label="mL")


def parse_concentration(value: object) -> Decimal | None:
    return parse_quantity(value, units=CONCENTRATION_UNITS, unit_label="mcg/mL")


def parse_daily_dose(value: object) -> Decimal | None:
    return parse_quantity(value, units=DOSE_UNITS, unit_label="mcg/day")


def header_key(value: object) -> str:
    """A header cell as a lookup key: "Pump serial " -> "pump serial", "Date-of-birth" -> "date of birth"."""
    text = clean_text(value).lower()
    text = re.sub(r"\(.*?\)", " ", text)  # "Volume added (mL)" -> "volume added"
    text = re.sub(r"[^a-z0-9]+", " ", text)
    return text.strip()


def squash(value: object) -> str:
    """Text compared without case, spaces or punctuation: "SynchroMed II 20ml" -> "synchromedii20ml"."""
    return re.sub(r"[^a-z0-9]", "", clean_text(value).lower())
