"""
The programme's quality figures (issue 14, item 1): reads only, each figure one aggregate query.

Every figure is computed in the database over the chosen period, so the dashboard costs the same
number of queries whatever the clinic's size (a test holds it): refills per month, timeliness
against the forecast in force before each refill, no-shows, reminders per channel, the time from
an "unbooked" alert to a booking, residual discrepancies clinic-wide and per patient, and the
pumps reaching their battery window or replacement date in the next twelve months.
"""

import datetime as dt
import statistics
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Avg, Count, DateField, F, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Abs, TruncDate, TruncMonth

from patients.models import Patient
from pumps.calculations import add_months
from pumps.selectors import implant_list_with_battery_dates

from .clinic_time import clinic_day_start, clinic_tz
from .models import Alert, Appointment, RefillVisit, Reminder

# Lists that name patients are capped (STYLE.md 21): the count says how many there are in all.
LIST_CAP = 50
# A patient is "to review" with this many flagged residual discrepancies in the period.
REVIEW_MIN_FLAGGED = 2

# Residual discrepancy bins (actual − expected, mL): (label, lower bound exclusive, upper inclusive).
DISCREPANCY_BINS: tuple[tuple[str, Decimal | None, Decimal | None], ...] = (
    ("≤ −2 mL", None, Decimal("-2")),
    ("−2 to −1", Decimal("-2"), Decimal("-1")),
    ("−1 to −0.5", Decimal("-1"), Decimal("-0.5")),
    ("−0.5 to +0.5", Decimal("-0.5"), Decimal("0.5")),
    ("+0.5 to +1", Decimal("0.5"), Decimal("1")),
    ("+1 to +2", Decimal("1"), Decimal("2")),
    ("> +2 mL", Decimal("2"), None),
)

TIMELINESS = (
    ("before_due", "On or before the due-by date"),
    ("due_to_alarm", "After due-by, by the alarm date"),
    ("alarm_to_empty", "After the alarm date, by the empty date"),
    ("after_empty", "After the empty date"),
    ("no_forecast", "First refill of the pump (no earlier refill to compare)"),
)


@dataclass(frozen=True, slots=True)
class MonthCount:
    month: dt.date
    refills: int


@dataclass(frozen=True, slots=True)
class Share:
    key: str
    label: str
    count: int
    percent: Decimal | None


@dataclass(frozen=True, slots=True)
class ChannelReminders:
    channel: str
    label: str
    sent: int
    failed: int


@dataclass(frozen=True, slots=True)
class UnbookedToBooking:
    alerts: int
    booked: int
    median_days: Decimal | None


@dataclass(frozen=True, slots=True)
class ReviewRow:
    patient_id: int
    mrn: str
    name: str
    refills: int
    flagged: int
    mean_discrepancy_ml: Decimal | None
    last_flagged_on: dt.date


@dataclass(frozen=True, slots=True)
class BatteryRow:
    patient_id: int
    mrn: str
    name: str
    pump: str
    serial: str
    window_opens_on: dt.date | None
    replace_by: dt.date | None


@dataclass(frozen=True)
class QualityDashboard:
    start: dt.date
    end: dt.date
    today: dt.date
    months: list[MonthCount]
    timeliness: list[Share]
    completed: int
    no_shows: int
    no_show_percent: Decimal | None
    reminders: list[ChannelReminders]
    unbooked: UnbookedToBooking
    discrepancy_bins: list[tuple[str, int]]
    review: list[ReviewRow]
    review_total: int
    battery_months: list[MonthCount]
    battery: list[BatteryRow]
    battery_total: int
    refills_total: int


def percent_of(part: int, whole: int) -> Decimal | None:
    if whole == 0:
        return None
    return (Decimal(100) * part / whole).quantize(Decimal("0.1"))


def _month_starts(start: dt.date, end: dt.date) -> list[dt.date]:
    months, day = [], start.replace(day=1)
    while day <= end:
        months.append(day)
        day = add_months(day=day, months=1)
    return months


