"""The nurses' worklist: everything to act on today, as one view-model, in a fixed number of queries.

A page read, not a schedule rule: the urgency of each refill comes from `refills.urgency`, the same
classification the alert scan uses, and the template shows it (it never compares thresholds).
"""

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Subquery
from django.utils import timezone

from patients.models import Patient
from patients.selectors import patient_list
from pumps.calculations import ReplacementPlan
from pumps.models import Implant
from pumps.selectors import (
    implant_get_battery_window_opens_on,
    implant_get_replacement_plan,
    implant_list_active,
)

from .clinic_time import clinic_day_start
from .forecasting import (
    PROBLEM_LABELS,
)
from .models import (
    Appointment,
    AppointmentChangeRequest,
    ClinicSettings,
)
from .selectors import booked_refills_of, patient_list_due_for_refill
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
    today: dt.date
    clinic: ClinicSettings
    todays_appointments: list[Appointment]
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
    # Counted over the whole clinic, whatever the filters.
    overdue_count: int = 0
    needs_booking_count: int = 0

    @property
    def missed_count(self) -> int:
        return len(self.unrecorded) + len(self.no_shows)


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


def worklist_get(
    *, today: dt.date, search: str = "", urgency: str = "", unbooked_only: bool = False, no_show_days: int = 30
) -> Worklist:
    """Everything a nurse acts on today, in a fixed number of queries (one per section).

    Open alerts come from `refills.alerts.reads`, failed reminders from `refills.reminders.reads`.
    """
    clinic = ClinicSettings.load()
    start, end = clinic_day_start(today), clinic_day_start(today + dt.timedelta(days=1))
    todays = list(
        Appointment.objects.valid()
        .filter(starts_at__gte=start, starts_at__lt=end)
        .exclude(status=Appointment.Status.CANCELLED)
        .select_related("patient", "implant")
        .order_by("starts_at", "id")
    )
    due = patient_list_due_for_refill(today=today).annotate(
        booked_refill_id=Subquery(booked_refills_of(OuterRef("pk")).order_by("starts_at").values("pk")[:1])
    )
    matching_ids = None
    search_results = None
    if search.strip():
        search_results = list(patient_list(search=search)[:50])
        matching_ids = {p.pk for p in search_results}
    all_rows = [worklist_row_classify(implant=implant, today=today, clinic=clinic) for implant in due]
    rows = [
        row
        for row in all_rows
        if (matching_ids is None or row.implant.patient_id in matching_ids)
        and (not urgency or row.urgency == urgency)
        and (not unbooked_only or row.nothing_booked)
    ]
    unrecorded = list(
        Appointment.objects.valid()
        .filter(status=Appointment.Status.BOOKED, starts_at__lt=start)
        .select_related("patient", "implant")
        .order_by("starts_at", "id")[:100]
    )
    no_shows = list(
        Appointment.objects.valid()
        .filter(status=Appointment.Status.NO_SHOW, starts_at__gte=start - dt.timedelta(days=no_show_days))
        .select_related("patient", "implant")
        .annotate(
            rebooked=Exists(
                Appointment.objects.valid().filter(
                    patient=OuterRef("patient"), status=Appointment.Status.BOOKED, kind=OuterRef("kind")
                )
            )
        )
        .order_by("-starts_at", "-id")[:100]
    )
    no_forecast = [
        NoForecastRow(implant=implant, problem=PROBLEM_LABELS.get(implant.forecast_problem, "Forecast not computed"))
        for implant in Implant.objects.valid()
        .filter(explanted_on__isnull=True, patient__status="active", patient__entered_in_error=False)
        .filter(forecast_due_by__isnull=True)
        .select_related("patient", "pump_model")
        .order_by("implanted_on", "pk")[:100]
    ]
    battery, battery_errors = [], []
    for implant in implant_list_active().select_related("patient", "pump_model").order_by("implanted_on", "id"):
        try:
            plan = implant_get_replacement_plan(implant=implant)
            opens_on = implant_get_battery_window_opens_on(implant=implant)
        except (ArithmeticError, ValueError, TypeError, OverflowError):
            # One impossible date (an ERI of 9999-12-01) must not take the worklist down.
            logger.exception("battery dates of implant %s cannot be computed", implant.pk)
            battery_errors.append(implant)
            continue
        near = (plan is not None and (plan.plan_by - today).days <= clinic.replacement_alert_days) or (
            opens_on is not None and opens_on <= today
        )
        if near or implant.eri_reported_on is not None:
            battery.append(BatteryRow(implant=implant, plan=plan, window_opens_on=opens_on))
    battery.sort(key=lambda r: r.plan.stops_on if r.plan else dt.date.max)
    change_requests = list(
        AppointmentChangeRequest.objects.filter(status=AppointmentChangeRequest.Status.OPEN)
        .select_related("appointment__patient", "requested_by")
        .order_by("requested_at", "id")[:100]
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
        overdue_count=sum(1 for row in all_rows if row.urgency == Urgency.OVERDUE),
        needs_booking_count=sum(1 for row in all_rows if row.needs_booking),
    )
