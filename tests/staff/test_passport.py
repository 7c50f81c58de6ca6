"""The emergency pump passport (the wallet card): its lines, its QR code (decoded), the reprint prompt."""

import datetime as dt
import html as html_lib
import io
import re
from decimal import Decimal

import pytest
import segno
import time_machine
import zxingcpp
from django.urls import reverse
from PIL import Image

from audit.models import AccessLog
from refills.models import ClinicSettings
from refills.passport import strip_source_tags
from refills.services import appointment_book, dose_change_record
from tests import factories

from .conftest import NOW, at

pytestmark = pytest.mark.django_db


def _card(client, patient_id) -> str:
    response = client.get(reverse("staff:wallet_card", args=[patient_id]))
    assert response.status_code == 200
    return response.content.decode()


def _card_lines(page: str) -> list[tuple[str, str]]:
    """The passport's label/value pairs as the page shows them."""
    block = page.split('<dl class="passport-lines">', 1)[1].split("</dl>", 1)[0]
    return [
        (html_lib.unescape(label), html_lib.unescape(value))
        for label, value in re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", block, flags=re.S)
    ]


def _decode(text: str) -> str:
    """The QR code of `text` as segno draws it, rendered to PNG and read back with zxing-cpp."""
    png = io.BytesIO()
    segno.make(text, error="l", micro=False).save(png, kind="png", scale=4, border=4)
    png.seek(0)
    (barcode,) = zxingcpp.read_barcodes(Image.open(png))
    assert barcode.format == zxingcpp.BarcodeFormat.QRCode
    return barcode.text


@pytest.fixture
def catalogued(refilled):
    clinic = ClinicSettings.load()
    clinic.emergency_phone = "+44 20 7946 0111"
    clinic.save()
    refilled.catheter_tip_level = "T10"
    refilled.hospital = "St Elsewhere Neurosciences"
    refilled.mri_notes = "Catheter revised 2024"
    refilled.save()
    return refilled


def test_the_passport_carries_everything_an_emergency_department_needs(nurse_client, nurse, catalogued):
    appointment_book(patient=catalogued.patient, kind="refill", starts_at=at(2025, 3, 31, 14), booked_by=nurse)

    lines = dict(_card_lines(_card(nurse_client, catalogued.patient_id)))

    patient = catalogued.patient
    assert lines == {
        "Name": f"{patient.full_name}, born {patient.date_of_birth.day} {patient.date_of_birth:%b %Y}",
        "Drug": "Baclofen intrathecal (Lioresal), 2000 mcg/mL",
        "Dose in force": "400 mcg/day (simple continuous)",
        "Pump": f"Medtronic SynchroMed II 20 mL, serial {catalogued.serial_number}",
        "Catheter tip": "T10",
        "Implanted": f"{catalogued.implanted_on.day} {catalogued.implanted_on:%b %Y} at St Elsewhere Neurosciences",
        "Next refill": "booked Mon 31 Mar 2025, 14:00; due by 1 Apr 2025",
        "Pump alarm date": "6 Apr 2025",
        "Clinic": "+44 20 7946 0111 (24 hours), ITB Clinic",
        "Manufacturer helpline": "see the pump's patient card",
        "Withdrawal signs": "returning spasticity, itching without rash, fast heart rate; then high fever, confusion, "
        "rigidity. Can progress to rhabdomyolysis, multi-organ failure and death within 24-72 hours: an emergency.",
        "Overdose signs": "drowsiness, slowed breathing, floppiness, coma.",
        "MRI": "Interrogate the pump after MRI: the motor may stall during the scan. Catheter revised 2024.",
    }


@pytest.mark.parametrize(
    ("implant_note", "shown"),
    [
        ("", "Interrogate the pump after MRI: the motor may stall during the scan."),
        # registered with its model's note (pumps.services.implant_register's default): said once
        (
            "Interrogate the pump after MRI: the motor may stall during the scan.",
            "Interrogate the pump after MRI: the motor may stall during the scan.",
        ),
        # the model's note with the clinician's words added: the longer text alone
        (
            "Interrogate the pump after MRI: the motor may stall during the scan. Revised 2024",
            "Interrogate the pump after MRI: the motor may stall during the scan. Revised 2024.",
        ),
    ],
    ids=["none of its own", "the model's note", "the model's note and more"],
)
def test_the_mri_line_says_each_note_once(nurse_client, refilled, implant_note, shown):
    refilled.mri_notes = implant_note
    refilled.save()
    assert dict(_card_lines(_card(nurse_client, refilled.patient_id)))["MRI"] == shown


