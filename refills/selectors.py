"""Reads of the care schedule: who is due, the safe window, free slots, expected residuals."""

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from django.db.models import Count, Exists, OuterRef, QuerySet, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from patients.models import ScreeningTrial
from patients.selectors import patient_list
from pumps.calculations import ReplacementPlan
from pumps.models import DosePrescription, Drug, DrugPumpInterval, Implant
from pumps.selectors import (
    implant_get_battery_window_opens_on,
    implant_get_replacement_plan,
    implant_list_active,
)

from .calculations import ResidualDiscrepancy, residual_discrepancy
from .forecasting import (
    PROBLEM_LABELS,
    Bolus,
    Dose,
    Emptied,
    Event,
    Fill,
    Problem,
    PumpForecast,
    pump_forecast,
    reservoir_volume_on,
)
from .models import (
    Appointment,
    AppointmentChangeRequest,
    ClinicSettings,
    ClosedDay,
    RefillVisit,
    Reminder,
    ReservoirEmptying,
)

logger = logging.getLogger(__name__)


def _booked_refills(implant_ref) -> QuerySet[Appointment]:
    return Appointment.objects.valid().filter(
        implant=implant_ref, kind=Appointment.Kind.REFILL, status=Appointment.Status.BOOKED
    )


def patient_list_due_for_refill(*, today: dt.date, within_days: int | None = None) -> QuerySet[Implant]:
    """Active implants of active patients with a forecast, soonest due-by first.

    Annotated (one query, whatever the clinic's size): `has_booked_refill`, `booked_refill_at`,
    `days_to_due` is left to the caller (`forecast_due_by - today`).
    """
    qs = (
        Implant.objects.valid()
        .filter(explanted_on__isnull=True, patient__status="active", patient__entered_in_error=False)
        .filter(forecast_due_by__isnull=False)
        .select_related("patient", "pump_model")
        .annotate(
            has_booked_refill=Exists(_booked_refills(OuterRef("pk"))),
            booked_refill_at=Subquery(_booked_refills(OuterRef("pk")).order_by("starts_at").values("starts_at")[:1]),
        )
        .order_by("forecast_due_by", "forecast_alarm_on", "pk")
    )
    if within_days is not None:
        qs = qs.filter(forecast_due_by__lte=today + dt.timedelta(days=within_days))
    return qs


def refill_visit_get_latest(*, implant: Implant) -> RefillVisit | None:
    return RefillVisit.objects.valid().filter(implant=implant).order_by("-performed_at", "-id").first()


def refill_visit_list(*, implant: Implant | None = None, patient=None) -> QuerySet[RefillVisit]:
    qs = RefillVisit.objects.valid().select_related("implant__pump_model", "drug", "performed_by")
    if implant is not None:
        qs = qs.filter(implant=implant)
    if patient is not None:
        qs = qs.filter(implant__patient=patient)
    return qs.order_by("-performed_at", "-id")


def max_interval_days_get(*, drug: Drug, implant: Implant) -> int | None:
    """The stability cap for this drug in this pump: the drug+pump row first, else the drug's own."""
    row = DrugPumpInterval.objects.filter(drug=drug, pump_model_id=implant.pump_model_id).first()
    return row.max_interval_days if row else drug.max_interval_days


def implant_constant_flow_ml_per_day(*, implant: Implant) -> Decimal | None:
    """The labelled flow of a constant-flow pump (the implant's, else the model's default); None otherwise."""
    if not implant.pump_model.is_constant_flow:
        return None
    return implant.flow_ml_per_day or implant.pump_model.default_flow_ml_per_day


def _clinic_start_of(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())


