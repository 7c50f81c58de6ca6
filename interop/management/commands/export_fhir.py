"""`manage.py export_fhir DIR`: every patient's pump record as FHIR R4 NDJSON, one file per resource type."""

from pathlib import Path

from django.core.management.base import BaseCommand

from interop.fhir import clinic_export_ndjson


class Command(BaseCommand):
    help = "Write the whole clinic as FHIR R4 bulk-data NDJSON files (Patient.ndjson, Device.ndjson, …) into DIR."

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path)

    def handle(self, *args, directory: Path, **options):
        counts = clinic_export_ndjson(directory=directory)
        for kind, count in sorted(counts.items()):
            self.stdout.write(f"{kind:<26} {count:>7}  {directory / f'{kind}.ndjson'}")
        self.stdout.write(self.style.SUCCESS(f"{sum(counts.values())} resources written."))
