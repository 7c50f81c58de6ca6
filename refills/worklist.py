"""The nurses' worklist: everything to act on today, as one view-model, in a fixed number of queries.

Its cost does not grow with the clinic: each section is capped (the refill table paginated),
counts come from aggregate queries, urgency and battery dates are computed in the database
(`urgency_level_sql`, `pumps.selectors.implant_list_with_battery_dates`), and Python classifies
only the rows shown.

A page read, not a schedule rule: the urgency of each refill comes from `refills.urgency`, the same
classification the alert scan uses, and the template shows it (it never compares thresholds).
"""

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Case, CharField, Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Value, When, Window
from django.utils import timezone

from patients.models import Patient
from patients.selectors import patient_list
from pumps.calculations import ReplacementPlan
from pumps.models import Implant
from pumps.selectors import implant_list_with_battery_dates

from .calculations import AnnualReview
from .clinic_time import clinic_day_start
from .forecasting import (
    PROBLEM_LABELS,
)
from .models import (
    Appointment,
    AppointmentChangeRequest,
    ClinicSettings,
)
from .selectors import booked_refills_of, patient_list_annual_review_due, patient_list_due_for_refill
from .urgency import Urgency, refill_urgency_classify

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorklistRow:
    implant: Implant
    days_to_due: int
    days_to_alarm: int | None
    urgency: Urgency
    booked_at: dt.datetime | None
    booked_after_due: bool
    booked_id: int | None = None

    @property
    def patient(self) -> Patient:
        return self.implant.patient

    @property
    def days_overdue(self) -> int:
        return -self.days_to_due

    @property
    def nothing_booked(self) -> bool:
        return self.booked_at is None

    @property
    def needs_booking(self) -> bool:
        """Nothing booked although the refill is overdue or due within the clinic's alert window."""
        return self.booked_at is None and self.urgency != Urgency.LATER


@dataclass(frozen=True, slots=True)
class BatteryRow:
    implant: Implant
    plan: ReplacementPlan | None
    window_opens_on: dt.date | None


@dataclass(frozen=True, slots=True)
class NoForecastRow:
    implant: Implant
    problem: str


