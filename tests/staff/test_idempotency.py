"""Safe to click twice (issue 11, item 7): every staff form that records something, sent twice.

For each creating form: the same one-time token POSTed twice records once and the second POST
is sent where the first led (a double click); and the page as the nurse saw it (GET), sent, then
sent again from the back button records once and says so in plain words.
The portal's forms: tests/portal/test_idempotency.py.
"""

import datetime as dt
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.messages.storage.fallback import FallbackStorage
from django.db import transaction
from django.http import HttpResponseRedirect
from django.urls import URLResolver, get_resolver, resolve, reverse

from core import idempotency
from core.idempotency import ALREADY_SENT
from core.models import FormSubmission
from patients.models import Patient, ScreeningTrial, TrialAssessment, TrialStep
from pumps.models import DosePrescription, Implant
from pumps.services import implant_record_eri
from refills.models import Alert, Appointment, AppointmentChangeRequest, RefillVisit, ReservoirEmptying
from refills.services import dose_change_record
from tests import factories
from tests.helpers import REFILL_LOTS, SAFETY_CHECKLIST_ALL_DONE, implant_register_filled
from tests.staff.conftest import NOW, at

pytestmark = pytest.mark.django_db

TOKEN = re.compile(r'name="form_token" value="([0-9a-f-]{36})"')


@dataclass
class Form:
    role: str  # "nurse" or "clinician"
    url: str
    data: dict
    count: Callable[[], int]
    page: str = ""  # where the form is shown, when it posts elsewhere


def _drug() -> str:
    return str(factories.drug("2000").pk)


def _refill_data(**overrides) -> dict:
    return {
        "performed_at": "2025-03-20T09:00",
        "actual_residual_ml": "5.2",
        "volume_added_ml": "20",
        "drug": _drug(),
        "drug_lot": "LOT-77",
        "daily_dose_after_mcg": "400",
        "dosing_mode": "simple_continuous",
        "alarm_threshold_ml": "2.0",
        "battery_status": "ok",
        "post_fill_check": "passed",
        **SAFETY_CHECKLIST_ALL_DONE,
        **REFILL_LOTS,
        **overrides,
    }


def _pump_data(model_pk: int, **overrides) -> dict:
    return {
        "pump_model": str(model_pk),
        "serial_number": "NGP777",
        "implanted_on": "2025-03-18",
        "catheter_model": "8781",
        "catheter_tip_level": "T10",
        "surgeon": "Mr B. Surgeon",
        "hospital": "St Elsewhere",
        "fill_drug": _drug(),
        "fill_volume_ml": "20",
        "fill_drug_lot": "LOT-TH1",
        "fill_alarm_threshold_ml": "2.0",
        "starting_daily_dose_mcg": "400",
        **overrides,
    }


def _history(model, pk) -> Callable[[], int]:
    return lambda: model.history.filter(id=pk).count()


def patient_create(w) -> Form:
    data = {
        "mrn": "MRN-NEW",
        "given_name": "Mary",
        "family_name": "Somerville",
        "date_of_birth": "1980-12-26",
        "spasticity_origin": "spinal",
        "diagnosis": "ms",
        "reminder_channel": "email",
        "email": "mary@example.org",
    }
    return Form("nurse", reverse("staff:patient_create"), data, Patient.objects.count)


def patient_contact_edit(w) -> Form:
    patient = w.implant.patient
    data = {
        "email": "new@example.org",
        "phone": "+447911123457",
        "address_line1": "1 Quay",
        "reminder_channel": "email",
    }
    return Form("nurse", reverse("staff:patient_contact_edit", args=[patient.pk]), data, _history(Patient, patient.pk))


def patient_status_edit(w) -> Form:
    patient = w.implant.patient
    data = {"status": "transferred", "reason": "Moved to Leeds"}
    return Form(
        "clinician", reverse("staff:patient_status_edit", args=[patient.pk]), data, _history(Patient, patient.pk)
    )


