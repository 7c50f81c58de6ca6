"""The bulk FHIR export as a Celery task (a whole clinic can take minutes: never in a request)."""

from pathlib import Path

from celery import shared_task

from .fhir import clinic_export_ndjson


@shared_task(name="interop.export_fhir")
def export_fhir(directory: str) -> dict[str, int]:
    """Write every patient's record as FHIR NDJSON into `directory` on the worker's disk."""
    return clinic_export_ndjson(directory=Path(directory))
