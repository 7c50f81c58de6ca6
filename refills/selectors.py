"""Reads of the care schedule: who is due, the safe window, free slots, expected residuals."""

import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Exists, FilteredRelation, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, Greatest, TruncDate
from django.utils import timezone

from core.db import AddMonths
from patients.models import Patient
from pumps.models import DosePrescription, Drug, DrugPumpInterval, Implant

from .calculations import AnnualReview, ResidualDiscrepancy, annual_review_due, residual_discrepancy
from .clinic_time import clinic_day_start, clinic_tz
from .forecasting import (
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
    ClinicSettings,
    ClosedDay,
    RefillVisit,
    ReservoirEmptying,
)
from .public_holidays import public_holidays

logger = logging.getLogger(__name__)


def booked_refills_of(implant_ref: Implant | OuterRef) -> QuerySet[Appointment]:
    """The booked refills of one pump (an implant or an `OuterRef` to one)."""
    return Appointment.objects.booked_refills().filter(implant=implant_ref)


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
            has_booked_refill=Exists(booked_refills_of(OuterRef("pk"))),
            booked_refill_at=Subquery(booked_refills_of(OuterRef("pk")).order_by("starts_at").values("starts_at")[:1]),
        )
        .order_by("forecast_due_by", "forecast_alarm_on", "pk")
    )
    if within_days is not None:
        qs = qs.filter(forecast_due_by__lte=today + dt.timedelta(days=within_days))
    return qs


def refill_visit_get_latest(*, implant: Implant) -> RefillVisit | None:
    return RefillVisit.objects.valid().filter(implant=implant).order_by("-performed_at", "-id").first()


def refill_visit_prescription_before(*, visit: RefillVisit) -> DosePrescription | None:
    """The prescription in force just before the refill (a change at the refill takes effect at
    its own time): the "before" of the refill record."""
    return (
        DosePrescription.objects.valid()
        .filter(implant_id=visit.implant_id, effective_at__lt=visit.performed_at)
        .order_by("-effective_at", "-id")
        .first()
    )


def refill_visit_list(*, implant: Implant | None = None, patient: Patient | None = None) -> QuerySet[RefillVisit]:
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


def implant_history_events(*, implant: Implant) -> list[Event]:
    """Every event of the pump's drug history, from the database, in four queries.

    The theatre fill, each valid refill (and its bridge or priming bolus), each valid dose
    prescription at its worst-case day (patient boluses at their daily maximum), each emptying.
    """
    return implant_history_events_of(
        implant=implant,
        visits=RefillVisit.objects.valid().filter(implant=implant).select_related("drug"),
        prescriptions=DosePrescription.objects.valid().filter(implant=implant),
        emptied_at=ReservoirEmptying.objects.valid().filter(implant=implant).values_list("emptied_at", flat=True),
        caps=dict(
            DrugPumpInterval.objects.filter(pump_model_id=implant.pump_model_id).values_list(
                "drug_id", "max_interval_days"
            )
        ),
    )