def trial_start(w) -> Form:
    patient = factories.PatientFactory()
    data = {"started_on": "2025-03-20", "kind": "bolus", "positivity_rule": "mas_lower_limb_mean_1", "goals": "Walk"}
    return Form("clinician", reverse("staff:trial_start", args=[patient.pk]), data, ScreeningTrial.objects.count)


def _trial(w) -> ScreeningTrial:
    return factories.ScreeningTrialFactory(patient=factories.PatientFactory(), started_on=dt.date(2025, 3, 20))


def trial_step_add(w) -> Form:
    trial = _trial(w)
    data = {"given_at": "2025-03-20T09:00", "dose_mcg": "50", "volume_ml": "1", "route": "lp_bolus"}
    return Form(
        "clinician",
        reverse("staff:trial_step_add", args=[trial.pk]),
        data,
        TrialStep.objects.count,
        page=reverse("staff:trial_detail", args=[trial.pk]),
    )


def trial_assessment_add(w) -> Form:
    trial = _trial(w)
    data = {"hours_after": "0", "assessed_at": "2025-03-20T08:30", "penn_score": "3", "mas_knee_extensors_l": "3"}
    return Form(
        "clinician",
        reverse("staff:trial_assessment_add", args=[trial.pk]),
        data,
        TrialAssessment.objects.count,
        page=reverse("staff:trial_detail", args=[trial.pk]),
    )


def trial_verdict(w) -> Form:
    trial = _trial(w)
    data = {"verdict": "negative", "positivity_rule": "clinician"}
    return Form(
        "clinician",
        reverse("staff:trial_verdict", args=[trial.pk]),
        data,
        _history(ScreeningTrial, trial.pk),
        page=reverse("staff:trial_detail", args=[trial.pk]),
    )


def appointment_book(w) -> Form:
    data = {"kind": "refill", "day": "2025-03-25", "time": "10:00", "place": "Room 2"}
    return Form(
        "nurse", reverse("staff:appointment_book", args=[w.implant.patient_id]), data, Appointment.objects.count
    )


def calendar_book(w) -> Form:
    # A review: a second refill would be refused as already booked, a second review would not.
    data = {"patient": str(w.implant.patient_id), "kind": "review", "day": "2025-03-26", "time": "11:00"}
    data |= {"location": "clinic", "place": "Room 2"}
    return Form("nurse", reverse("staff:calendar_book") + "?day=2025-03-26", data, Appointment.objects.count)


def _alert(w, kind: str) -> Alert:
    return Alert.objects.create(
        kind=kind, patient=w.implant.patient, implant=w.implant, key_date=NOW.date(), message="x"
    )


def alert_resolve(w) -> Form:
    url = reverse("staff:alert_resolve", args=[_alert(w, Alert.Kind.REFILL_UNBOOKED).pk])
    resolved = Alert.objects.filter(resolved_at__isnull=False).count
    return Form("nurse", url, {"note": "Phoned the patient"}, resolved, page=reverse("staff:worklist"))


def alert_acknowledge(w) -> Form:
    url = reverse("staff:alert_acknowledge", args=[_alert(w, Alert.Kind.REFILL_URGENT).pk])
    acknowledged = Alert.objects.filter(acknowledged_at__isnull=False).count
    return Form("nurse", url, {}, acknowledged, page=reverse("staff:worklist"))


def _booked(w, when=None) -> Appointment:
    return factories.AppointmentFactory(implant=w.implant, starts_at=when or at(2025, 3, 27), booked_by=w.nurse)


def appointment_move(w) -> Form:
    appointment = _booked(w)
    data = {"day": "2025-03-26", "time": "11:00", "place": "Room 2"}
    url = reverse("staff:appointment_move", args=[appointment.pk])
    return Form("nurse", url, data, _history(Appointment, appointment.pk))


def appointment_cancel(w) -> Form:
    appointment = _booked(w)
    url = reverse("staff:appointment_cancel", args=[appointment.pk])
    return Form("nurse", url, {"reason": "Patient in hospital"}, _history(Appointment, appointment.pk))


