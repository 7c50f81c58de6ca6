import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from refills.models import Alert, Appointment, AppointmentChangeRequest, ClinicSettings, Reminder
from refills.services import appointment_book
from refills.urgency import Urgency
from refills.worklist import worklist_get
from tests import factories

from .conftest import TODAY, at, pump_refilled_on

pytestmark = pytest.mark.django_db
URL = reverse("staff:worklist")


def _row_names(html: str) -> list[str]:
    table = html.split('id="refills"', 1)[1].split("</section>", 1)[0]
    return re.findall(r'class="patient-name" href="[^"]+">([^<]+)</a>', table)


def test_overdue_patient_is_first_and_says_so_in_words(nurse_client, refilled, overdue):
    # given a pump due in 12 days and one overdue since 24 Feb
    # when
    response = nurse_client.get(URL)
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert _row_names(html) == ["Turing, Alan", "Hopper, Grace"]
    assert "Overdue by 24 days" in html
    assert "Due in 12 days" in html
    assert html.count('<span class="unbooked">Nothing booked</span>') == 2


def test_urgency_classification_follows_the_clinic_settings(nurse, frozen):
    clinic = ClinicSettings.load()
    later = pump_refilled_on(dt.date(2025, 3, 10), nurse)  # due by 2025-06-03
    soon = pump_refilled_on(dt.date(2025, 1, 6), nurse)  # due by 2025-04-01 (12 days)
    urgent = pump_refilled_on(dt.date(2024, 12, 26), nurse)  # due 2025-03-21, alarm 2025-03-26 (6 days)
    due_today = pump_refilled_on(dt.date(2024, 12, 25), nurse)  # due 2025-03-20
    overdue = pump_refilled_on(dt.date(2024, 12, 1), nurse)
    rows = {row.implant.pk: row for row in worklist_get(today=TODAY).rows}
    # pumps due later are counted, and listed only when asked for
    assert later.pk not in rows and worklist_get(today=TODAY).later_count == 1
    rows |= {row.implant.pk: row for row in worklist_get(today=TODAY, urgency="later").rows}
    assert rows[later.pk].urgency == Urgency.LATER
    assert rows[soon.pk].urgency == Urgency.SOON and rows[soon.pk].days_to_due == 12
    assert rows[urgent.pk].urgency == Urgency.URGENT and rows[urgent.pk].days_to_alarm == 6
    assert rows[due_today.pk].urgency == Urgency.URGENT and rows[due_today.pk].days_to_due == 0
    assert rows[overdue.pk].urgency == Urgency.OVERDUE and rows[overdue.pk].days_overdue == 24
    assert clinic.urgent_alert_days == 7 and clinic.unbooked_alert_days == 21
    assert [r.needs_booking for r in worklist_get(today=TODAY).rows] == [True, True, True, True]
    # the level the database filters by is the level `refill_urgency_classify` gives each row
    for level in Urgency:
        filtered = worklist_get(today=TODAY, urgency=level.value).rows
        assert filtered and {row.urgency for row in filtered} == {level}
    assert worklist_get(today=TODAY).overdue_count == 1 and worklist_get(today=TODAY).needs_booking_count == 4


def test_a_booked_refill_is_shown_instead_of_nothing_booked(nurse_client, nurse, refilled):
    appointment_book(patient=refilled.patient, kind="refill", starts_at=at(2025, 3, 31), booked_by=nurse)
    html = nurse_client.get(URL).content.decode()
    assert "Mon 31 Mar, 10:00" in html
    assert "Nothing booked" not in html.split('id="refills"', 1)[1].split("</table>")[0]
    assert reverse("staff:appointment_move", args=[refilled.appointments.get().pk]) in html


@pytest.mark.parametrize(
    "term",
    ["hopper", "MRN-GH", "NGP"],
    ids=["name", "record number", "pump serial"],
)
def test_search_by_name_record_number_or_serial(nurse_client, refilled, overdue, term):
    if term == "NGP":
        term = refilled.serial_number
    html = nurse_client.get(URL, {"q": term}).content.decode()
    assert _row_names(html) == ["Hopper, Grace"]
    assert "Patients matching" in html


