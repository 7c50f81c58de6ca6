"""Reads of implants, doses and battery plans."""

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.db.models import BooleanField, Case, DateField, ExpressionWrapper, F, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce, NullIf

from core.db import AddDays, AddMonths
from patients.models import Patient

from .calculations import ReplacementPlan, battery_window, replacement_plan
from .models import DosePrescription, Implant

logger = logging.getLogger(__name__)


def implant_get_active(*, patient: Patient) -> Implant | None:
    return (
        Implant.objects.valid().filter(patient=patient, explanted_on__isnull=True).select_related("pump_model").first()
    )


def implant_list_active() -> QuerySet[Implant]:
    return Implant.objects.valid().filter(explanted_on__isnull=True, patient__status="active")


def dose_get_in_force(*, implant: Implant, at: dt.datetime) -> DosePrescription | None:
    """The latest valid prescription effective at `at` (pass now for "the dose in force")."""
    qs = DosePrescription.objects.valid().filter(implant=implant, effective_at__lte=at)
    return qs.order_by("-effective_at", "-id").first()


def dose_get_planned(*, implant: Implant, now: dt.datetime) -> DosePrescription | None:
    """The next prescription that takes effect after `now` (shown as planned, with its date)."""
    qs = DosePrescription.objects.valid().filter(implant=implant, effective_at__gt=now)
    return qs.order_by("effective_at", "id").first()


def implant_get_replacement_plan(*, implant: Implant) -> ReplacementPlan | None:
    """The battery plan from the model's settings [S1][S4]; None for pumps without a battery."""
    model = implant.pump_model
    if model.battery_hard_stop_years is None and implant.eri_reported_on is None:
        return None
    return replacement_plan(
        implanted_on=implant.implanted_on,
        service_life_years=model.battery_hard_stop_years or 100,
        plan_months_before=model.replacement_plan_months_before,
        eri_on=implant.eri_reported_on,
        eri_grace_days=model.eri_grace_days or 90,
    )


def implant_get_battery_window_opens_on(*, implant: Implant) -> dt.date | None:
    model = implant.pump_model
    if model.battery_earliest_end_years is None:
        return None
    return battery_window(
        implanted_on=implant.implanted_on,
        earliest_end_years=model.battery_earliest_end_years,
        hard_stop_years=model.battery_hard_stop_years or model.battery_earliest_end_years,
    ).window_opens_on


@dataclass(frozen=True, slots=True)
class BatteryDates:
    """The battery plan and window for display, or why they cannot be computed from the record."""

    plan: ReplacementPlan | None
    window_opens_on: dt.date | None
    problem: str = ""


def implant_get_battery_dates(*, implant: Implant) -> BatteryDates:
    """Both battery reads for a page: an impossible date in the record (an ERI of 9999-12-01 that
    bypassed validation) gives a problem to show, never an error that takes the page down."""
    try:
        return BatteryDates(
            plan=implant_get_replacement_plan(implant=implant),
            window_opens_on=implant_get_battery_window_opens_on(implant=implant),
        )
    except (ArithmeticError, ValueError, TypeError, OverflowError):
        logger.exception("battery dates of implant %s cannot be computed", implant.pk)
        return BatteryDates(
            plan=None,
            window_opens_on=None,
            problem="The battery dates cannot be computed from this pump's record: check its implant and ERI dates.",
        )


def implant_list_with_battery_dates() -> QuerySet[Any]:  # Implants with the annotations below
    """Active implants annotated with their battery dates, computed in the database.

    The SQL mirror of `implant_get_replacement_plan` and `implant_get_battery_window_opens_on`
    (pumps/calculations.py: `replacement_plan`, `battery_window`), so a page can filter, count and
    sort by them at any clinic size; a test holds the two equal on the edge dates.

    - `battery_plan_stops_on`, `battery_plan_by`: None when the pump has no battery plan (no hard
      stop in its model and no ERI reported);
    - `battery_window_opens_on`: None when the model has no earliest battery end;
    - `battery_computable`: False for a record the pure functions refuse (an ERI before the implant,
      a date near the calendar's end such as an ERI of 9999-12-01, a catalogue row whose hard stop
      comes before its earliest end): its dates are None and a page shows the record as a problem.
    """
    model = "pump_model__"
    last_safe = dt.date(9000, 1, 1)  # + a century of service life still fits in the calendar
    computable = (
        Q(implanted_on__lte=last_safe)
        & (Q(eri_reported_on__isnull=True) | Q(eri_reported_on__gte=F("implanted_on"), eri_reported_on__lte=last_safe))
        & ~Q(**{f"{model}battery_hard_stop_years": 0})
        & ~Q(**{f"{model}battery_earliest_end_years": 0})
        & ~Q(**{f"{model}battery_hard_stop_years__lt": F(f"{model}battery_earliest_end_years")})
    )
    has_plan = Q(**{f"{model}battery_hard_stop_years__isnull": False}) | Q(eri_reported_on__isnull=False)
    # service_life_years = hard stop or 100, eri_grace_days = grace or 90 (as the Python reads).
    life_months = Coalesce(F(f"{model}battery_hard_stop_years"), Value(100)) * 12
    hard_stop_on = AddMonths("implanted_on", life_months)
    grace = Coalesce(NullIf(F(f"{model}eri_grace_days"), Value(0)), Value(90))
    eri_stop = AddDays("eri_reported_on", grace)
    return (
        implant_list_active()
        .annotate(battery_computable=ExpressionWrapper(computable, output_field=BooleanField()))
        .annotate(
            battery_hard_stop_on=Case(When(computable & has_plan, then=hard_stop_on), output_field=DateField()),
            battery_eri_stop_on=Case(
                When(computable & Q(eri_reported_on__isnull=False), then=eri_stop), output_field=DateField()
            ),
        )
        .annotate(
            battery_plan_stops_on=Case(
                When(
                    Q(battery_eri_stop_on__isnull=False, battery_eri_stop_on__lt=F("battery_hard_stop_on")),
                    then=F("battery_eri_stop_on"),
                ),
                default=F("battery_hard_stop_on"),
                output_field=DateField(),
            ),
            battery_plan_months_before_stop=AddMonths(
                "battery_hard_stop_on", -1 * F(f"{model}replacement_plan_months_before")
            ),
            battery_window_opens_on=Case(
                When(
                    computable & Q(**{f"{model}battery_earliest_end_years__isnull": False}),
                    then=AddMonths("implanted_on", F(f"{model}battery_earliest_end_years") * 12),
                ),
                output_field=DateField(),
            ),
        )
        .annotate(
            battery_plan_by=Case(
                When(
                    battery_plan_months_before_stop__lt=F("battery_plan_stops_on"),
                    then=F("battery_plan_months_before_stop"),
                ),
                default=F("battery_plan_stops_on"),
                output_field=DateField(),
            )
        )
    )
