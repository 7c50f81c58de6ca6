"""The clinic admin sets the country and region whose public holidays close the clinic."""

import pytest
from django.urls import reverse

from refills.models import ClinicSettings

from .conftest import changeform_data

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"holiday_country": "XX"},
            "holiday_country",
            "“XX” is not a country whose public holidays are known: give its two-letter code, e.g. GB, IE, FR or DE.",
        ),
        (
            {"holiday_country": "GB", "holiday_subdivision": "ZZ"},
            "holiday_subdivision",
            "“ZZ” is not a region of GB (its regions: ENG, NIR, SCT, WLS).",
        ),
    ],
)
def test_an_unsupported_country_or_region_is_refused_naming_the_field(client, admin_staff, changes, field, message):
    row = ClinicSettings.load()
    client.force_login(admin_staff)
    url = reverse("admin:refills_clinicsettings_change", args=[row.pk])
    response = client.post(url, {**changeform_data(client.get(url)), **changes})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors[field] == [message]
    row.refresh_from_db()
    assert (row.holiday_country, row.holiday_subdivision) == ("GB", "ENG")


def test_the_clinic_admin_moves_the_clinic_to_scotland(client, admin_staff):
    row = ClinicSettings.load()
    client.force_login(admin_staff)
    url = reverse("admin:refills_clinicsettings_change", args=[row.pk])
    response = client.post(url, {**changeform_data(client.get(url)), "holiday_subdivision": "sct"})
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.holiday_country, row.holiday_subdivision) == ("GB", "SCT")