@dataclass(frozen=True, slots=True)
class Worklist:
    """What the page shows: every section capped or paginated, every count from an aggregate query.

    The page costs the same whatever the clinic's size (STYLE.md 21): the refill table shows one
    page of `PAGE_SIZE` rows, the other sections at most `SECTION_CAP` rows each with their total.
    """

    today: dt.date
    clinic: ClinicSettings
    todays_appointments: list[Appointment]
    # One page of the refills matching the filters (pumps due later only when asked for).
    rows: list[WorklistRow]
    unrecorded: list[Appointment]
    no_shows: list[Appointment]
    battery: list[BatteryRow]
    change_requests: list[AppointmentChangeRequest]
    search_results: list | None
    # Active pumps with no forecast (fill not recorded, emptied, a record that cannot be
    # computed): nothing can warn before they run dry, so they head the worklist.
    no_forecast: Sequence[NoForecastRow] = ()
    # Pumps whose battery dates could not be computed from their record (shown, not hidden).
    battery_errors: Sequence[Implant] = ()
    # Patients whose yearly review is due, none done in the last 12 months and none booked.
    annual_reviews: Sequence[tuple[Implant, AnnualReview]] = ()
    # Counted over the whole clinic, whatever the filters.
    overdue_count: int = 0
    needs_booking_count: int = 0
    later_count: int = 0
    # Totals of the sections (each may show fewer rows than it counts).
    rows_total: int = 0
    page: int = 1
    todays_count: int = 0
    unrecorded_count: int = 0
    no_show_count: int = 0
    battery_count: int = 0
    battery_error_count: int = 0
    change_request_count: int = 0
    no_forecast_count: int = 0

    @property
    def missed_count(self) -> int:
        return self.unrecorded_count + self.no_show_count

    @property
    def pages(self) -> int:
        return max(1, -(-self.rows_total // PAGE_SIZE))

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def has_previous(self) -> bool:
        return self.page > 1


# One page of the refill table, and the most rows any other section shows.
PAGE_SIZE = 50
SECTION_CAP = 100


def section_get(queryset: QuerySet, *, cap: int) -> tuple[list, int]:
    """The first `cap` rows of a section and its total, in one query: the total is
    `COUNT(*) OVER ()`, computed over every matching row before the LIMIT (an empty section: 0)."""
    rows = list(queryset.annotate(section_total=Window(Count("pk")))[:cap])
    return rows, (rows[0].section_total if rows else 0)


def worklist_row_classify(*, implant: Implant, today: dt.date, clinic: ClinicSettings) -> WorklistRow:
    """Urgency of one refill from the forecast in force and the clinic's alert settings."""
    due_by = implant.forecast_due_by
    if due_by is None:  # `patient_list_due_for_refill` keeps only pumps with a forecast
        raise ValueError(f"implant {implant.pk} has no forecast to classify")
    classified = refill_urgency_classify(
        due_by=due_by,
        alarm_on=implant.forecast_alarm_on,
        today=today,
        unbooked_alert_days=clinic.unbooked_alert_days,
        urgent_alert_days=clinic.urgent_alert_days,
    )
    booked_at = getattr(implant, "booked_refill_at", None)
    return WorklistRow(
        booked_id=getattr(implant, "booked_refill_id", None),
        implant=implant,
        days_to_due=classified.days_to_due,
        days_to_alarm=classified.days_to_alarm,
        urgency=classified.level,
        booked_at=booked_at,
        booked_after_due=booked_at is not None and timezone.localdate(booked_at) > due_by,
    )


def urgency_level_sql(*, today: dt.date, clinic: ClinicSettings) -> Case:
    """`refill_urgency_classify(...).level` as a SQL expression over the stored forecast, so the
    worklist filters and counts by urgency in the database (a test holds the two equal)."""
    return Case(
        When(forecast_due_by__lt=today, then=Value(Urgency.OVERDUE.value)),
        When(
            Q(forecast_due_by=today) | Q(forecast_alarm_on__lte=today + dt.timedelta(days=clinic.urgent_alert_days)),
            then=Value(Urgency.URGENT.value),
        ),
        When(
            forecast_due_by__lte=today + dt.timedelta(days=clinic.unbooked_alert_days),
            then=Value(Urgency.SOON.value),
        ),
        default=Value(Urgency.LATER.value),
        output_field=CharField(),
    )


def _battery_near(*, today: dt.date, clinic: ClinicSettings) -> Q:
    """The battery section's rule: the replacement must be planned within the clinic's horizon,
    the battery window has opened, or an ERI was reported."""
    return (
        Q(battery_plan_by__lte=today + dt.timedelta(days=clinic.replacement_alert_days))
        | Q(battery_window_opens_on__lte=today)
        | Q(eri_reported_on__isnull=False)
    )


def worklist_get(
    *,
    today: dt.date,
    search: str = "",
    urgency: str = "",
    unbooked_only: bool = False,
    page: int = 1,
    no_show_days: int = 30,
) -> Worklist:
    """Everything a nurse acts on today, in a fixed number of queries (a list and a count per section).

    Without a filter the refill table shows the pumps overdue or due within the alert window; pumps
    due later are counted and shown with `urgency="later"`; a search shows every level.
    Open alerts come from `refills.alerts.reads`, failed reminders from `refills.reminders.reads`.
    """
    clinic = ClinicSettings.load()
    start, end = clinic_day_start(today), clinic_day_start(today + dt.timedelta(days=1))
    todays_qs = (
        Appointment.objects.valid()
        .filter(starts_at__gte=start, starts_at__lt=end)
        .exclude(status=Appointment.Status.CANCELLED)
    )
    todays, todays_count = section_get(
        todays_qs.select_related("patient", "implant").order_by("starts_at", "id"), cap=SECTION_CAP
    )

    level = urgency_level_sql(today=today, clinic=clinic)
    due = patient_list_due_for_refill(today=today).alias(urgency_level=level)
    counts = due.order_by().aggregate(
        overdue=Count("pk", filter=Q(urgency_level=Urgency.OVERDUE.value)),
        needs_booking=Count("pk", filter=~Q(urgency_level=Urgency.LATER.value) & Q(has_booked_refill=False)),
        later=Count("pk", filter=Q(urgency_level=Urgency.LATER.value)),
    )
    search_results = None
    shown = due
    if search.strip():
        matching = patient_list(search=search)
        search_results = list(matching[:50])
        shown = shown.filter(patient__in=matching.values("pk"))
    if urgency:
        shown = shown.filter(urgency_level=urgency)
    elif not search.strip():
        shown = shown.exclude(urgency_level=Urgency.LATER.value)
    if unbooked_only:
        shown = shown.filter(has_booked_refill=False)  # type: ignore[misc]  # an annotation of the selector
    rows_total = shown.order_by().count()
    page = max(1, min(page, max(1, -(-rows_total // PAGE_SIZE))))
    page_rows = shown.annotate(
        booked_refill_id=Subquery(booked_refills_of(OuterRef("pk")).order_by("starts_at").values("pk")[:1])
    )[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    rows = [worklist_row_classify(implant=implant, today=today, clinic=clinic) for implant in page_rows]

    unrecorded_qs = Appointment.objects.valid().filter(status=Appointment.Status.BOOKED, starts_at__lt=start)
    unrecorded, unrecorded_count = section_get(
        unrecorded_qs.select_related("patient", "implant").order_by("starts_at", "id"), cap=SECTION_CAP
    )
    no_shows_qs = Appointment.objects.valid().filter(
        status=Appointment.Status.NO_SHOW, starts_at__gte=start - dt.timedelta(days=no_show_days)
    )
    no_shows, no_show_count = section_get(
        no_shows_qs.select_related("patient", "implant")
        .annotate(
            rebooked=Exists(
                Appointment.objects.valid().filter(
                    patient=OuterRef("patient"), status=Appointment.Status.BOOKED, kind=OuterRef("kind")
                )
            )
        )
        .order_by("-starts_at", "-id"),
        cap=SECTION_CAP,
    )
    no_forecast_qs = (
        Implant.objects.valid()
        .filter(explanted_on__isnull=True, patient__status="active", patient__entered_in_error=False)
        .filter(forecast_due_by__isnull=True)
    )
    no_forecast_implants, no_forecast_count = section_get(
        no_forecast_qs.select_related("patient", "pump_model").order_by("implanted_on", "pk"), cap=SECTION_CAP
    )
    no_forecast = [
        NoForecastRow(implant=implant, problem=PROBLEM_LABELS.get(implant.forecast_problem, "Forecast not computed"))
        for implant in no_forecast_implants
    ]
    with_dates = implant_list_with_battery_dates()
    battery_qs = with_dates.filter(battery_computable=True).filter(_battery_near(today=today, clinic=clinic))
    battery_implants, battery_count = section_get(
        battery_qs.select_related("patient", "pump_model").order_by(
            F("battery_plan_stops_on").asc(nulls_last=True), "implanted_on", "id"
        ),
        cap=SECTION_CAP,
    )
    battery = [
        BatteryRow(
            implant=implant,
            plan=(
                ReplacementPlan(
                    hard_stop_on=implant.battery_hard_stop_on,
                    plan_by=implant.battery_plan_by,
                    stops_on=implant.battery_plan_stops_on,
                )
                if implant.battery_plan_by is not None
                else None
            ),
            window_opens_on=implant.battery_window_opens_on,
        )
        for implant in battery_implants
    ]
    # One impossible date (an ERI of 9999-12-01) must not take the worklist down: shown as a problem.
    battery_errors_qs = with_dates.filter(battery_computable=False)
    battery_errors, battery_error_count = section_get(
        battery_errors_qs.select_related("patient").order_by("implanted_on", "id"), cap=SECTION_CAP
    )
    change_requests_qs = AppointmentChangeRequest.objects.filter(
        status=AppointmentChangeRequest.Status.OPEN, appointment__entered_in_error=False
    )
    change_requests, change_request_count = section_get(
        change_requests_qs.select_related("appointment__patient", "requested_by").order_by(
            "-urgent", "requested_at", "id"
        ),
        cap=SECTION_CAP,
    )
    return Worklist(
        today=today,
        clinic=clinic,
        todays_appointments=todays,
        rows=rows,
        unrecorded=unrecorded,
        no_shows=no_shows,
        battery=battery,
        change_requests=change_requests,
        search_results=search_results,
        no_forecast=no_forecast,
        battery_errors=battery_errors,
        annual_reviews=patient_list_annual_review_due(today=today, clinic=clinic, limit=SECTION_CAP),
        overdue_count=counts["overdue"],
        needs_booking_count=counts["needs_booking"],
        later_count=counts["later"],
        rows_total=rows_total,
        page=page,
        todays_count=todays_count,
        unrecorded_count=unrecorded_count,
        no_show_count=no_show_count,
        battery_count=battery_count,
        battery_error_count=battery_error_count,
        change_request_count=change_request_count,
        no_forecast_count=no_forecast_count,
    )