def appointment_no_show(w) -> Form:
    appointment = _booked(w, at(2025, 3, 19))
    url = reverse("staff:appointment_no_show", args=[appointment.pk])
    return Form("nurse", url, {}, _history(Appointment, appointment.pk), page=reverse("staff:worklist"))


def change_request_decline(w) -> Form:
    appointment = _booked(w)
    request = AppointmentChangeRequest.objects.create(
        appointment=appointment, requested_by=w.nurse, preferred_dates="2025-03-31", message="Later please"
    )
    return Form(
        "nurse",
        reverse("staff:change_request_decline", args=[request.pk]),
        {"reason": "No nurse that week"},
        _history(AppointmentChangeRequest, request.pk),
        page=reverse("staff:appointment_move", args=[appointment.pk]),
    )


def appointment_attended(w) -> Form:
    review = factories.AppointmentFactory(
        implant=w.implant, kind=Appointment.Kind.REVIEW, starts_at=at(2025, 3, 19), booked_by=w.nurse
    )
    return Form(
        "nurse",
        reverse("staff:appointment_attended", args=[review.pk]),
        {"next": "patient"},
        _history(Appointment, review.pk),
        page=reverse("staff:patient_detail", args=[w.implant.patient_id]),
    )


def refill_visit_record(w) -> Form:
    url = reverse("staff:refill_visit_record", args=[w.implant.patient_id])
    return Form("nurse", url, _refill_data(), RefillVisit.objects.count)


def dose_change(w) -> Form:
    data = {
        "daily_dose_mcg": "450",
        "effective_at": "2025-03-20T09:00",
        "dosing_mode": "simple_continuous",
        "reason": "Spasms",
    }
    return Form("clinician", reverse("staff:dose_change", args=[w.implant.pk]), data, DosePrescription.objects.count)


def implant_register(w) -> Form:
    patient = factories.PatientFactory()
    url = reverse("staff:implant_register", args=[patient.pk])
    return Form("clinician", url, _pump_data(w.implant.pump_model_id), Implant.objects.count)


def implant_fill(w) -> Form:
    implant = factories.ImplantFactory(implanted_on=dt.date(2025, 3, 18))
    data = {
        "fill_drug": _drug(),
        "fill_volume_ml": "20",
        "fill_drug_lot": "LOT-TH1",
        "fill_alarm_threshold_ml": "2.0",
        "starting_daily_dose_mcg": "400",
    }
    return Form("clinician", reverse("staff:implant_fill", args=[implant.pk]), data, _history(Implant, implant.pk))


def implant_replace(w) -> Form:
    data = _pump_data(w.implant.pump_model_id, explanted_on="2025-03-18", explant_reason="Battery")
    return Form("clinician", reverse("staff:implant_replace", args=[w.implant.pk]), data, Implant.objects.count)


def implant_explant(w) -> Form:
    url = reverse("staff:implant_explant", args=[w.implant.pk])
    data = {"explanted_on": "2025-03-20", "reason": "Infection"}
    return Form("clinician", url, data, _history(Implant, w.implant.pk))


def reservoir_empty(w) -> Form:
    url = reverse("staff:reservoir_empty", args=[w.implant.pk])
    return Form("nurse", url, {"emptied_at": "2025-03-20T08:00", "reason": "mri"}, ReservoirEmptying.objects.count)


def implant_eri(w) -> Form:
    url = reverse("staff:implant_eri", args=[w.implant.pk])
    return Form("clinician", url, {"eri_on": "2025-03-19"}, _history(Implant, w.implant.pk))


def refill_visit_correct(w) -> Form:
    visit = RefillVisit.objects.valid().get(implant=w.implant)
    data = _refill_data(
        performed_at="2025-01-06T10:00",
        actual_residual_ml="2.0",
        drug_lot="LOT-R1",
        correction_reason="Lot typed wrong",
    )
    return Form("nurse", reverse("staff:refill_visit_correct", args=[visit.pk]), data, RefillVisit.objects.count)


