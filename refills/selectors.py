"""Reads of the care schedule: who is due, the safe window, free slots, expected residuals."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Exists, OuterRef, QuerySet, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from pumps.models import DosePrescription, Drug, DrugPumpInterval, Implant
from pumps.selectors import dose_get_in_force

from .forecasting import DoseChange, forecast_in_force, remaining_volume_on
from .models import Appointment, ClinicSettings, ClosedDay, RefillVisit


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


def _dose_changes_since(*, implant: Implant, after: dt.datetime) -> list[DoseChange]:
    rows = (
        DosePrescription.objects.valid()
        .filter(implant=implant, effective_at__gt=after)
        .order_by("effective_at", "id")
        .values_list("effective_at", "daily_dose_mcg")
    )
    return [DoseChange(on=timezone.localdate(at), daily_dose_mcg=dose) for at, dose in rows]


def implant_get_forecast(*, implant: Implant, clinic: ClinicSettings | None = None):
    """The forecast in force (last refill + dose changes since), or None before the first refill."""
    visit = refill_visit_get_latest(implant=implant)
    if visit is None:
        return None
    clinic = clinic or ClinicSettings.load()
    return forecast_in_force(
        refilled_on=timezone.localdate(visit.performed_at),
        volume_ml=visit.volume_added_ml,
        concentration_mcg_per_ml=visit.concentration_mcg_per_ml,
        daily_dose_mcg=visit.daily_dose_after_mcg,
        dose_changes=_dose_changes_since(implant=implant, after=visit.performed_at),
        alarm_threshold_ml=visit.alarm_threshold_ml,
        safety_margin_days=clinic.safety_margin_days,
        max_interval_days=max_interval_days_get(drug=visit.drug, implant=implant),
    )


def implant_get_expected_residual(*, implant: Implant, on: dt.date) -> Decimal | None:
    """What the forecast says is left on `on` (pre-fills the refill form), to 0.01 mL."""
    visit = refill_visit_get_latest(implant=implant)
    if visit is None or timezone.localdate(visit.performed_at) > on:
        return None
    remaining = remaining_volume_on(
        refilled_on=timezone.localdate(visit.performed_at),
        volume_ml=visit.volume_added_ml,
        concentration_mcg_per_ml=visit.concentration_mcg_per_ml,
        daily_dose_mcg=visit.daily_dose_after_mcg,
        dose_changes=_dose_changes_since(implant=implant, after=visit.performed_at),
        on=on,
    )
    return remaining.quantize(Decimal("0.01"))


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


def dose_get_current(*, implant: Implant):
    return dose_get_in_force(implant=implant)


__all__ = [
    "RefillWindow",
    "appointment_get_next",
    "appointment_list",
    "clinic_day_is_closed",
    "dose_get_current",
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