def test_pumps_due_later_are_counted_and_listed_on_demand(nurse_client, nurse, refilled, frozen):
    pump_refilled_on(dt.date(2025, 3, 10), nurse, family_name="Later", given_name="Lena")  # due by 3 Jun
    html = nurse_client.get(URL).content.decode()
    assert "Later, " not in html
    assert '<a href="?urgency=later#refills">Later: 1 pump due in more than 21 days</a>' in html
    assert _row_names(nurse_client.get(URL, {"urgency": "later"}).content.decode()) == ["Later, Lena"]


def test_filters_by_urgency_and_nothing_booked(nurse_client, nurse, refilled, overdue):
    assert _row_names(nurse_client.get(URL, {"urgency": "overdue"}).content.decode()) == ["Turing, Alan"]
    appointment_book(patient=refilled.patient, kind="refill", starts_at=at(2025, 3, 31), booked_by=nurse)
    assert _row_names(nurse_client.get(URL, {"unbooked": "on"}).content.decode()) == ["Turing, Alan"]
    # an unknown filter value is ignored, never a 500
    assert nurse_client.get(URL, {"urgency": "<script>"}).status_code == 200


def test_sections_show_today_missed_alerts_failed_reminders_requests_and_battery(
    nurse_client, nurse, refilled, overdue, patient_user
):
    # today's appointment, an unrecorded past appointment, a recent no-show
    today_appt = factories.AppointmentFactory(
        implant=refilled, starts_at=at(2025, 3, 20, 14, 30), kind=Appointment.Kind.REVIEW
    )
    past = factories.AppointmentFactory(implant=overdue, starts_at=at(2025, 3, 18, 11, 0))
    no_show_implant = pump_refilled_on(dt.date(2025, 2, 1), nurse, given_name="Ada", family_name="Byron")
    factories.AppointmentFactory(
        implant=no_show_implant,
        kind=Appointment.Kind.REVIEW,
        starts_at=at(2025, 3, 10),
        status=Appointment.Status.NO_SHOW,
    )
    Alert.objects.create(
        kind=Alert.Kind.REFILL_URGENT,
        severity=Alert.Severity.URGENT,
        patient=overdue.patient,
        implant=overdue,
        key_date=TODAY,
        message="Alarm date passed with nothing booked.",
    )
    reminder = Reminder.objects.create(
        appointment=today_appt,
        patient=refilled.patient,
        offset_days=2,
        channel=Reminder.Channel.EMAIL,
        send_at=at(2025, 3, 18, 9),
        appointment_starts_at=today_appt.starts_at,
        status=Reminder.Status.FAILED,
        last_error="550 mailbox unavailable",
    )
    AppointmentChangeRequest.objects.create(
        appointment=today_appt, requested_by=patient_user, message="I am away that week.", preferred_dates="Mondays"
    )
    old_pump = factories.ImplantFactory(implanted_on=dt.date(2018, 6, 1), patient__family_name="Lamarr")
    # when
    html = nurse_client.get(URL).content.decode()
    # then
    assert "14:30" in html and "Review" in html
    assert "Booked, no visit recorded" in html and reverse("staff:appointment_no_show", args=[past.pk]) in html
    assert "No-show" in html and "Not rebooked" in html
    assert "Alarm date passed with nothing booked." in html
    assert "Reminder failed" in html and reminder.last_error in html
    assert "I am away that week." in html and "Prefers: Mondays" in html
    assert "Lamarr" in html and "Plan replacement by <strong>1 Dec 2024</strong>" in html
    assert old_pump.pump_model.battery_hard_stop_years == 7


def test_resolving_an_alert_closes_it(nurse_client, nurse, overdue):
    alert = Alert.objects.create(
        kind=Alert.Kind.REFILL_URGENT, patient=overdue.patient, key_date=TODAY, message="Call the patient."
    )
    response = nurse_client.post(reverse("staff:alert_resolve", args=[alert.pk]), {"note": "Phoned, booked."})
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.resolved_by == nurse and alert.resolution == "Phoned, booked."
    assert "Call the patient." not in nurse_client.get(URL).content.decode()