def _as_date(value) -> dt.date:
    # TruncMonth answers a datetime on some backends: the clinic-local calendar day is what counts.
    if isinstance(value, dt.datetime):
        return timezone_local_date(value)
    return value


def timezone_local_date(value: dt.datetime) -> dt.date:
    return value.astimezone(clinic_tz()).date() if value.tzinfo else value.date()


def _visits_in(*, start: dt.date, end: dt.date) -> QuerySet[RefillVisit]:
    return RefillVisit.objects.valid().filter(
        performed_at__gte=clinic_day_start(start), performed_at__lt=clinic_day_start(end + dt.timedelta(days=1))
    )


def _previous_visit(column: str) -> Subquery:
    """The forecast in force before a refill: `column` of the same pump's previous valid refill."""
    earlier = (
        RefillVisit.objects.valid()
        .filter(implant=OuterRef("implant"), performed_at__lt=OuterRef("performed_at"))
        .order_by("-performed_at", "-id")
        .values(column)[:1]
    )
    return Subquery(earlier, output_field=DateField())


def quality_refills_per_month(*, start: dt.date, end: dt.date) -> list[MonthCount]:
    rows = (
        _visits_in(start=start, end=end)
        .annotate(month=TruncMonth("performed_at", tzinfo=clinic_tz(), output_field=DateField()))
        .values("month")
        .annotate(n=Count("id"))
        .order_by("month")
    )
    counts = {_as_date(row["month"]): row["n"] for row in rows}
    return [MonthCount(month=m, refills=counts.get(m, 0)) for m in _month_starts(start, end)]


def quality_timeliness(*, start: dt.date, end: dt.date) -> list[Share]:
    """Each refill against the forecast its pump's previous refill left in force.

    On or before that due-by date; after it but by the alarm date; after the alarm but by the
    empty date; after the empty date. A pump's first refill has no earlier refill row (the
    theatre fill's forecast is not kept), so it is counted apart.
    """
    day = "performed_on"
    figures = (
        _visits_in(start=start, end=end)
        .annotate(
            performed_on=TruncDate("performed_at", tzinfo=clinic_tz()),
            prev_due_by=_previous_visit("due_by"),
            prev_alarm_on=_previous_visit("alarm_on"),
            prev_empty_on=_previous_visit("empty_on"),
        )
        .aggregate(
            before_due=Count("id", filter=Q(**{f"{day}__lte": F("prev_due_by")})),
            due_to_alarm=Count("id", filter=Q(**{f"{day}__gt": F("prev_due_by"), f"{day}__lte": F("prev_alarm_on")})),
            alarm_to_empty=Count(
                "id", filter=Q(**{f"{day}__gt": F("prev_alarm_on"), f"{day}__lte": F("prev_empty_on")})
            ),
            after_empty=Count("id", filter=Q(**{f"{day}__gt": F("prev_empty_on")})),
            no_forecast=Count("id", filter=Q(prev_due_by__isnull=True)),
        )
    )
    compared = sum(figures[key] for key, _ in TIMELINESS if key != "no_forecast")
    return [
        Share(
            key=key,
            label=label,
            count=figures[key],
            percent=None if key == "no_forecast" else percent_of(figures[key], compared),
        )
        for key, label in TIMELINESS
    ]


def quality_no_shows(*, start: dt.date, end: dt.date) -> tuple[int, int]:
    """(completed, no-shows) of the appointments that started in the period."""
    figures = (
        Appointment.objects.valid()
        .filter(starts_at__gte=clinic_day_start(start), starts_at__lt=clinic_day_start(end + dt.timedelta(days=1)))
        .aggregate(
            completed=Count("id", filter=Q(status=Appointment.Status.COMPLETED)),
            no_shows=Count("id", filter=Q(status=Appointment.Status.NO_SHOW)),
        )
    )
    return figures["completed"], figures["no_shows"]


