"""Reading an onboarding file (CSV or XLSX) into rows keyed by column, each with its sheet row number.

openpyxl reads XLSX (cells keep their types: a date cell is a date, a number a number); the csv
module reads CSV (the delimiter sniffed among comma, semicolon and tab; UTF-8 with or without a
BOM, else Windows-1252). Title rows above the header, blank rows and repeated header rows are
skipped and reported; unknown columns are reported and ignored.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from openpyxl import load_workbook

from .columns import COLUMNS, REQUIRED
from .normalise import clean_text, header_key

_NAMES = {header_key(name): column.key for column in COLUMNS for name in (column.header, column.key, *column.aliases)}
# A row is the header when it names at least this many known columns.
_HEADER_MIN_KNOWN = 3
MAX_ROWS = 20_000


class SheetError(ValueError):
    """The file as a whole cannot be read (wrong format, no header, a required column missing)."""


@dataclass
class SheetRow:
    number: int  # as the spreadsheet numbers it: the header is row 1 when it is the first line
    cells: dict[str, object]


@dataclass
class Sheet:
    headers: dict[str, str]  # column key -> the header as written in the file
    rows: list[SheetRow]
    notes: list[str] = field(default_factory=list)


def _xlsx_rows(content: bytes) -> Iterator[list[object]]:
    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise SheetError(f"This is not a readable XLSX file ({exc}).") from None
    sheet = book["Patients"] if "Patients" in book.sheetnames else book.worksheets[0]
    for row in sheet.iter_rows(values_only=True):
        yield list(row)
    book.close()


def _csv_rows(content: bytes) -> Iterator[list[object]]:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - cp1252 decodes almost every byte; kept for the odd undefined ones
        raise SheetError("The file's text encoding cannot be read; save it as CSV UTF-8.")
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    yield from csv.reader(io.StringIO(text, newline=""), dialect)


def sheet_read(*, content: bytes, filename: str) -> Sheet:
    """The rows of the file, keyed by column; SheetError when the file cannot be an onboarding sheet."""
    if not content:
        raise SheetError("The file is empty.")
    is_xlsx = filename.lower().endswith((".xlsx", ".xlsm")) or content[:2] == b"PK"
    raw_rows = _xlsx_rows(content) if is_xlsx else _csv_rows(content)
    headers: dict[int, str] = {}
    written: dict[str, str] = {}
    notes: list[str] = []
    rows: list[SheetRow] = []
    for number, raw in enumerate(raw_rows, start=1):
        texts = [clean_text(cell) for cell in raw]
        if not any(texts):
            continue
        keys = [_NAMES.get(header_key(text)) for text in texts]
        known = [key for key in keys if key]
        if len(known) >= _HEADER_MIN_KNOWN:
            if headers:
                notes.append(f"Row {number} repeats the header; skipped.")
                continue
            seen: set[str] = set()
            for position, (text, key) in enumerate(zip(texts, keys, strict=True)):
                if key is None:
                    if text:
                        notes.append(f"Column “{text}” is not one ITB Clinic reads; ignored.")
                    continue
                if key in seen:
                    raise SheetError(f"Two columns are “{written[key]}” and “{text}”: keep one.")
                seen.add(key)
                headers[position] = key
                written[key] = text
            missing = [key for key in REQUIRED if key not in seen]
            if missing:
                names = ", ".join(f"“{next(c.header for c in COLUMNS if c.key == key)}”" for key in missing)
                raise SheetError(f"Required columns are missing: {names}. Download the template to compare.")
            continue
        if not headers:
            notes.append(f"Row {number} is above the header; skipped.")
            continue
        cells = {key: raw[position] if position < len(raw) else None for position, key in headers.items()}
        rows.append(SheetRow(number=number, cells=cells))
        if len(rows) > MAX_ROWS:
            raise SheetError(f"The file has more than {MAX_ROWS:,} rows; split it.")
    if not headers:
        raise SheetError("No header row found: the first row should name the columns (download the template).")
    return Sheet(headers=written, rows=rows, notes=notes)