def implant_history_events_of(
    *,
    implant: Implant,
    visits: Iterable[RefillVisit],
    prescriptions: Iterable[DosePrescription],
    emptied_at: Iterable[dt.datetime],
    caps: Mapping[int, int | None],
) -> list[Event]:
    """The events of `implant_history_events` from rows already in hand (valid ones only).

    `caps`: the stability caps of the pump's model, by drug id (DrugPumpInterval). A bulk import
    builds a new pump's history from the rows it is about to write, so its forecast is computed
    by the same function as every other pump's.
    """

    def cap(drug: Drug) -> int | None:
        return caps.get(drug.pk, drug.max_interval_days)

    events: list[Event] = []
    if implant.fill_volume_ml and implant.fill_drug_id:
        drug = implant.fill_drug
        assert drug is not None  # fill_drug_id is set
        events.append(
            Fill(
                at=clinic_day_start(implant.implanted_on),
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
    for visit in visits:
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
    for prescription in prescriptions:
        events.append(Dose(at=prescription.effective_at, daily_dose_mcg=prescription.worst_case_daily_dose_mcg))
    for at in emptied_at:
        events.append(Emptied(at=at))
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


def clinic_closed_days(*, start: dt.date, end: dt.date, clinic: ClinicSettings) -> dict[dt.date, str]:
    """The days from `start` to `end` (inclusive) the clinic is closed, with the reason if one is
    known: its weekly closed days, the public holidays of its country and region (named, e.g.
    "Christmas Day"), and each `ClosedDay` (one query; its own reason wins when given).
    The one closed-day rule."""
    weekly = set(clinic.closed_weekdays or [])
    closed = {
        start + dt.timedelta(days=i): ""
        for i in range((end - start).days + 1)
        if (start + dt.timedelta(days=i)).weekday() in weekly
    }
    closed.update(
        public_holidays(start=start, end=end, country=clinic.holiday_country, subdivision=clinic.holiday_subdivision)
    )
    for day, reason in ClosedDay.objects.filter(date__range=(start, end)).values_list("date", "reason"):
        closed[day] = reason or closed.get(day, "")
    return closed


def clinic_day_is_closed(*, day: dt.date, clinic: ClinicSettings) -> bool:
    return day in clinic_closed_days(start=day, end=day, clinic=clinic)


def _per_day(qs: QuerySet[Appointment], *, start: dt.date, end: dt.date, exclude_id: int | None) -> dict[dt.date, int]:
    qs = qs.filter(starts_at__gte=clinic_day_start(start), starts_at__lt=clinic_day_start(end + dt.timedelta(days=1)))
    if exclude_id is not None:
        qs = qs.exclude(pk=exclude_id)
    rows = qs.annotate(day=TruncDate("starts_at", tzinfo=clinic_tz())).values("day").annotate(n=Count("id"))
    return {row["day"]: row["n"] for row in rows}


def refill_bookings_per_day(*, start: dt.date, end: dt.date, exclude_id: int | None = None) -> dict[dt.date, int]:
    """Booked refills at the clinic per clinic-local day between two dates (inclusive): what the
    day's refill slots count (a home visit has its own capacity)."""
    qs = Appointment.objects.booked_refills().filter(location=Appointment.Location.CLINIC)
    return _per_day(qs, start=start, end=end, exclude_id=exclude_id)


def home_visit_bookings_per_day(*, start: dt.date, end: dt.date, exclude_id: int | None = None) -> dict[dt.date, int]:
    """Booked home visits (any kind) per clinic-local day between two dates (inclusive)."""
    return _per_day(Appointment.objects.booked_home_visits(), start=start, end=end, exclude_id=exclude_id)


def day_capacity_get(
    *, location: str, start: dt.date, end: dt.date, clinic: ClinicSettings, exclude_id: int | None = None
) -> tuple[int, dict[dt.date, int]]:
    """A location's capacity a day, and what is booked against it per day: clinic refill slots,
    or home visits."""
    if location == Appointment.Location.HOME:
        return clinic.home_visits_per_day, home_visit_bookings_per_day(start=start, end=end, exclude_id=exclude_id)
    return clinic.refills_per_day, refill_bookings_per_day(start=start, end=end, exclude_id=exclude_id)


def refill_slot_proposals(
    *, implant: Implant, today: dt.date, count: int = 5, location: str = Appointment.Location.CLINIC
) -> list[dt.date]:
    """Open days inside the safe window with room left (clinic refill slots, or home visits), the
    latest first (as late as safe, before due-by). Closed days and public holidays are skipped.

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
    closed = clinic_closed_days(start=start, end=end, clinic=clinic)
    capacity, booked = day_capacity_get(location=location, start=start, end=end, clinic=clinic)
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    if latest_first:
        days.reverse()
    open_days = [d for d in days if d not in closed and booked.get(d, 0) < capacity]
    return open_days[:count]


def appointment_list(
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    kind: str | None = None,
    status: str | None = None,
    patient: Patient | None = None,
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


@dataclass(frozen=True, slots=True)
class CalendarEntry:
    """One appointment on the week calendar, on the day it happens.

    A refill done before its booked date (the visit completes the booking) is shown on the day it
    was done, at the visit's time, with the date it had been booked for: the future day it was
    booked shows nothing, so its slot reads as free — which it is.
    """

    appointment: Appointment
    at: dt.datetime
    done_early: bool

    @property
    def day(self) -> dt.date:
        return timezone.localdate(self.at)


def appointment_list_for_calendar(*, start: dt.date, end: dt.date) -> list[CalendarEntry]:
    """The valid, not cancelled appointments from `start` to `end` (clinic-local days, inclusive),
    each on the day it happened or will happen, in time order (one query)."""
    lo, hi = clinic_day_start(start), clinic_day_start(end + dt.timedelta(days=1))
    qs = (
        Appointment.objects.valid()
        .exclude(status=Appointment.Status.CANCELLED)
        .filter(Q(starts_at__gte=lo, starts_at__lt=hi) | Q(visit__performed_at__gte=lo, visit__performed_at__lt=hi))
        .select_related("patient", "visit")
    )
    entries = []
    for appointment in qs:
        visit = appointment.visit
        at = visit.performed_at if visit is not None else appointment.starts_at
        if lo <= at < hi:
            done_early = visit is not None and timezone.localdate(at) < timezone.localdate(appointment.starts_at)
            entries.append(CalendarEntry(appointment=appointment, at=at, done_early=done_early))
    entries.sort(key=lambda entry: (entry.at, entry.appointment.pk))
    return entries


def appointment_get_next(*, patient: Patient, now: dt.datetime) -> Appointment | None:
    return (
        Appointment.objects.valid()
        .filter(patient=patient, status=Appointment.Status.BOOKED, starts_at__gte=now)
        .order_by("starts_at")
        .first()
    )


def change_request_due_by(*, appointment: Appointment) -> dt.date | None:
    """The date a refill appointment should not move past: its pump's due-by date (None for other kinds)."""
    if appointment.kind != Appointment.Kind.REFILL or appointment.implant is None:
        return None
    due_by: dt.date | None = appointment.implant.forecast_due_by
    return due_by


def _annual_review_annotate(implants: QuerySet[Implant]) -> QuerySet[Implant]:
    reviews = Appointment.objects.valid().filter(patient=OuterRef("patient"), kind=Appointment.Kind.REVIEW)
    return implants.annotate(
        last_review_at=Subquery(
            reviews.filter(status=Appointment.Status.COMPLETED).order_by("-starts_at").values("starts_at")[:1]
        ),
        review_booked=Exists(reviews.filter(status=Appointment.Status.BOOKED)),
    )


def _annual_review_of(implant: Implant, *, today: dt.date, clinic: ClinicSettings) -> AnnualReview | None:
    last = getattr(implant, "last_review_at", None)
    return annual_review_due(
        last_review_on=timezone.localdate(last, clinic_tz()) if last else None,
        implanted_on=implant.implanted_on,
        review_booked=bool(getattr(implant, "review_booked", False)),
        today=today,
        notice_days=clinic.annual_review_notice_days,
    )


def patient_get_annual_review(*, patient: Patient, today: dt.date) -> AnnualReview | None:
    """The patient's yearly review (due date, whether to propose it now); None without an active pump."""
    implant = _annual_review_annotate(
        Implant.objects.valid().filter(patient=patient, explanted_on__isnull=True).order_by("-implanted_on")
    ).first()
    return _annual_review_of(implant, today=today, clinic=ClinicSettings.load()) if implant else None


def patient_list_annual_review_due(
    *, today: dt.date, clinic: ClinicSettings | None = None, limit: int = 100
) -> list[tuple[Implant, AnnualReview]]:
    """Active patients whose yearly review is due and not booked, soonest due first: one query,
    the due date computed in SQL as `refills.calculations.annual_review_due` does in Python
    (a year after the later of the implant and the last review done; 29 February → 28 February)."""
    clinic = clinic or ClinicSettings.load()
    # The last review done, as a join on the patient's completed reviews grouped by pump (one pass
    # over the table, as the hand-written reference's aggregate), not a subquery per pump.
    done = FilteredRelation(
        "patient__appointments",
        condition=Q(
            patient__appointments__kind=Appointment.Kind.REVIEW,
            patient__appointments__status=Appointment.Status.COMPLETED,
            patient__appointments__entered_in_error=False,
        ),
    )
    booked = Appointment.objects.valid().filter(
        patient=OuterRef("patient"), kind=Appointment.Kind.REVIEW, status=Appointment.Status.BOOKED
    )
    last_review_on = TruncDate(Max("reviews_done__starts_at"), tzinfo=clinic_tz())
    implants = (
        Implant.objects.valid()
        .filter(explanted_on__isnull=True, patient__status=Patient.Status.ACTIVE, patient__entered_in_error=False)
        .filter(~Exists(booked))
        .select_related("patient")
        .annotate(reviews_done=done)
        .annotate(review_due=AddMonths(Greatest("implanted_on", Coalesce(last_review_on, "implanted_on")), 12))
        .filter(review_due__lte=today + dt.timedelta(days=clinic.annual_review_notice_days))
        .order_by("review_due", "pk")[:limit]
    )
    return [(implant, AnnualReview(due_on=implant.review_due, is_due=True)) for implant in implants]


__all__ = [
    "CalendarEntry",
    "RefillWindow",
    "appointment_get_next",
    "appointment_list",
    "appointment_list_for_calendar",
    "booked_refills_of",
    "change_request_due_by",
    "clinic_closed_days",
    "clinic_day_is_closed",
    "day_capacity_get",
    "home_visit_bookings_per_day",
    "implant_get_expected_residual",
    "implant_get_forecast",
    "max_interval_days_get",
    "patient_get_annual_review",
    "patient_list_annual_review_due",
    "patient_list_due_for_refill",
    "refill_bookings_per_day",
    "refill_slot_proposals",
    "refill_visit_get_latest",
    "refill_visit_list",
    "refill_window_get",
]


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
    history: Sequence[Event] | None = None,
    caps: Mapping[int, int | None] | None = None,
) -> RefillPreview:
    """The refill's expected residual, discrepancy and new forecast, from the pump's history.

    Each part is computed as soon as its inputs are there; out-of-range inputs give None. The
    new forecast is the one pure function over the history plus this refill (its fill, the dose
    it leaves, its bridge bolus), so any dose change planned after it still counts.
    `history` and `caps` (the pump model's stability caps by drug id), when the caller has them
    already (a bulk import of new pumps), spare the queries.
    """
    clinic = clinic or ClinicSettings.load()
    model = implant.pump_model
    refilled_on = timezone.localdate(performed_at)
    threshold = model.alarm_threshold_ml if alarm_threshold_ml is None else alarm_threshold_ml
    if history is None:
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
            max_interval_days=(
                max_interval_days_get(drug=drug, implant=implant)
                if caps is None
                else caps.get(drug.pk, drug.max_interval_days)
            ),
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
