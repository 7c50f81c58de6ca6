"""The README's pictures of the staff app, taken from the demo clinic (`seed_demo`'s builder).

Skipped unless asked for (seeding forty patients takes a while):
    ITB_README_SCREENSHOTS=1 .venv/bin/python -m pytest tests/e2e/test_readme_screenshots.py
writes docs/screenshots/worklist.png and docs/screenshots/patient.png (and copies under
test-artifacts/e2e/).
"""

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from demo.clinic import seed_clinic, stages
from patients.models import Patient
from refills.alerts.scan import alerts_scan
from tests import factories

from .conftest import ARTIFACTS, login

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(
        os.environ.get("ITB_README_SCREENSHOTS") != "1",
        reason="regenerates docs/screenshots (ITB_README_SCREENSHOTS=1)",
    ),
]
DOCS = Path(settings.BASE_DIR) / "docs" / "screenshots"


def _save(page, name: str, *, height: int) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    DOCS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"]
    path = ARTIFACTS / f"readme_{name}.png"
    page.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height})
    shutil.copyfile(path, DOCS / f"{name}.png")


def test_readme_screenshots(ui, live_server):
    nurse = factories.NurseFactory(username="nurse", first_name="Nina", last_name="Okafor")
    clinician = factories.ClinicianFactory(username="clinician", first_name="Colin", last_name="Hart")
    seed_clinic(today=timezone.localdate(), users={"nurse": nurse, "clinician": clinician})
    alerts_scan(now=timezone.now())
    login(ui, live_server, nurse)
    expect(ui.get_by_role("heading", name="Worklist", level=1)).to_be_visible()
    _save(ui, "worklist", height=1150)
    patient = Patient.objects.get(mrn=stages()["due_soon_booked"][0])
    ui.goto(live_server.url + reverse("staff:patient_detail", args=[patient.pk]))
    expect(ui.locator(".reservoir-chart")).to_be_visible()
    _save(ui, "patient", height=1300)
