"""The clinic admin's import pages and the `import_clinic` command, as a person meets them."""

import io
import re
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from openpyxl import load_workbook

from core.idempotency import ALREADY_SENT
from interop.columns import COLUMNS
from interop.models import ClinicImport
from patients.models import Patient
from pumps.models import Implant
from tests.interop import sample as messy
from tests.staff.conftest import NOW

pytestmark = pytest.mark.django_db


@pytest.fixture
def frozen(clock):
    return clock(NOW)


@pytest.fixture
def admin_client(client, clinic_admin):
    client.force_login(clinic_admin)
    return client


def _sheet(*rows) -> bytes:
    return messy.Sample(rows=[messy.HEADERS, *rows]).xlsx()


def _upload(client, content: bytes, name: str = "schedule.xlsx", token: str = ""):
    upload = io.BytesIO(content)
    upload.name = name
    data = {"file": upload, **({"form_token": token} if token else {})}
    return client.post(reverse("staff:clinic_import_upload"), data)


def test_only_the_clinic_admin_imports(client, nurse, clinician):
    for user in (nurse, clinician):
        client.force_login(user)
        assert client.get(reverse("staff:clinic_import_upload")).status_code == 403
        assert _upload(client, _sheet(messy.good_row(1))).status_code == 403
    assert not ClinicImport.objects.exists()


def test_the_templates_document_every_column(admin_client):
    csv_response = admin_client.get(reverse("staff:clinic_import_template", args=["csv"]))
    assert csv_response.status_code == 200
    header = csv_response.content.decode("utf-8-sig").splitlines()[0]
    assert header.split(",") == [column.header for column in COLUMNS]
    xlsx = admin_client.get(reverse("staff:clinic_import_template", args=["xlsx"]))
    book = load_workbook(io.BytesIO(xlsx.content))
    notes = [row for row in book["Columns"].iter_rows(min_row=2, values_only=True)]
    assert [row[0] for row in notes] == [column.header for column in COLUMNS]
    assert all(row[2] for row in notes)  # what each column accepts
    assert admin_client.get(reverse("staff:clinic_import_template", args=["pdf"])).status_code == 404


def test_dry_run_then_confirm_then_double_click(frozen, admin_client):
    late = messy.good_row(2)
    late[19] = "08/04/2025"
    response = _upload(admin_client, _sheet(messy.good_row(1), late))
    checked = ClinicImport.objects.get()
    assert response.status_code == 302 and response.url == reverse("staff:clinic_import_detail", args=[checked.pk])
    assert not Patient.objects.exists()

    page = admin_client.get(response.url).content.decode()
    assert "Checked, not imported." in page
    assert "2 rows: 2 to create" in page
    assert "1 Apr 2025 / 8 Apr 2025" in page and "(the sheet's is 7 days later)" in page
    assert 'class="date-differs"' in page
    assert "Import 2 rows" in page

    done = admin_client.post(response.url, follow=True)
    assert "Imported: 2 created, 0 updated, 0 unchanged." in done.content.decode()
    assert Implant.objects.filter(forecast_due_by__isnull=False).count() == 2
    checked.refresh_from_db()
    assert checked.imported_at == NOW

    again = admin_client.post(response.url, follow=True)
    assert "already imported; nothing more was written" in again.content.decode()
    assert Patient.objects.count() == 2


def test_a_sheet_with_errors_names_the_column_and_cannot_be_imported(frozen, admin_client):
    bad = messy.good_row(1)
    bad[17] = "99999"
    response = _upload(admin_client, _sheet(bad, messy.good_row(2)))
    page = admin_client.get(response.url).content.decode()
    assert "<strong>Daily dose (mcg/day)</strong>" in page
    assert "Nothing is imported while a row is in error." in page
    assert 'data-testid="import-confirm"' not in page
    # Posting anyway (a stale tab) writes nothing either.
    admin_client.post(response.url)
    assert not Patient.objects.exists()


@pytest.mark.parametrize(
    ("content", "name", "words"),
    [
        (b"", "a.csv", "The submitted file is empty."),
        (b"a,b\n1,2\n", "a.csv", "No header row found"),
        (b"x", "a.pdf", "Upload a .csv or .xlsx file."),
    ],
)
def test_a_bad_file_is_a_form_error(admin_client, content, name, words):
    response = _upload(admin_client, content, name)
    assert response.status_code == 200
    assert words in response.content.decode()
    assert not ClinicImport.objects.exists()


def test_the_command_dry_runs_and_imports(frozen, clinic_admin, tmp_path):
    path = tmp_path / "sheet.xlsx"
    path.write_bytes(_sheet(messy.good_row(1), messy.good_row(2)))
    out = io.StringIO()
    call_command("import_clinic", str(path), "--dry-run", "--user", clinic_admin.username, stdout=out)
    assert "Dry run, nothing written. 2 rows: 2 created" in out.getvalue()
    assert not Patient.objects.exists()
    call_command("import_clinic", str(path), "--user", clinic_admin.username, stdout=out)
    assert "Imported." in out.getvalue()
    assert Patient.objects.count() == 2

    bad = tmp_path / "bad.xlsx"
    row = messy.good_row(3)
    row[13] = "2099-01-01"
    bad.write_bytes(_sheet(row))
    with pytest.raises(CommandError, match="Nothing imported"):
        call_command("import_clinic", str(bad), "--user", clinic_admin.username, stdout=io.StringIO())
    with pytest.raises(CommandError, match="No active user"):
        call_command("import_clinic", str(path), "--user", "nobody", stdout=io.StringIO())


def test_a_sheet_sent_twice_is_checked_once_and_confirmed_once(admin_client):
    # Safe to click twice (issue 11): the upload and the confirmation carry a one-time token.
    page = admin_client.get(reverse("staff:clinic_import_upload")).content.decode()
    token = re.search(r'name="form_token" value="([0-9a-f-]{36})"', page).group(1)
    content = _sheet(messy.good_row(1))
    first = _upload(admin_client, content, token=token)
    again = _upload(admin_client, content, token=token)
    assert first.status_code == 302 and again["Location"] == first["Location"]
    assert ClinicImport.objects.count() == 1
    confirm = {"form_token": str(uuid.uuid4())}
    url = first["Location"]
    assert admin_client.post(url, confirm).status_code == 302
    twice = admin_client.post(url, confirm, follow=True)
    assert ALREADY_SENT in twice.content.decode()
    assert Patient.objects.count() == 1 and Implant.objects.count() == 1