def implant_history_events(*, implant: Implant) -> list[Event]:
    """Every event of the pump's drug history, from the database, in four queries.

    The theatre fill, each valid refill (and its bridge or priming bolus), each valid dose
    prescription at its worst-case day (patient boluses at their daily maximum), each emptying.
    """
    caps = dict(
        DrugPumpInterval.objects.filter(pump_model_id=implant.pump_model_id).values_list("drug_id", "max_interval_days")
    )

    def cap(drug: Drug) -> int | None:
        return caps.get(drug.pk, drug.max_interval_days)

    events: list[Event] = []
    if implant.fill_volume_ml and implant.fill_drug_id:
        drug = implant.fill_drug
        events.append(
            Fill(
                at=_clinic_start_of(implant.implanted_on),
                volume_ml=implant.fill_volume_ml,
                concentration_mcg_per_ml=drug.concentration_mcg_per_ml,
                alarm_threshold_ml=(
                    implant.pump_model.alarm_threshold_ml
                    if implant.fill_alarm_threshold_ml is None
                    else implant.fill_alarm_threshold_ml
                ),
                max_interval_days=cap(drug),
            )
        )
    for visit in RefillVisit.objects.valid().filter(implant=implant).select_related("drug"):
        events.append(
            Fill(
                at=visit.performed_at,
                volume_ml=visit.volume_added_ml,
                concentration_mcg_per_ml=visit.concentration_mcg_per_ml,
                alarm_threshold_ml=visit.alarm_threshold_ml,
                max_interval_days=cap(visit.drug),
            )
        )
        if visit.bridge_bolus_mcg:
            events.append(Bolus(at=visit.performed_at, dose_mcg=visit.bridge_bolus_mcg))
    for prescription in DosePrescription.objects.valid().filter(implant=implant):
        events.append(Dose(at=prescription.effective_at, daily_dose_mcg=prescription.worst_case_daily_dose_mcg))
    for emptied_at in ReservoirEmptying.objects.valid().filter(implant=implant).values_list("emptied_at", flat=True):
        events.append(Emptied(at=emptied_at))
    return events


def implant_forecast_compute(
    *,
    implant: Implant,
    clinic: ClinicSettings | None = None,
    extra_events: Sequence[Event] = (),
    safety_margin_days: int | None = None,
    history: Sequence[Event] | None = None,
) -> PumpForecast:
    """The forecast in force from the pump's whole history (plus `extra_events`, for a preview).

    The one place a due date is computed from the database. A record that cannot be computed
    (an impossible value that bypassed validation) gives a forecast with a problem, never an
    exception: the caller raises "record needs attention" and the clinic carries on.
    """
    if safety_margin_days is None:
        safety_margin_days = (clinic or ClinicSettings.load()).safety_margin_days
    try:
        return pump_forecast(
            events=[*(implant_history_events(implant=implant) if history is None else history), *extra_events],
            tz=timezone.get_current_timezone(),
            safety_margin_days=safety_margin_days,
            constant_flow_ml_per_day=implant_constant_flow_ml_per_day(implant=implant),
        )
    except (ArithmeticError, ValueError, TypeError, OverflowError):
        logger.exception("forecast of implant %s cannot be computed", implant.pk)
        return PumpForecast(problem=Problem.CANNOT_COMPUTE)


def implant_get_forecast(*, implant: Implant, clinic: ClinicSettings | None = None) -> PumpForecast | None:
    """The forecast in force, or None when the pump has none (see `implant_forecast_compute`)."""
    forecast = implant_forecast_compute(implant=implant, clinic=clinic)
    return forecast if forecast.ok else None


def implant_get_expected_residual(
    *, implant: Implant, on: dt.date, before: dt.datetime | None = None, history: Sequence[Event] | None = None
) -> Decimal | None:
    """What the history says is left on `on` (pre-fills the refill form), to 0.01 mL.

    `before`: only events before that instant count (the refill being recorded is not its own
    expectation). None before the first fill. `history`: the pump's events, if already read.
    """
    try:
        remaining = reservoir_volume_on(
            events=implant_history_events(implant=implant) if history is None else history,
            tz=timezone.get_current_timezone(),
            on=on,
            before=before,
            constant_flow_ml_per_day=implant_constant_flow_ml_per_day(implant=implant),
        )
    except (ArithmeticError, ValueError, TypeError, OverflowError):
        logger.exception("expected residual of implant %s cannot be computed", implant.pk)
        return None
    return None if remaining is None else remaining.quantize(Decimal("0.01"))


@dataclass(frozen=True, slots=True)
class RefillWindow:
    opens_on: dt.date
    due_by: dt.date


def refill_window_get(*, implant: Implant, clinic: ClinicSettings | None = None) -> RefillWindow | None:
    """The safe window: from `refill_window_days` before the due-by date up to the due-by date."""
    if implant.forecast_due_by is None:
        return None
    clinic = clinic or ClinicSettings.load()
    return RefillWindow(
        opens_on=implant.forecast_due_by - dt.timedelta(days=clinic.refill_window_days),
        due_by=implant.forecast_due_by,
    )


def clinic_day_is_closed(*, day: dt.date, clinic: ClinicSettings) -> bool:
    return day.weekday() in (clinic.closed_weekdays or []) or ClosedDay.objects.filter(date=day).exists()