def quality_reminders_per_channel(*, start: dt.date, end: dt.date) -> list[ChannelReminders]:
    """Reminders due to go out in the period that were sent, and that failed for good, per channel."""
    rows = (
        Reminder.objects.filter(
            send_at__gte=clinic_day_start(start), send_at__lt=clinic_day_start(end + dt.timedelta(days=1))
        )
        .values("channel")
        .annotate(
            sent=Count("id", filter=Q(status=Reminder.Status.SENT)),
            failed=Count("id", filter=Q(status=Reminder.Status.FAILED)),
        )
        .order_by("channel")
    )
    found = {row["channel"]: row for row in rows}
    return [
        ChannelReminders(
            channel=channel,
            label=label,
            sent=found.get(channel, {}).get("sent", 0),
            failed=found.get(channel, {}).get("failed", 0),
        )
        for channel, label in Reminder.Channel.choices
    ]


def quality_unbooked_to_booking(*, start: dt.date, end: dt.date) -> UnbookedToBooking:
    """The median time from an "unbooked refill" alert to the next refill booked for that pump.

    One query: each alert raised in the period carries, as a subquery, when the first refill
    appointment for its pump was booked (created) at or after it. The median is taken in Python
    over that one column: one value per unbooked alert raised in the period (about one per pump
    and refill cycle), bounded by the period, not by the clinic's history.
    """
    first_booking = (
        Appointment.objects.filter(
            implant=OuterRef("implant"), kind=Appointment.Kind.REFILL, created_at__gte=OuterRef("raised_at")
        )
        .order_by("created_at")
        .values("created_at")[:1]
    )
    rows = list(
        Alert.objects.filter(
            kind=Alert.Kind.REFILL_UNBOOKED,
            raised_at__gte=clinic_day_start(start),
            raised_at__lt=clinic_day_start(end + dt.timedelta(days=1)),
        )
        .annotate(booked_at=Subquery(first_booking))
        .values_list("raised_at", "booked_at")
    )
    waits = [(booked - raised).total_seconds() / 86400 for raised, booked in rows if booked is not None]
    median = Decimal(str(statistics.median(waits))).quantize(Decimal("0.1")) if waits else None
    return UnbookedToBooking(alerts=len(rows), booked=len(waits), median_days=median)


def quality_discrepancy_bins(*, start: dt.date, end: dt.date) -> list[tuple[str, int]]:
    aggregates = {}
    for i, (_, low, high) in enumerate(DISCREPANCY_BINS):
        condition = Q()
        if low is not None:
            condition &= Q(discrepancy_ml__gt=low)
        if high is not None:
            condition &= Q(discrepancy_ml__lte=high)
        aggregates[f"bin{i}"] = Count("id", filter=condition)
    figures = _visits_in(start=start, end=end).filter(discrepancy_ml__isnull=False).aggregate(**aggregates)
    return [(label, figures[f"bin{i}"]) for i, (label, _, _) in enumerate(DISCREPANCY_BINS)]


def _review_rows(*, start: dt.date, end: dt.date, visible: QuerySet[Patient]):
    return (
        _visits_in(start=start, end=end)
        .filter(implant__patient__in=visible)
        .values("implant__patient_id", "implant__patient__mrn", "implant__patient__given_name")
        .annotate(
            family=F("implant__patient__family_name"),
            refills=Count("id"),
            flagged=Count("id", filter=Q(discrepancy_flagged=True)),
            mean_abs=Avg(Abs("discrepancy_ml"), filter=Q(discrepancy_flagged=True)),
            last_flagged=Max("performed_at", filter=Q(discrepancy_flagged=True)),
        )
        .filter(flagged__gte=REVIEW_MIN_FLAGGED)
        .order_by("-flagged", "-last_flagged", "implant__patient_id")
    )


