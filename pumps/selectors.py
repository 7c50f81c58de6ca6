"""Reads of implants, doses and battery plans."""

import datetime as dt
import logging
from dataclasses import dataclass

from django.db.models import QuerySet

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