def test_the_qr_code_holds_the_cards_text(nurse_client, catalogued):
    page = _card(nurse_client, catalogued.patient_id)
    card_text = "\n".join(["EMERGENCY PUMP PASSPORT", *(f"{label}: {value}" for label, value in _card_lines(page))])

    # the QR code on the page is segno's code of exactly that text…
    shown_svg = re.search(r"<svg.*?</svg>", page, flags=re.S).group(0)
    assert shown_svg == segno.make(card_text, error="l", micro=False).svg_inline(
        scale=2, border=2, omitsize=True, title="Pump passport QR code"
    )
    # …and a reader decodes the text back: plain text, no link to the server
    decoded = _decode(card_text)
    assert decoded == card_text
    assert "http" not in decoded and "/staff/" not in decoded and "/portal/" not in decoded


def test_the_manufacturers_helpline_and_the_office_hours_fallback(nurse_client, refilled):
    model = refilled.pump_model
    model.helpline_phone = "+1 800 000 0000"
    model.save()

    lines = dict(_card_lines(_card(nurse_client, refilled.patient_id)))

    assert lines["Manufacturer helpline"] == "+1 800 000 0000"
    # no 24-hour number set: the office number, and where to go out of hours
    assert lines["Clinic"] == "+44 20 7946 0000 (ITB Clinic, office hours); out of hours: the emergency department"


@pytest.mark.parametrize(
    "note,shown",
    [
        ("Interrogate the pump after MRI: the motor may stall during the scan [S37][S38].", None),
        ("Empty the pump before MRI [S19][S20].", "Empty the pump before MRI."),
        ("No tags here.", "No tags here."),
        ("Tag mid-text [S-seed] and end [S5–S8]", "Tag mid-text and end"),
    ],
)
def test_source_tags_are_stripped_from_the_mri_note(note, shown):
    expected = shown or "Interrogate the pump after MRI: the motor may stall during the scan."
    assert strip_source_tags(note) == expected


def test_the_reprint_prompt_after_a_dose_change_until_a_new_print(nurse_client, clinician_client, clinician, refilled):
    detail = reverse("staff:patient_detail", args=[refilled.patient_id])
    # the refill of 6 Jan set the dose and no passport was printed since
    assert (
        "was set on 6 Jan 2025, after the last pump passport was printed" in nurse_client.get(detail).content.decode()
    )

    _card(nurse_client, refilled.patient_id)
    assert 'data-testid="passport-reprint"' not in nurse_client.get(detail).content.decode()
    export = AccessLog.objects.get(patient=refilled.patient, action="export")
    assert (export.detail, export.resource) == ("pump passport", "staff:wallet_card")

    # ten minutes later a dose change, backdated a minute: the prompt comes back with its date
    later = NOW + dt.timedelta(minutes=10)  # within the staff idle timeout
    traveller = time_machine.travel(later, tick=False)
    traveller.start()
    dose_change_record(
        implant=refilled,
        daily_dose_mcg=Decimal("440"),
        effective_at=later - dt.timedelta(minutes=1),
        prescribed_by=clinician,
        reason="Rise",
        now=later,
    )
    page = nurse_client.get(detail).content.decode()
    assert "The dose or concentration was set on 20 Mar 2025, after the last pump passport was printed" in page
    assert reverse("staff:wallet_card", args=[refilled.patient_id]) in page.split('data-testid="passport-reprint"')[1]
    # the new print carries the new dose and ends the prompt
    assert dict(_card_lines(_card(nurse_client, refilled.patient_id)))["Dose in force"].startswith("440 mcg/day")
    assert 'data-testid="passport-reprint"' not in nurse_client.get(detail).content.decode()
    traveller.stop()


def test_a_dose_planned_for_later_prompts_only_once_in_force(nurse_client, nurse, clinician, refilled):
    _card(nurse_client, refilled.patient_id)
    dose_change_record(
        implant=refilled,
        daily_dose_mcg=Decimal("440"),
        effective_at=NOW + dt.timedelta(days=3),
        prescribed_by=clinician,
        reason="Rise",
        now=NOW,
    )
    detail = reverse("staff:patient_detail", args=[refilled.patient_id])
    assert 'data-testid="passport-reprint"' not in nurse_client.get(detail).content.decode()

    with time_machine.travel(NOW + dt.timedelta(days=4), tick=False):
        nurse_client.force_login(nurse)  # a new session: the old one has expired by then
        assert "was set on 23 Mar 2025" in nurse_client.get(detail).content.decode()


def test_a_patient_without_a_pump_has_no_passport(nurse_client):
    patient = factories.PatientFactory()
    assert nurse_client.get(reverse("staff:wallet_card", args=[patient.pk])).status_code == 404
