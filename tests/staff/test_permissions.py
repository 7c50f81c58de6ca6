"""Who may open which staff page (the grants of the data migrations; the full matrix is in tests/security)."""

import pytest
from django.urls import reverse

from patients.models import ScreeningTrial
from pumps.models import DosePrescription
from refills.models import RefillVisit
from tests import factories

from .test_refill_visit import form_data

pytestmark = pytest.mark.django_db


def test_anonymous_users_are_sent_to_the_login_page(client, refilled):
    for url in (reverse("staff:worklist"), reverse("staff:patient_detail", args=[refilled.patient_id])):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login") + "?next=")


def test_patients_are_refused_every_staff_page_even_their_own_record(client, patient_user, refilled):
    refilled.patient.user = patient_user
    refilled.patient.save()
    client.force_login(patient_user)
    for url in (
        reverse("staff:worklist"),
        reverse("staff:calendar"),
        reverse("staff:patient_detail", args=[refilled.patient_id]),
        reverse("staff:wallet_card", args=[refilled.patient_id]),
    ):
        assert client.get(url).status_code == 403, url
    response = client.post(reverse("staff:refill_visit_record", args=[refilled.patient_id]), form_data())
    assert response.status_code == 403
    assert RefillVisit.objects.filter(implant=refilled).count() == 1  # only the fixture's


def test_nurses_are_refused_clinician_actions(nurse_client, refilled):
    patient_id = refilled.patient_id
    for url in (
        reverse("staff:trial_start", args=[patient_id]),
        reverse("staff:implant_register", args=[patient_id]),
        reverse("staff:dose_change", args=[refilled.pk]),
        reverse("staff:implant_eri", args=[refilled.pk]),
        reverse("staff:implant_explant", args=[refilled.pk]),
    ):
        assert nurse_client.get(url).status_code == 403, url
    response = nurse_client.post(
        reverse("staff:dose_change", args=[refilled.pk]),
        {"daily_dose_mcg": "900", "effective_at": "2025-03-20T09:00", "dosing_mode": "simple_continuous"},
    )
    assert response.status_code == 403
    assert DosePrescription.objects.filter(implant=refilled).count() == 1
    response = nurse_client.post(
        reverse("staff:trial_start", args=[patient_id]), {"started_on": "2025-03-20", "kind": "bolus"}
    )
    assert response.status_code == 403 and not ScreeningTrial.objects.exists()


def test_clinicians_may_not_record_refills_which_are_the_nurses(clinician_client, refilled):
    assert clinician_client.get(reverse("staff:refill_visit_record", args=[refilled.patient_id])).status_code == 403
    assert clinician_client.get(reverse("staff:worklist")).status_code == 200


def test_the_clinic_admin_goes_to_the_admin_not_the_worklist(client, clinic_admin):
    client.force_login(clinic_admin)
    assert client.get(reverse("staff:worklist")).status_code == 403


def test_each_role_lands_on_its_home(client, nurse, clinician):
    for user in (nurse, clinician):
        client.force_login(user)
        assert client.get(reverse("home"))["Location"] == reverse("staff:worklist")


def test_actions_a_role_may_not_take_are_not_offered(client, nurse, clinician, refilled):
    page = reverse("staff:patient_detail", args=[refilled.patient_id])
    client.force_login(nurse)
    html = client.get(page).content.decode()
    assert reverse("staff:refill_visit_record", args=[refilled.patient_id]) in html
    assert reverse("staff:dose_change", args=[refilled.pk]) not in html
    client.force_login(clinician)
    html = client.get(page).content.decode()
    assert reverse("staff:dose_change", args=[refilled.pk]) in html
    assert reverse("staff:refill_visit_record", args=[refilled.patient_id]) not in html


def test_unknown_objects_are_404(nurse_client):
    assert nurse_client.get(reverse("staff:patient_detail", args=[999999])).status_code == 404
    assert nurse_client.get(reverse("staff:appointment_move", args=[999999])).status_code == 404
    patient = factories.PatientFactory()
    assert nurse_client.get(reverse("staff:wallet_card", args=[patient.pk])).status_code == 404
