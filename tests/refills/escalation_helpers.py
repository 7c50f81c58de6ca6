"""Builders for the escalation tests: pumps with a stored forecast, visits, one scan at a frozen instant.

The forecast is written straight onto the implant (as the forecast services store it), so these
tests exercise the alert scan alone, whatever the services that compute forecasts are doing.
"""

import datetime as dt
from decimal import Decimal

import time_machine

from refills.alerts.scan import AlertScanResult, alerts_scan
from refills.messaging import SmsTransientError
from refills.models import Alert
from refills.sms_backends import BaseSmsBackend
from tests import factories
from tests.refills.reminder_helpers import local

__all__ = ["FailingSmsBackend", "local", "open_alerts", "pump", "scan", "visit"]


def pump(
    *,
    due_by: dt.date | None = dt.date(2025, 4, 1),
    alarm_on: dt.date | None = dt.date(2025, 4, 6),
    empty_on: dt.date | None = dt.date(2025, 4, 16),
    problem: str = "",
    implanted_on: dt.date = dt.date(2024, 4, 2),
    **patient_fields,
):
    """An active SynchroMed II of a new patient, with the forecast (or its absence) stored on it."""
    patient = factories.PatientFactory(**patient_fields)
    implant = factories.ImplantFactory(patient=patient, implanted_on=implanted_on)
    type(implant).objects.filter(pk=implant.pk).update(
        forecast_due_by=due_by, forecast_alarm_on=alarm_on, forecast_empty_on=empty_on, forecast_problem=problem
    )
    implant.refresh_from_db()
    return implant


def visit(*, implant, at: dt.datetime, **fields):
    """A valid refill visit of `implant` at `at`, as the refill service would have stored it."""
    values = {"expected_residual_ml": Decimal("2.50"), "actual_residual_ml": Decimal("2.40")}
    values["discrepancy_ml"] = fields.pop("discrepancy_ml", None)
    values.update(fields)
    if values["discrepancy_ml"] is None and values["expected_residual_ml"] is not None:
        values["discrepancy_ml"] = values["actual_residual_ml"] - values["expected_residual_ml"]
    return factories.RefillVisitFactory(implant=implant, performed_at=at, **values)


def scan(now: dt.datetime) -> AlertScanResult:
    """One alert scan with the clock frozen at `now`, so `raised_at` is `now` too."""
    with time_machine.travel(now, tick=False):
        return alerts_scan(now=now)


def open_alerts(**filters) -> list[tuple[str, dt.date, str]]:
    return sorted(Alert.objects.filter(resolved_at__isnull=True, **filters).values_list("kind", "key_date", "severity"))


class FailingSmsBackend(BaseSmsBackend):
    """The SMS provider times out on every attempt."""

    def send_messages(self, messages) -> int:
        raise SmsTransientError("provider timed out")