def refill_bookings_per_day(*, start: dt.date, end: dt.date, exclude_id: int | None = None) -> dict[dt.date, int]:
    """Booked refills per clinic-local day between two dates (inclusive)."""
    tz = timezone.get_current_timezone()
    qs = Appointment.objects.valid().filter(
        kind=Appointment.Kind.REFILL,
        status=Appointment.Status.BOOKED,
        starts_at__gte=dt.datetime.combine(start, dt.time.min, tzinfo=tz),
        starts_at__lt=dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz),
    )
    if exclude_id is not None:
        qs = qs.exclude(pk=exclude_id)
    rows = qs.annotate(day=TruncDate("starts_at", tzinfo=tz)).values("day").annotate(n=Count("id"))
    return {row["day"]: row["n"] for row in rows}


def refill_slot_proposals(*, implant: Implant, today: dt.date, count: int = 5) -> list[dt.date]:
    """Open clinic days inside the safe window, the latest first (as late as safe, before due-by).

    If the window has already closed (overdue), the earliest open days from today are proposed.
    """
    clinic = ClinicSettings.load()
    window = refill_window_get(implant=implant, clinic=clinic)
    if window is None:
        start, end = today, today + dt.timedelta(days=clinic.refill_window_days)
        latest_first = False
    elif window.due_by < today:
        start, end = today, today + dt.timedelta(days=14)
        latest_first = False
    else:
        start, end = max(window.opens_on, today), window.due_by
        latest_first = True
    closed = set(ClosedDay.objects.filter(date__range=(start, end)).values_list("date", flat=True))
    booked = refill_bookings_per_day(start=start, end=end)
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    if latest_first:
        days.reverse()
    open_days = [
        d
        for d in days
        if d.weekday() not in (clinic.closed_weekdays or [])
        and d not in closed
        and booked.get(d, 0) < clinic.refills_per_day
    ]
    return open_days[:count]


def appointment_list(
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    kind: str | None = None,
    status: str | None = None,
    patient=None,
) -> QuerySet[Appointment]:
    qs = Appointment.objects.valid().select_related("patient", "implant__pump_model")
    if start is not None:
        qs = qs.filter(starts_at__gte=start)
    if end is not None:
        qs = qs.filter(starts_at__lt=end)
    if kind:
        qs = qs.filter(kind=kind)
    if status:
        qs = qs.filter(status=status)
    if patient is not None:
        qs = qs.filter(patient=patient)
    return qs.order_by("starts_at", "id")


def appointment_get_next(*, patient, now: dt.datetime) -> Appointment | None:
    return (
        Appointment.objects.valid()
        .filter(patient=patient, status=Appointment.Status.BOOKED, starts_at__gte=now)
        .order_by("starts_at")
        .first()
    )


__all__ = [
    "RefillWindow",
    "appointment_get_next",
    "appointment_list",
    "clinic_day_is_closed",
    "implant_get_expected_residual",
    "implant_get_forecast",
    "max_interval_days_get",
    "patient_list_due_for_refill",
    "refill_bookings_per_day",
    "refill_slot_proposals",
    "refill_visit_get_latest",
    "refill_visit_list",
    "refill_window_get",
]


# ---------------------------------------------------------------------------
# Presentational reads for the staff web app: the nurses' worklist, a patient's timeline and
# the live preview of a refill being typed. Each is a fixed number of queries whatever the
# clinic's size; the arithmetic is the same as the services' (calculations / forecasting).
# ---------------------------------------------------------------------------


class Urgency(StrEnum):
    OVERDUE = "overdue"
    URGENT = "urgent"
    SOON = "soon"
    LATER = "later"


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
    def patient(self):
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
    no_forecast: list[NoForecastRow] = ()
    # Pumps whose battery dates could not be computed from their record (shown, not hidden).
    battery_errors: list[Implant] = ()
    # Counted over the whole clinic, whatever the filters.
    overdue_count: int = 0
    needs_booking_count: int = 0

    @property
    def missed_count(self) -> int:
        return len(self.unrecorded) + len(self.no_shows)


