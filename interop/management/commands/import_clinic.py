"""`manage.py import_clinic FILE [--dry-run] --user USERNAME`: onboard a clinic from its spreadsheet."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import pluralize

from interop.onboarding import clinic_import
from interop.sheet import SheetError, sheet_read
from itbclinic.accounts.models import User


class Command(BaseCommand):
    help = "Check (--dry-run) or import a CSV/XLSX of patients, pumps and last refills; all or nothing."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--dry-run", action="store_true", help="Check every row; write nothing.")
        parser.add_argument("--user", required=True, help="The clinic admin the records are entered as.")

    def handle(self, *args, file: Path, dry_run: bool, user: str, **options):
        try:
            by = User.objects.get(username=user, is_active=True)
        except User.DoesNotExist:
            raise CommandError(f"No active user {user!r}.") from None
        try:
            sheet = sheet_read(content=file.read_bytes(), filename=file.name)
        except (OSError, SheetError) as exc:
            raise CommandError(str(exc)) from None
        report = clinic_import(sheet=sheet, by=by, dry_run=dry_run)
        for note in report.notes:
            self.stdout.write(f"  {note}")
        for row in report.rows:
            line = f"row {row.row:>5}  {row.mrn:<16} {row.outcome:<9}"
            if row.due_by is not None:
                line += f" refill by {row.due_by.computed}"
                for check in row.differences:
                    line += f"  [{check.label}: sheet {check.sheet}, ITB Clinic {check.computed}]"
            self.stdout.write(line)
            for column, message in row.errors.items():
                self.stdout.write(f"        {column}: {message}")
            for note in row.notes:
                self.stdout.write(f"        note: {note}")
        counts = report.counts
        summary = (
            f"{len(report.rows)} row{pluralize(len(report.rows))}: {counts['created']} created, "
            f"{counts['updated']} updated, "
            f"{counts['unchanged']} unchanged, {counts['error']} in error; {report.difference_count} with dates "
            "that differ from the sheet's."
        )
        if report.written:
            self.stdout.write(self.style.SUCCESS(f"Imported. {summary}"))
        elif dry_run:
            self.stdout.write(f"Dry run, nothing written. {summary}")
        else:
            raise CommandError(f"Nothing imported: rows are in error. {summary}")