def quality_review_list(
    *, start: dt.date, end: dt.date, visible: QuerySet[Patient], limit: int | None = LIST_CAP
) -> tuple[list[ReviewRow], int]:
    """Patients with repeated flagged residual discrepancies in the period (who to review), and how many."""
    rows = _review_rows(start=start, end=end, visible=visible)
    total = rows.count()
    picked = rows if limit is None else rows[:limit]
    return [
        ReviewRow(
            patient_id=row["implant__patient_id"],
            mrn=row["implant__patient__mrn"],
            name=f"{row['implant__patient__given_name']} {row['family']}",
            refills=row["refills"],
            flagged=row["flagged"],
            mean_discrepancy_ml=(
                Decimal(str(row["mean_abs"])).quantize(Decimal("0.01")) if row["mean_abs"] is not None else None
            ),
            last_flagged_on=timezone_local_date(row["last_flagged"]),
        )
        for row in picked
    ], total


def _battery_due(*, today: dt.date):
    horizon = add_months(day=today, months=12)
    return implant_list_with_battery_dates().filter(
        Q(battery_window_opens_on__gte=today, battery_window_opens_on__lte=horizon)
        | Q(battery_plan_by__gte=today, battery_plan_by__lte=horizon)
    )


def quality_battery_list(*, today: dt.date, limit: int | None = LIST_CAP) -> tuple[list[BatteryRow], int]:
    """Pumps whose battery window opens, or whose replacement is due, in the next twelve months."""
    qs = _battery_due(today=today).select_related("patient", "pump_model")
    total = qs.count()
    ordered = qs.order_by("battery_plan_by", "battery_window_opens_on", "id")
    picked = ordered if limit is None else ordered[:limit]
    return [
        BatteryRow(
            patient_id=implant.patient_id,
            mrn=implant.patient.mrn,
            name=implant.patient.full_name,
            pump=str(implant.pump_model.name),
            serial=implant.serial_number,
            window_opens_on=implant.battery_window_opens_on,
            replace_by=implant.battery_plan_by,
        )
        for implant in picked
    ], total


def quality_battery_per_month(*, today: dt.date) -> list[MonthCount]:
    """Pumps counted in the month their first event (window opening or replace-by) in the next year falls."""
    horizon = add_months(day=today, months=12)
    # One query; two dates per pump due in the coming year (a bounded set: the pumps that need
    # surgery planning), grouped here by the month of the first of them that falls in the year.
    rows = _battery_due(today=today).values_list("battery_window_opens_on", "battery_plan_by")
    counts: dict[dt.date, int] = {}
    for opens, plan_by in rows:
        candidates = [d for d in (opens, plan_by) if d is not None and today <= d <= horizon]
        first = min(candidates).replace(day=1)
        counts[first] = counts.get(first, 0) + 1
    return [MonthCount(month=m, refills=counts.get(m, 0)) for m in _month_starts(today, horizon)]


def quality_dashboard_get(
    *, start: dt.date, end: dt.date, today: dt.date, visible: QuerySet[Patient]
) -> QualityDashboard:
    months = quality_refills_per_month(start=start, end=end)
    completed, no_shows = quality_no_shows(start=start, end=end)
    review, review_total = quality_review_list(start=start, end=end, visible=visible)
    battery, battery_total = quality_battery_list(today=today)
    return QualityDashboard(
        start=start,
        end=end,
        today=today,
        months=months,
        refills_total=sum(m.refills for m in months),
        timeliness=quality_timeliness(start=start, end=end),
        completed=completed,
        no_shows=no_shows,
        no_show_percent=percent_of(no_shows, completed + no_shows),
        reminders=quality_reminders_per_channel(start=start, end=end),
        unbooked=quality_unbooked_to_booking(start=start, end=end),
        discrepancy_bins=quality_discrepancy_bins(start=start, end=end),
        review=review,
        review_total=review_total,
        battery_months=quality_battery_per_month(today=today),
        battery=battery,
        battery_total=battery_total,
    )
