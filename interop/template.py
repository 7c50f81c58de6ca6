"""The downloadable onboarding template: the columns as a header, an example row, and their notes."""

import csv
import io

from openpyxl import Workbook
from openpyxl.styles import Font

from .columns import COLUMNS


def template_csv() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([column.header for column in COLUMNS])
    writer.writerow([column.example for column in COLUMNS])
    return out.getvalue().encode("utf-8-sig")


def template_xlsx() -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = "Patients"
    sheet.append([column.header for column in COLUMNS])
    sheet.append([column.example for column in COLUMNS])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    notes = book.create_sheet("Columns")
    notes.append(["Column", "Required", "Accepted", "Example"])
    for cell in notes[1]:
        cell.font = Font(bold=True)
    for column in COLUMNS:
        notes.append([column.header, "required" if column.required else "optional", column.accepts, column.example])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