def dose_correct(w) -> Form:
    dose = dose_change_record(
        implant=w.implant,
        daily_dose_mcg=Decimal("420"),
        effective_at=at(2025, 3, 18, 9),
        prescribed_by=w.clinician,
        reason="Spasms",
        now=NOW,
    )
    data = {
        "daily_dose_mcg": "440",
        "effective_at": "2025-03-18T09:00",
        "dosing_mode": "simple_continuous",
        "reason": "Spasms",
        "correction_reason": "Typed 420 for 440",
    }
    return Form("clinician", reverse("staff:dose_correct", args=[dose.pk]), data, DosePrescription.objects.count)


def implant_eri_correct(w) -> Form:
    implant_record_eri(implant=w.implant, eri_on=dt.date(2025, 3, 1), by=w.clinician, now=NOW)
    url = reverse("staff:implant_eri_correct", args=[w.implant.pk])
    data = {"eri_on": "2025-03-10", "correction_reason": "Wrong log line"}
    return Form("clinician", url, data, _history(Implant, w.implant.pk))


def implant_correct(w) -> Form:
    implant = implant_register_filled(implanted_on=dt.date(2025, 3, 18), recorded_by=w.clinician, now=NOW)
    data = _pump_data(implant.pump_model_id, serial_number="NGP888", correction_reason="Serial typed wrong")
    return Form("clinician", reverse("staff:implant_correct", args=[implant.pk]), data, Implant.objects.count)


CREATING_FORMS = [
    patient_create,
    patient_contact_edit,
    patient_status_edit,
    trial_start,
    trial_step_add,
    trial_assessment_add,
    trial_verdict,
    alert_resolve,
    alert_acknowledge,
    appointment_book,
    calendar_book,
    appointment_move,
    appointment_cancel,
    appointment_no_show,
    change_request_decline,
    appointment_attended,
    refill_visit_record,
    dose_change,
    implant_register,
    implant_fill,
    implant_replace,
    implant_explant,
    reservoir_empty,
    implant_eri,
    refill_visit_correct,
    dose_correct,
    implant_eri_correct,
    implant_correct,
]


@dataclass
class Clinic:
    implant: Implant
    nurse: object
    clinician: object


@pytest.fixture
def clinic(refilled, nurse, clinician) -> Clinic:
    return Clinic(implant=refilled, nurse=nurse, clinician=clinician)


def _login(client, clinic: Clinic, role: str):
    client.force_login(getattr(clinic, role))
    return client


@pytest.mark.parametrize("make", CREATING_FORMS, ids=lambda f: f.__name__)
def test_the_same_token_sent_twice_records_once(client, clinic, make):
    form = make(clinic)
    _login(client, clinic, form.role)
    data = {**form.data, "form_token": str(uuid.uuid4())}
    before = form.count()
    # when: a double click sends the form twice
    first = client.post(form.url, data)
    second = client.post(form.url, data)
    # then
    assert first.status_code == 302, getattr(first, "context", None) and first.context.get("form", "").errors
    assert form.count() == before + 1
    assert second.status_code == 302 and second["Location"] == first["Location"]
    assert FormSubmission.objects.filter(token=data["form_token"]).count() == 1


@pytest.mark.parametrize("make", CREATING_FORMS, ids=lambda f: f.__name__)
def test_the_back_button_and_send_again_records_once_and_says_so(client, clinic, make):
    form = make(clinic)
    _login(client, clinic, form.role)
    page = client.get(form.page or form.url)
    assert page.status_code == 200
    token = TOKEN.search(page.content.decode()).group(1)
    before = form.count()
    first = client.post(form.url, {**form.data, "form_token": token})
    assert first.status_code == 302
    # when: back to the page as it was, and "Save" again
    again = client.post(form.url, {**form.data, "form_token": token}, follow=True)
    # then
    assert form.count() == before + 1
    assert again.redirect_chain[0][0] == first["Location"]
    assert ALREADY_SENT in again.content.decode()