def worklist_row_classify(*, implant: Implant, today: dt.date, clinic: ClinicSettings) -> WorklistRow:
    """Urgency of one refill from the forecast in force and the clinic's alert settings."""
    days_to_due = (implant.forecast_due_by - today).days
    days_to_alarm = (implant.forecast_alarm_on - today).days if implant.forecast_alarm_on else None
    if days_to_due < 0:
        urgency = Urgency.OVERDUE
    elif days_to_due == 0 or (days_to_alarm is not None and days_to_alarm <= clinic.urgent_alert_days):
        urgency = Urgency.URGENT
    elif days_to_due <= clinic.unbooked_alert_days:
        urgency = Urgency.SOON
    else:
        urgency = Urgency.LATER
    booked_at = getattr(implant, "booked_refill_at", None)
    return WorklistRow(
        booked_id=getattr(implant, "booked_refill_id", None),
        implant=implant,
        days_to_due=days_to_due,
        days_to_alarm=days_to_alarm,
        urgency=urgency,
        booked_at=booked_at,
        booked_after_due=booked_at is not None and timezone.localdate(booked_at) > implant.forecast_due_by,
    )


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())


def worklist_get(
    *, today: dt.date, search: str = "", urgency: str = "", unbooked_only: bool = False, no_show_days: int = 30
) -> Worklist:
    """Everything a nurse acts on today, in a fixed number of queries (one per section).

    Open alerts and failed reminders come from `refills.reminders` (alert_list_open, reminder_list).
    """
    clinic = ClinicSettings.load()
    start, end = _day_start(today), _day_start(today + dt.timedelta(days=1))
    todays = list(
        Appointment.objects.valid()
        .filter(starts_at__gte=start, starts_at__lt=end)
        .exclude(status=Appointment.Status.CANCELLED)
        .select_related("patient", "implant")
        .order_by("starts_at", "id")
    )
    due = patient_list_due_for_refill(today=today).annotate(
        booked_refill_id=Subquery(_booked_refills(OuterRef("pk")).order_by("starts_at").values("pk")[:1])
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


def _num(value: Decimal) -> str:
    """20.00 -> "20", 3.10 -> "3.1": the way a nurse writes a volume or a dose."""
    return f"{value.normalize():f}"


def _pump_name(model) -> str:
    return f"{model.manufacturer} {model.name} {_num(model.reservoir_ml)} mL"


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    on: dt.date
    at: dt.datetime | None
    kind: str
    title: str
    detail: str = ""
    flag: str = ""


def patient_get_timeline(*, patient, now: dt.datetime) -> list[TimelineEvent]:
    """Referral to today and what is booked ahead, oldest first: one query per kind of record."""
    events: list[TimelineEvent] = []
    if patient.referred_on:
        events.append(TimelineEvent(on=patient.referred_on, at=None, kind="referral", title="Referred for ITB"))
    trials = (
        ScreeningTrial.objects.valid()
        .filter(patient=patient)
        .annotate(step_count=Count("steps", distinct=True), assessment_count=Count("assessments", distinct=True))
    )
    for trial in trials:
        events.append(
            TimelineEvent(
                on=trial.started_on,
                at=None,
                kind="trial",
                title=f"Screening trial ({trial.get_kind_display().lower()})",
                detail=f"{trial.step_count} dose(s), {trial.assessment_count} assessment(s); "
                f"verdict: {trial.get_verdict_display().lower()}",
                flag="ok" if trial.verdict == ScreeningTrial.Verdict.POSITIVE else "",
            )
        )
    for implant in Implant.objects.valid().filter(patient=patient).select_related("pump_model"):
        events.append(
            TimelineEvent(
                on=implant.implanted_on,
                at=None,
                kind="implant",
                title=f"Pump implanted: {_pump_name(implant.pump_model)}",
                detail=f"Serial {implant.serial_number}, catheter tip {implant.catheter_tip_level}, "
                f"{implant.surgeon} at {implant.hospital}",
            )
        )
        if implant.eri_reported_on:
            events.append(
                TimelineEvent(on=implant.eri_reported_on, at=None, kind="eri", title="ERI reported", flag="warn")
            )
        if implant.explanted_on:
            events.append(
                TimelineEvent(
                    on=implant.explanted_on,
                    at=None,
                    kind="explant",
                    title="Pump explanted",
                    detail=implant.explant_reason,
                )
            )
    for visit in RefillVisit.objects.valid().filter(implant__patient=patient).select_related("drug"):
        detail = (
            f"{_num(visit.volume_added_ml)} mL of {_num(visit.concentration_mcg_per_ml)} mcg/mL, "
            f"{_num(visit.daily_dose_after_mcg)} mcg/day; residual {_num(visit.actual_residual_ml)} mL"
        )
        if visit.expected_residual_ml is not None:
            detail += f" (expected {_num(visit.expected_residual_ml)} mL)"
        detail += f"; alarm {visit.alarm_on.day} {visit.alarm_on:%b %Y}"
        events.append(
            TimelineEvent(
                on=timezone.localdate(visit.performed_at),
                at=visit.performed_at,
                kind="refill",
                title="Refill" + (": residual discrepancy" if visit.discrepancy_flagged else ""),
                detail=detail,
                flag="danger" if visit.discrepancy_flagged else "",
            )
        )
    prescriptions = (
        DosePrescription.objects.valid().filter(implant__patient=patient).exclude(reason="Set at refill visit")
    )
    for dose in prescriptions:
        events.append(
            TimelineEvent(
                on=timezone.localdate(dose.effective_at),
                at=dose.effective_at,
                kind="dose",
                title=f"Dose {_num(dose.daily_dose_mcg)} mcg/day ({dose.get_dosing_mode_display().lower()})",
                detail=dose.reason,
            )
        )
    # A completed refill appointment is the refill itself (shown above, on the day it happened).
    appointments = (
        Appointment.objects.valid()
        .filter(patient=patient)
        .exclude(status=Appointment.Status.COMPLETED, visit__isnull=False)
    )
    for appointment in appointments:
        flag = {
            Appointment.Status.NO_SHOW: "danger",
            Appointment.Status.CANCELLED: "muted",
            Appointment.Status.BOOKED: "info",
        }.get(appointment.status, "")
        detail = appointment.place
        if appointment.cancel_reason:
            detail += f"; cancelled: {appointment.cancel_reason}"
        events.append(
            TimelineEvent(
                on=timezone.localdate(appointment.starts_at),
                at=appointment.starts_at,
                kind="appointment",
                title=f"{appointment.get_kind_display()} appointment: {appointment.get_status_display().lower()}",
                detail=detail,
                flag=flag,
            )
        )
    for reminder in Reminder.objects.filter(patient=patient).exclude(status=Reminder.Status.CANCELLED):
        when = reminder.sent_at or reminder.send_at
        events.append(
            TimelineEvent(
                on=timezone.localdate(when),
                at=when,
                kind="reminder",
                title=f"{reminder.get_channel_display()} reminder {reminder.offset_days} days before: "
                f"{reminder.get_status_display().lower()}",
                detail=reminder.last_error if reminder.status == Reminder.Status.FAILED else "",
                flag="danger" if reminder.status == Reminder.Status.FAILED else "",
            )
        )
    # On a replacement day the old pump comes out before the new one goes in.
    events.sort(key=lambda e: (e.on, e.at or _day_start(e.on), e.kind != "explant"))
    return events


@dataclass(frozen=True, slots=True)
class RefillPreview:
    """What a refill being typed would record: `refill_visit_record` persists exactly this."""

    expected_residual_ml: Decimal | None
    discrepancy: ResidualDiscrepancy | None
    forecast: PumpForecast | None
    alarm_threshold_ml: Decimal
    # The dose the refill leaves in force: for a constant-flow pump, flow × concentration.
    daily_dose_mcg: Decimal | None = None
    # The forecast before this refill said the reservoir ran dry before it (possible withdrawal).
    after_empty_date: bool = False
    previous_empty_on: dt.date | None = None


def refill_dose_for(*, implant: Implant, drug: Drug | None, daily_dose_mcg: Decimal | None) -> Decimal | None:
    """The daily dose a refill leaves: as prescribed, or flow × concentration on a constant-flow pump [S25]."""
    flow = implant_constant_flow_ml_per_day(implant=implant)
    if flow is not None and drug is not None:
        return (flow * drug.concentration_mcg_per_ml).quantize(Decimal("0.01"))
    return daily_dose_mcg


def refill_forecast_compute(
    *,
    implant: Implant | None,
    performed_at: dt.datetime,
    volume_ml: Decimal,
    concentration_mcg_per_ml: Decimal,
    alarm_threshold_ml: Decimal,
    daily_dose_mcg: Decimal,
    max_interval_days: int | None,
    safety_margin_days: int,
    bridge_bolus_mcg: Decimal | None = None,
    now: dt.datetime | None = None,
    history: Sequence[Event] | None = None,
) -> PumpForecast:
    """The forecast a refill leads to: the pump's history (if any) plus this fill, its dose and bolus.

    With an implant: the history before the refill, and every dose change still planned (after
    `now`, default the refill's time), so a future-dated change counts. What was recorded after
    a refill dated in the past (a what-if in the API) belongs to another history and is left out.
    Without one (the API's calculator) it is the one interval. Either way, one pure function.
    `history`: the implant's events, if already read.
    """
    events: list[Event] = [
        Fill(
            at=performed_at,
            volume_ml=volume_ml,
            concentration_mcg_per_ml=concentration_mcg_per_ml,
            alarm_threshold_ml=alarm_threshold_ml,
            max_interval_days=max_interval_days,
        ),
        Dose(at=performed_at, daily_dose_mcg=daily_dose_mcg),
    ]
    if bridge_bolus_mcg:
        events.append(Bolus(at=performed_at, dose_mcg=bridge_bolus_mcg))
    if implant is not None:
        planned_after = max(performed_at, now or performed_at)
        history = [
            event
            for event in (implant_history_events(implant=implant) if history is None else history)
            if event.at < performed_at or (isinstance(event, Dose) and event.at > planned_after)
        ]
        return implant_forecast_compute(
            implant=implant, history=history, extra_events=events, safety_margin_days=safety_margin_days
        )
    try:
        return pump_forecast(events=events, tz=timezone.get_current_timezone(), safety_margin_days=safety_margin_days)
    except (ArithmeticError, ValueError, TypeError, OverflowError):
        return PumpForecast(problem=Problem.CANNOT_COMPUTE)


def refill_visit_preview(
    *,
    implant: Implant,
    performed_at: dt.datetime,
    actual_residual_ml: Decimal | None = None,
    volume_added_ml: Decimal | None = None,
    drug: Drug | None = None,
    daily_dose_mcg: Decimal | None = None,
    alarm_threshold_ml: Decimal | None = None,
    bridge_bolus_mcg: Decimal | None = None,
    patient_bolus_mcg: Decimal | None = None,
    patient_boluses_per_day: int | None = None,
    clinic: ClinicSettings | None = None,
) -> RefillPreview:
    """The refill's expected residual, discrepancy and new forecast, from the pump's history.

    Each part is computed as soon as its inputs are there; out-of-range inputs give None. The
    new forecast is the one pure function over the history plus this refill (its fill, the dose
    it leaves, its bridge bolus), so any dose change planned after it still counts.
    """
    clinic = clinic or ClinicSettings.load()
    model = implant.pump_model
    refilled_on = timezone.localdate(performed_at)
    threshold = model.alarm_threshold_ml if alarm_threshold_ml is None else alarm_threshold_ml
    history = implant_history_events(implant=implant)  # read once: the preview runs as the nurse types
    expected = implant_get_expected_residual(implant=implant, on=refilled_on, before=performed_at, history=history)
    discrepancy = None
    if expected is not None and actual_residual_ml is not None and actual_residual_ml >= 0:
        discrepancy = residual_discrepancy(
            expected_ml=expected, actual_ml=actual_residual_ml, tolerance_ml=model.residual_tolerance_ml
        )
    previous = implant_forecast_compute(implant=implant, clinic=clinic, history=history)
    after_empty = previous.empty_on is not None and refilled_on > previous.empty_on
    dose = refill_dose_for(implant=implant, drug=drug, daily_dose_mcg=daily_dose_mcg)
    forecast = None
    if (
        drug is not None
        and volume_added_ml is not None
        and dose is not None
        and 0 < volume_added_ml <= model.reservoir_ml
        and dose > 0
        and 0 <= threshold < volume_added_ml
    ):
        worst_case = dose + (patient_bolus_mcg or 0) * (patient_boluses_per_day or 0)
        computed = refill_forecast_compute(
            implant=implant,
            performed_at=performed_at,
            volume_ml=volume_added_ml,
            concentration_mcg_per_ml=drug.concentration_mcg_per_ml,
            alarm_threshold_ml=threshold,
            daily_dose_mcg=worst_case,
            max_interval_days=max_interval_days_get(drug=drug, implant=implant),
            bridge_bolus_mcg=bridge_bolus_mcg,
            safety_margin_days=clinic.safety_margin_days,
            history=history,
        )
        forecast = computed if computed.ok else None
    return RefillPreview(
        expected_residual_ml=expected,
        discrepancy=discrepancy,
        forecast=forecast,
        alarm_threshold_ml=threshold,
        daily_dose_mcg=dose,
        after_empty_date=after_empty,
        previous_empty_on=previous.empty_on,
    )