def _clinic(n: int, nurse, start: int) -> None:
    for i in range(start, start + n):
        implant = pump_refilled_on(
            dt.date(2024, 11, 1) + dt.timedelta(days=3 * i), nurse, family_name=f"Patient{i:03d}", mrn=f"Q{i:05d}"
        )
        if i % 3 == 0:
            factories.AppointmentFactory(
                implant=implant, kind=Appointment.Kind.REVIEW, starts_at=at(2025, 3, 20, 9 + i % 8)
            )
        if i % 4 == 0:
            Alert.objects.create(kind=Alert.Kind.REFILL_UNBOOKED, patient=implant.patient, key_date=TODAY, message="x")
        if i % 5 == 0:
            factories.AppointmentFactory(
                implant=implant, kind=Appointment.Kind.REVIEW, starts_at=at(2025, 3, 12), status="no_show"
            )


def test_the_worklist_query_count_does_not_grow_with_the_clinic(
    nurse_client, nurse, frozen, django_assert_num_queries, monkeypatch
):
    # small caps, so that the larger clinic overflows every section
    monkeypatch.setattr("refills.worklist.PAGE_SIZE", 10)
    monkeypatch.setattr("refills.worklist.SECTION_CAP", 4)
    monkeypatch.setattr("refills.views.WORKLIST_SECTION_CAP", 4)
    # given a clinic of 3 patients
    _clinic(3, nurse, 0)
    with CaptureQueriesContext(connection) as small:
        assert nurse_client.get(URL).status_code == 200
    # when it grows to 30 (with appointments, alerts and no-shows in proportion), then to 45
    _clinic(27, nurse, 3)
    with django_assert_num_queries(len(small.captured_queries)):
        medium = nurse_client.get(URL).content.decode()
    _clinic(15, nurse, 30)
    # then the page runs exactly the same number of queries, and shows at most a page of each
    with django_assert_num_queries(len(small.captured_queries)):
        large = nurse_client.get(URL).content.decode()
    assert len(_row_names(medium)) == len(_row_names(large)) == 10
    assert "Page 1 of " in large and 'rel="next"' in large
    assert re.search(r"4 of \d+ appointments today shown", large)
    # the response is bounded by what is shown, not by the clinic's size
    assert abs(len(large) - len(medium)) < 0.05 * len(medium), (len(medium), len(large))
    assert len(small.captured_queries) <= 32, "\n".join(q["sql"][:100] for q in small.captured_queries)
    print(f"worklist queries: {len(small.captured_queries)} at 3, 30 and 45 patients")


def test_the_refill_table_pages_keep_the_filters(nurse_client, nurse, frozen, monkeypatch):
    monkeypatch.setattr("refills.worklist.PAGE_SIZE", 2)
    _clinic(5, nurse, 0)
    html = nurse_client.get(URL, {"unbooked": "on", "page": "2"}).content.decode()
    assert "Page 2 of 3" in html and 'href="?unbooked=on&amp;page=3#refills"' in html
    assert len(_row_names(html)) == 2
    # a page past the end shows the last one; a malformed page the first
    assert "Page 3 of 3" in nurse_client.get(URL, {"unbooked": "on", "page": "99"}).content.decode()
    assert "Page 1 of 3" in nurse_client.get(URL, {"unbooked": "on", "page": "x"}).content.decode()


def test_calendar_shows_the_week_with_capacity_and_closed_days(nurse_client, nurse, refilled):
    appointment_book(patient=refilled.patient, kind="refill", starts_at=at(2025, 3, 26, 11), booked_by=nurse)
    from refills.models import ClosedDay

    ClosedDay.objects.create(date=dt.date(2025, 3, 28), reason="Staff training")
    html = nurse_client.get(reverse("staff:calendar"), {"week": "2025-03-26"}).content.decode()
    assert "Week of 24 March 2025" in html
    assert "Wednesday 26 Mar" in html and "11:00" in html and "1 of 8 refill slots booked" in html
    assert "Clinic closed: Staff training" in html
    assert "Saturday" not in html  # closed weekends with nothing on are hidden
    assert 'href="?week=2025-03-17"' in html and 'href="?week=2025-03-31"' in html
    # a malformed week falls back to this week
    assert "Week of 17 March 2025" in nurse_client.get(reverse("staff:calendar"), {"week": "bad"}).content.decode()
    assert timezone.localdate() == TODAY