def test_a_refused_form_leaves_its_token_unused(nurse_client, refilled):
    url = reverse("staff:refill_visit_record", args=[refilled.patient_id])
    token = str(uuid.uuid4())
    refused = nurse_client.post(url, {**_refill_data(volume_added_ml="25"), "form_token": token})
    assert refused.status_code == 400
    # the form comes back with the same token, which is still good for the corrected values
    assert f'name="form_token" value="{token}"' in refused.content.decode()
    assert not FormSubmission.objects.filter(token=token).exists()
    fixed = nurse_client.post(url, {**_refill_data(), "form_token": token})
    assert fixed.status_code == 302
    assert RefillVisit.objects.filter(implant=refilled).count() == 2


def test_another_user_s_token_records_nothing(client, refilled, nurse):
    url = reverse("staff:refill_visit_record", args=[refilled.patient_id])
    token = str(uuid.uuid4())
    client.force_login(nurse)
    assert client.post(url, {**_refill_data(), "form_token": token}).status_code == 302
    client.force_login(factories.NurseFactory())
    response = client.post(url, {**_refill_data(performed_at="2025-03-20T09:05"), "form_token": token})
    assert response.status_code == 409
    assert RefillVisit.objects.filter(implant=refilled).count() == 2


def test_a_form_without_a_token_is_served_as_before(nurse_client, refilled):
    url = reverse("staff:refill_visit_record", args=[refilled.patient_id])
    assert nurse_client.post(url, _refill_data()).status_code == 302
    assert not FormSubmission.objects.exists()


def test_a_bad_token_is_ignored_not_a_server_error(nurse_client, refilled):
    url = reverse("staff:refill_visit_record", args=[refilled.patient_id])
    response = nurse_client.post(url, {**_refill_data(), "form_token": "not-a-token\x00"})
    assert response.status_code == 302
    assert not FormSubmission.objects.exists()


def test_two_posts_racing_with_one_token_record_once(rf, nurse, monkeypatch):
    # The race the unique index settles: both POSTs found the token unused; the other one
    # committed first. This one's work is rolled back and it is sent to the winner's result.
    token = uuid.uuid4()
    FormSubmission.objects.create(token=token, user=nurse, view_name="other", result_url="/staff/winner/")
    real, calls = idempotency._submission_of, []

    def lookup(t):  # the first lookup ran before the other POST committed
        calls.append(t)
        return None if len(calls) == 1 else real(t)

    monkeypatch.setattr(idempotency, "_submission_of", lookup)

    def view(request):
        factories.PatientFactory(mrn="MRN-RACE")
        return HttpResponseRedirect("/staff/mine/")

    request = rf.post("/staff/patients/new/", {"form_token": str(token)})
    request.user = nurse
    request.session = {}
    request._messages = FallbackStorage(request)
    response = idempotency.idempotent_form(view)(request)
    assert response.status_code == 302 and response["Location"] == "/staff/winner/"
    assert len(calls) == 2  # the lost insert, then the winner's result
    assert not Patient.objects.filter(mrn="MRN-RACE").exists()


def test_a_button_that_answers_with_an_error_leaves_its_token_unused(nurse_client, refilled, nurse):
    # "Did not attend" on an appointment still to come: an error message, nothing recorded
    appointment = factories.AppointmentFactory(implant=refilled, starts_at=at(2025, 3, 27), booked_by=nurse)
    token = str(uuid.uuid4())
    response = nurse_client.post(reverse("staff:appointment_no_show", args=[appointment.pk]), {"form_token": token})
    assert response.status_code == 302
    assert not FormSubmission.objects.filter(token=token).exists()
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED


# Routes whose view is wrapped in @idempotent_form but whose double submit is held outside
# CREATING_FORMS (the portal's forms, and forms whose world is built in their own module).
FIELD_SAFETY, IMPORT_PAGES, PORTAL = (
    "tests/refills/test_field_safety.py",
    "tests/interop/test_import_pages.py",
    "tests/portal/test_idempotency.py",
)
HELD_ELSEWHERE = {
    "staff:recall_flag": (
        FIELD_SAFETY,
        "test_the_clinician_flags_the_search_from_the_recall_page_once_whatever_the_clicks",
    ),
    "staff:field_safety_send": (FIELD_SAFETY, "test_the_send_button_queues_the_messages_and_says_who_must_be_phoned"),
    "staff:field_safety_action": (FIELD_SAFETY, "test_the_action_form_needs_its_text_then_closes_the_flag"),
    "staff:clinic_import_upload": (IMPORT_PAGES, "test_a_sheet_sent_twice_is_checked_once_and_confirmed_once"),
    "staff:clinic_import_detail": (IMPORT_PAGES, "test_dry_run_then_confirm_then_double_click"),
    "portal:change_request": (PORTAL, "test_the_same_token_sent_twice_records_once"),
    "portal:change_request_withdraw": (PORTAL, "test_the_same_token_sent_twice_records_once"),
    "portal:reminder_preferences": (PORTAL, "test_the_same_token_sent_twice_records_once"),
    "portal:calendar_settings": (PORTAL, "test_the_same_token_sent_twice_records_once"),
    "portal:invite": (PORTAL, "test_the_same_token_sent_twice_records_once"),
}


def _routes(patterns, namespace=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}:{pattern.namespace}" if namespace and pattern.namespace else pattern.namespace
            yield from _routes(pattern.url_patterns, inner or namespace)
        elif pattern.name:
            yield f"{namespace}:{pattern.name}" if namespace else pattern.name, pattern.callback


def test_every_route_wrapped_in_idempotent_form_has_its_double_submit_test(clinic):
    wrapped = {name for name, view in _routes(get_resolver().url_patterns) if getattr(view, "idempotent_form", False)}
    tested = set()
    for make in CREATING_FORMS:
        with transaction.atomic():  # each form's rows alone, as in its own test
            tested.add(resolve(make(clinic).url.split("?")[0]).view_name)
            transaction.set_rollback(True)
    assert wrapped - tested - HELD_ELSEWHERE.keys() == set(), "add the route's form to CREATING_FORMS"
    assert tested - wrapped == set(), "a form of CREATING_FORMS whose view is not wrapped in @idempotent_form"
    for path, name in set(HELD_ELSEWHERE.values()):
        assert re.search(rf"^def {name}\(", (settings.BASE_DIR / path).read_text(), re.MULTILINE), (path, name)


# The POST forms that create nothing (a second send changes nothing more), by template.
NOT_CREATING = {
    "itbclinic/templates/base.html": "log out",
    "itbclinic/templates/registration/login.html": "log in",
    "itbclinic/templates/registration/password_change_form.html": "a new password, set again",
    "itbclinic/templates/registration/password_reset_confirm.html": "the reset link works once",
    "itbclinic/templates/registration/password_reset_form.html": "a reset email (rate-limited)",
    "itbclinic/templates/admin/mark_entered_in_error.html": "the admin action refuses a row already marked",
    "portal/templates/portal/account_email.html": "the account's email, set again",
    "portal/templates/portal/carer_revoke.html": "a revoked link stays revoked",
    "portal/templates/portal/invitation_accept.html": "the invitation's token works once",
    "portal/templates/portal/invitation_revoke.html": "a revoked invitation stays revoked",
}


def test_every_post_form_of_ours_carries_a_one_time_token():
    missing = []
    for app in ("itbclinic", "patients", "pumps", "refills", "portal", "audit", "interop", "demo"):
        for template in sorted((settings.BASE_DIR / app / "templates").rglob("*.html")):
            path = template.relative_to(settings.BASE_DIR).as_posix()
            html = template.read_text()
            forms = re.findall(r'<form\b[^>]*method="post".*?</form>', html, re.IGNORECASE | re.DOTALL)
            if path not in NOT_CREATING and any("{% form_token %}" not in form for form in forms):
                missing.append(path)
    assert missing == [], "a POST form without {% form_token %} (or name it in NOT_CREATING, with why)"
