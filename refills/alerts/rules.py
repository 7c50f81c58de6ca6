"""The alert kinds' rules: which alerts hold for the clinic today, computed set-based.

Each function returns unsaved `Alert` rows; `alerts.scan` raises them through `alerts.raising`.
A row that cannot be computed goes to `RecordProblems` and the rest carry on (STYLE.md 20).
"""

import datetime as dt
import logging
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from django.db.models import (
    Case,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    When,
    Window,
)
from django.db.models.functions import RowNumber, TruncDate
from django.utils import timezone

from core.formatting import format_count, format_day
from patients.models import Patient
from pumps.calculations import add_months, battery_window, replacement_plan
from pumps.models import Implant, PumpModel

from ..clinic_time import clinic_tz
from ..models import Alert, Appointment, ClinicSettings, RefillVisit, ReservoirEmptying
from ..urgency import refill_urgency_classify

logger = logging.getLogger(__name__)


# What only a clinician can decide: the device, the drug's delivery, the patient's next surgery.
CLINICIAN_ALERT_KINDS = frozenset(
    {
        Alert.Kind.BATTERY_WINDOW,
        Alert.Kind.REPLACEMENT_PLAN,
        Alert.Kind.ERI,
        Alert.Kind.END_OF_SERVICE,
        Alert.Kind.DISCREPANCY,
        Alert.Kind.REFILL_AFTER_EMPTY,
        Alert.Kind.POCKET_FILL,
        Alert.Kind.EXPLANT_NO_REPLACEMENT,
    }
)
# Raised from one refill visit each, closed by the clinician who reviews it (or when the visit
# turns out to be entered in error): the scan never decides that the event stopped mattering.
VISIT_ALERT_KINDS = (
    Alert.Kind.END_OF_SERVICE,
    Alert.Kind.DISCREPANCY,
    Alert.Kind.REFILL_AFTER_EMPTY,
    Alert.Kind.POCKET_FILL,
)
# Only recent visits can still raise one: older events were alerted when they happened.
VISIT_ALERT_WINDOW_DAYS = 90
DISCREPANCY_TREND_VISITS = 3
# A date this far ahead was never true: it names the field a RECORD_ATTENTION alert points to.
IMPLAUSIBLE_AFTER_YEARS = 100


RISK_FLAG_WORDS = ("SCI at T6 or above", "communication difficulty", "previous withdrawal")


RISK_FLAGS_Q = Q(risk_high_sci=True) | Q(risk_communication_difficulty=True) | Q(risk_previous_withdrawal=True)
RISK_FLAG_FIELDS = ("risk_high_sci", "risk_communication_difficulty", "risk_previous_withdrawal")


def risk_flags_in_words(flags: Iterable[bool]) -> str:
    return "; ".join(word for word, flag in zip(RISK_FLAG_WORDS, flags, strict=True) if flag)


def risk_flags_get() -> dict[int, str]:
    """Every patient with a withdrawal-risk flag, with the flags in words: one query."""
    return {
        pk: risk_flags_in_words(flags)
        for pk, *flags in Patient.objects.filter(RISK_FLAGS_Q).values_list("pk", *RISK_FLAG_FIELDS)
    }


def alert_build(kind: str, *, patient_id: int, key_date: dt.date, message: str, **fields) -> Alert:
    audience = Alert.Audience.CLINICIANS if kind in CLINICIAN_ALERT_KINDS else Alert.Audience.NURSES
    return Alert(kind=kind, audience=audience, patient_id=patient_id, key_date=key_date, message=message, **fields)


def active_implants() -> QuerySet[Implant]:
    return Implant.objects.valid().filter(
        explanted_on__isnull=True, patient__status=Patient.Status.ACTIVE, patient__entered_in_error=False
    )


class RecordProblems:
    """Rows the scan could not compute (STYLE.md 20): logged, alerted on, and the scan goes on.

    One RECORD_ATTENTION alert per patient, naming each record and field, so that one impossible
    date (planted before validation existed, or straight into the database) never hides the rest
    of the clinic's alerts.
    """

    CATCH = (ArithmeticError, ValueError, TypeError, AttributeError, KeyError)

    def __init__(self, *, today: dt.date) -> None:
        self.today = today
        self.by_patient: dict[int, list[str]] = {}

    def add(self, *, patient_id: int, record: str, computing: str, exc: BaseException, **dates) -> None:
        far = dt.date(min(self.today.year + IMPLAUSIBLE_AFTER_YEARS, dt.MAXYEAR), 1, 1)
        suspects = (
            {name: value for name, value in dates.items() if value is not None and value >= far}
            or {name: value for name, value in dates.items() if value is None}
            or dates
        )
        fields = ", ".join(f"{name} = {value if value is not None else 'empty'}" for name, value in suspects.items())
        logger.warning("alert scan: %s of %s cannot be computed (%s): %r", computing, record, fields, exc)
        text = f"{record}: the {computing} cannot be computed from {fields}"
        if text not in self.by_patient.setdefault(patient_id, []):
            self.by_patient[patient_id].append(text)

    def alerts(self) -> list[Alert]:
        """Keyed on the day first raised and carried on while open: one open alert per patient,
        back the next day if resolved by hand while the record is still wrong."""
        if not self.by_patient:
            return []
        open_keys: dict[int, dt.date] = {}
        for patient_pk, key_date in (
            Alert.objects.filter(kind=Alert.Kind.RECORD_ATTENTION, resolved_at__isnull=True)
            .order_by("-key_date")
            .values_list("patient_id", "key_date")
        ):
            open_keys[patient_pk] = key_date
        return [
            alert_build(
                Alert.Kind.RECORD_ATTENTION,
                patient_id=patient_pk,
                key_date=open_keys.get(patient_pk, self.today),
                severity=Alert.Severity.URGENT,
                message="; ".join(texts) + ". Check and correct the record: its alerts cannot be worked out.",
            )
            for patient_pk, texts in self.by_patient.items()
        ]


def refill_alerts(
    *, clinic: ClinicSettings, today: dt.date, problems: RecordProblems, implants: Q | None = None
) -> list[Alert]:
    """REFILL_UNBOOKED, REFILL_URGENT, BOOKED_AFTER_DUE and NO_FORECAST for every active pump: two queries.

    REFILL_UNBOOKED is a warning until its due-by date passes, then an urgent alert of its own
    (severity is in the key): a nurse who resolved the warning never silences the urgent one.
    REFILL_URGENT is raised from `urgent_alert_days` before the alarm date until the pump is
    refilled: a new one every day while nothing is booked before the alarm. A refill booked
    inside that last stretch does not silence it, because one missed visit there would leave
    less than the urgent margin (docs/domain.md "Why a missed refill is an emergency"), but it is
    raised once (keyed on the day the stretch began), not daily, and says what is booked.

    `implants` narrows the pumps looked at (the set-wise scan leaves these rules' ordinary rows
    to the database and passes the rest here).
    """
    tz = clinic_tz()
    booked = Appointment.objects.booked_refills().filter(implant=OuterRef("pk"))
    emptied = ReservoirEmptying.objects.valid().filter(implant=OuterRef("pk")).order_by("-emptied_at", "-id")
    open_no_forecast = Alert.objects.filter(
        kind=Alert.Kind.NO_FORECAST, patient=OuterRef("patient"), resolved_at__isnull=True
    ).order_by("key_date")
    fields = ("pk", "patient_id", "forecast_due_by", "forecast_alarm_on", "booked_at", "serial_number")
    no_forecast_fields = ("forecast_problem", "emptied_at", "open_key")
    candidates = (
        active_implants()
        .filter(implants or Q())
        .annotate(
            booked_at=Subquery(booked.order_by("starts_at").values("starts_at")[:1]),
            # Only a pump with no forecast needs these: the subqueries run for those rows alone.
            emptied_at=Case(When(forecast_due_by__isnull=True, then=Subquery(emptied.values("emptied_at")[:1]))),
            open_key=Case(When(forecast_due_by__isnull=True, then=Subquery(open_no_forecast.values("key_date")[:1]))),
        )
    )
    # due_by <= alarm_on always, so the horizon on due_by (indexed) covers both dates.
    horizon = today + dt.timedelta(days=max(clinic.unbooked_alert_days, clinic.urgent_alert_days))
    near = candidates.filter(Q(forecast_due_by__lte=horizon) | Q(forecast_due_by__isnull=True)).values_list(
        *fields, *no_forecast_fields
    )
    # Pumps booked after their due-by date, whenever that is: found from the booked refills.
    late_booked = (
        Appointment.objects.booked_refills()
        .filter(implant__isnull=False)
        .annotate(day=TruncDate("starts_at", tzinfo=tz))
        .filter(day__gt=F("implant__forecast_due_by"), implant__forecast_due_by__gt=horizon)
        .values("implant_id")
    )
    far = candidates.filter(pk__in=late_booked).values_list(*fields, *no_forecast_fields)
    alerts: list[Alert] = []
    for implant_pk, patient_pk, due_by, alarm_on, booked_at, serial, problem, emptied_at, open_key in [*near, *far]:
        if due_by is None:
            alerts.append(
                _no_forecast_alert(
                    today=today,
                    implant_pk=implant_pk,
                    patient_pk=patient_pk,
                    serial=serial,
                    problem=problem,
                    emptied_at=emptied_at,
                    open_key=open_key,
                )
            )
            continue
        try:
            alerts.extend(
                _refill_alerts_of(
                    clinic=clinic,
                    today=today,
                    implant_pk=implant_pk,
                    patient_pk=patient_pk,
                    due_by=due_by,
                    alarm_on=alarm_on,
                    booked_day=timezone.localtime(booked_at, tz).date() if booked_at else None,
                )
            )
        except RecordProblems.CATCH as exc:
            problems.add(
                patient_id=patient_pk,
                record=f"Pump {serial}",
                computing="refill alert",
                exc=exc,
                forecast_due_by=due_by,
                forecast_alarm_on=alarm_on,
            )
    return alerts


def _refill_alerts_of(
    *,
    clinic: ClinicSettings,
    today: dt.date,
    implant_pk: int,
    patient_pk: int,
    due_by: dt.date,
    alarm_on: dt.date,
    booked_day: dt.date | None,
) -> list[Alert]:
    if alarm_on is None:
        # A due-by date with no alarm date was never computed by the forecast: isolate the row.
        raise TypeError("forecast_alarm_on is empty")
    urgency = refill_urgency_classify(
        due_by=due_by,
        alarm_on=alarm_on,
        today=today,
        unbooked_alert_days=clinic.unbooked_alert_days,
        urgent_alert_days=clinic.urgent_alert_days,
    )
    alerts = []
    if booked_day is None and urgency.due_soon:
        overdue = urgency.overdue
        alerts.append(
            alert_build(
                Alert.Kind.REFILL_UNBOOKED,
                patient_id=patient_pk,
                key_date=due_by,
                implant_id=implant_pk,
                severity=Alert.Severity.URGENT if overdue else Alert.Severity.WARNING,
                message=f"Refill {'overdue since' if overdue else 'due by'} {format_day(due_by, 'D j M Y')} "
                f"(alarm {format_day(alarm_on, 'j M')}); no refill booked.",
            )
        )
    if urgency.alarm_near:
        days = urgency.days_to_alarm
        when = (
            f"in {format_count(days, 'day')}"
            if days > 0
            else ("TODAY" if days == 0 else f"{format_count(-days, 'day')} ago")
        )
        if booked_day and booked_day <= alarm_on:
            booking = f"refill booked for {format_day(booked_day, 'D j M')}: make sure the patient comes."
            key_date = min(today, alarm_on - dt.timedelta(days=clinic.urgent_alert_days))
        else:
            booking = "NOTHING BOOKED before it: book today."
            key_date = today
        alerts.append(
            alert_build(
                Alert.Kind.REFILL_URGENT,
                patient_id=patient_pk,
                key_date=key_date,
                implant_id=implant_pk,
                severity=Alert.Severity.URGENT,
                message=f"Pump alarm date {format_day(alarm_on, 'D j M Y')} ({when}); {booking}",
            )
        )
    if booked_day is not None and booked_day > due_by:
        alerts.append(
            alert_build(
                Alert.Kind.BOOKED_AFTER_DUE,
                patient_id=patient_pk,
                key_date=due_by,
                implant_id=implant_pk,
                severity=Alert.Severity.URGENT if booked_day >= alarm_on else Alert.Severity.WARNING,
                message=f"Refill booked for {format_day(booked_day, 'D j M Y')}, after its due-by date "
                f"{format_day(due_by, 'j M')} (alarm {format_day(alarm_on, 'j M')}): bring it forward.",
            )
        )
    return alerts


_NO_FORECAST_WHY = {
    "fill_not_recorded": "Fill not recorded: record the theatre fill or a refill.",
    "cannot_compute": "The forecast cannot be computed: check the record.",
}


def _no_forecast_alert(
    *,
    today: dt.date,
    implant_pk: int,
    patient_pk: int,
    serial: str,
    problem: str,
    emptied_at: dt.datetime | None,
    open_key: dt.date | None,
) -> Alert:
    """NO_FORECAST: an active pump with no refill date is urgent, at the top of the list.

    Nothing else can alert on it (every refill alert needs a due-by date), so it is the only net
    under a pump whose fill was never recorded or whose reservoir was emptied. Keyed on the day it
    was first raised and carried on while open, so it stays one open alert (not one a day);
    resolved by hand while the pump still has no forecast, it comes back the next day.
    """
    if problem == "reservoir_emptied":
        on = f" on {format_day(timezone.localtime(emptied_at, clinic_tz()), 'D j M Y')}" if emptied_at else ""
        why = f"Reservoir emptied{on}: record the refill."
    else:
        # A blank problem with no forecast is a record the forecast services have not seen yet.
        why = _NO_FORECAST_WHY.get(problem, _NO_FORECAST_WHY["cannot_compute"])
    return alert_build(
        Alert.Kind.NO_FORECAST,
        patient_id=patient_pk,
        key_date=open_key or today,
        implant_id=implant_pk,
        severity=Alert.Severity.URGENT,
        message=f"Pump {serial} has no refill date, so nothing can warn before it runs dry. {why}",
    )


def battery_models() -> dict[int, PumpModel]:
    """The catalogue's battery-powered models (a battery window or a hard stop), by id."""
    return {
        m.pk: m
        for m in PumpModel.objects.filter(
            Q(battery_earliest_end_years__isnull=False) | Q(battery_hard_stop_years__isnull=False)
        )
    }


def battery_candidates_q(*, models: dict[int, PumpModel], clinic: ClinicSettings, today: dt.date) -> tuple[Q, Q]:
    """The implants that may be in their battery window, and those whose replacement may be due.

    Narrowed by implant date only, with a few days' slack for month-end clamping: the dates
    themselves come from pumps/calculations.py.
    """
    slack = dt.timedelta(days=4)
    window_q = Q(pk__in=[])
    plan_q = Q(pk__in=[])
    plan_horizon = today + dt.timedelta(days=clinic.replacement_alert_days)
    for model in models.values():
        if model.battery_earliest_end_years:
            cutoff = add_months(day=today, months=-12 * model.battery_earliest_end_years) + slack
            window_q |= Q(pump_model_id=model.pk, implanted_on__lte=cutoff)
        if model.battery_hard_stop_years:
            months = 12 * model.battery_hard_stop_years - model.replacement_plan_months_before
            cutoff = add_months(day=plan_horizon, months=-months) + slack
            plan_q |= Q(pump_model_id=model.pk) & (Q(implanted_on__lte=cutoff) | Q(eri_reported_on__isnull=False))
    return window_q, plan_q


def device_alerts(
    *,
    clinic: ClinicSettings,
    today: dt.date,
    problems: RecordProblems,
    implants: Q | None = None,
    models: dict[int, PumpModel] | None = None,
) -> list[Alert]:
    """BATTERY_WINDOW, REPLACEMENT_PLAN and ERI for the clinicians: three queries.

    Dates come from pumps/calculations.py; the SQL only narrows the candidates by implant date
    (a few days' slack for month-end clamping), so its cost follows the pumps near their end.
    A row whose dates cannot be computed goes to `problems`, never stops the others.
    `implants` narrows the pumps looked at for the battery window and the replacement plan (the
    set-wise scan leaves the ordinary rows to the database); the ERI rule looks at every pump.
    `models` are `battery_models()`, when the caller has read them already.
    """
    models = battery_models() if models is None else models
    alerts: list[Alert] = []
    window_q, plan_q = battery_candidates_q(models=models, clinic=clinic, today=today)
    window_q &= implants or Q()
    plan_q &= implants or Q()
    plan_horizon = today + dt.timedelta(days=clinic.replacement_alert_days)

    already_windowed = Alert.objects.filter(kind=Alert.Kind.BATTERY_WINDOW, implant=OuterRef("pk"))
    columns = ("pk", "patient_id", "pump_model_id", "implanted_on", "eri_reported_on", "serial_number")

    def problem(implant: Implant, computing: str, exc: BaseException) -> None:
        problems.add(
            patient_id=implant.patient_id,
            record=f"Pump {implant.serial_number}",
            computing=computing,
            exc=exc,
            implanted_on=implant.implanted_on,
            eri_reported_on=implant.eri_reported_on,
        )

    for implant in active_implants().filter(window_q).exclude(Exists(already_windowed)).only(*columns):
        model = models[implant.pump_model_id]
        try:
            window = battery_window(
                implanted_on=implant.implanted_on,
                earliest_end_years=model.battery_earliest_end_years,
                hard_stop_years=model.battery_hard_stop_years or model.battery_earliest_end_years,
            )
        except RecordProblems.CATCH as exc:
            problem(implant, "battery window", exc)
            continue
        if window.window_opens_on <= today:
            stop = f"; it stops by {format_day(window.hard_stop_on, 'j M Y')}" if model.battery_hard_stop_years else ""
            alerts.append(
                alert_build(
                    Alert.Kind.BATTERY_WINDOW,
                    patient_id=implant.patient_id,
                    key_date=window.window_opens_on,
                    implant_id=implant.pk,
                    severity=Alert.Severity.INFO,
                    message=f"{model} implanted {format_day(implant.implanted_on, 'j M Y')}: the battery may run out "
                    f"from {format_day(window.window_opens_on, 'j M Y')}{stop}. Check it at each refill.",
                )
            )

    replacement_booked = Appointment.objects.valid().filter(
        patient=OuterRef("patient"), kind=Appointment.Kind.REPLACEMENT, status=Appointment.Status.BOOKED
    )
    for implant in active_implants().filter(plan_q).exclude(Exists(replacement_booked)).only(*columns):
        model = models[implant.pump_model_id]
        try:
            plan = replacement_plan(
                implanted_on=implant.implanted_on,
                service_life_years=model.battery_hard_stop_years,
                plan_months_before=model.replacement_plan_months_before,
                eri_on=implant.eri_reported_on,
                eri_grace_days=model.eri_grace_days if model.eri_grace_days is not None else 90,
            )
            urgent = plan.stops_on <= today + dt.timedelta(days=30)
        except RecordProblems.CATCH as exc:
            problem(implant, "replacement plan", exc)
            continue
        if plan.plan_by <= plan_horizon:
            alerts.append(
                alert_build(
                    Alert.Kind.REPLACEMENT_PLAN,
                    patient_id=implant.patient_id,
                    key_date=plan.plan_by,
                    implant_id=implant.pk,
                    severity=Alert.Severity.URGENT if urgent else Alert.Severity.WARNING,
                    message=f"Plan the replacement of the {model} by {format_day(plan.plan_by, 'j M Y')}: "
                    f"the pump stops by {format_day(plan.stops_on, 'j M Y')}.",
                )
            )

    eri_alerted = Alert.objects.filter(
        kind=Alert.Kind.ERI, implant=OuterRef("pk"), key_date=OuterRef("eri_reported_on")
    )
    for implant in (
        active_implants()
        .filter(eri_reported_on__isnull=False)
        .exclude(Exists(eri_alerted))
        .select_related("pump_model")
        .only(*columns, "pump_model")
    ):
        model = implant.pump_model
        grace = model.eri_grace_days if model.eri_grace_days is not None else 90
        try:
            stops_on = implant.eri_reported_on + dt.timedelta(days=grace)
            if model.battery_hard_stop_years:
                stops_on = replacement_plan(
                    implanted_on=implant.implanted_on,
                    service_life_years=model.battery_hard_stop_years,
                    plan_months_before=model.replacement_plan_months_before,
                    eri_on=implant.eri_reported_on,
                    eri_grace_days=grace,
                ).stops_on
        except RecordProblems.CATCH as exc:
            problem(implant, "stop date after the ERI", exc)
            continue
        alerts.append(
            alert_build(
                Alert.Kind.ERI,
                patient_id=implant.patient_id,
                key_date=implant.eri_reported_on,
                implant_id=implant.pk,
                severity=Alert.Severity.URGENT,
                message=f"ERI reported on {format_day(implant.eri_reported_on, 'j M Y')}: the {model} stops by "
                f"{format_day(stops_on, 'j M Y')}. Book the replacement.",
            )
        )
    return alerts


def visit_alerts(*, now: dt.datetime, problems: RecordProblems) -> list[Alert]:
    """END_OF_SERVICE, DISCREPANCY, REFILL_AFTER_EMPTY, POCKET_FILL from recent visits: two queries.

    Each is raised once per visit (keyed on its local date; the end of service on the date the
    pump logged it) and stays open until a clinician has reviewed it.
    """
    tz = clinic_tz()
    tolerance = F("implant__pump_model__pocket_fill_tolerance_ml")
    pocket_q = (
        Q(post_fill_check=RefillVisit.PostFillCheck.FAILED)
        | Q(post_fill_discrepancy_ml__gt=tolerance)
        | Q(post_fill_discrepancy_ml__lt=-tolerance)
    )
    visits = list(
        RefillVisit.objects.valid()
        .filter(
            performed_at__gte=now - dt.timedelta(days=VISIT_ALERT_WINDOW_DAYS),
            implant__entered_in_error=False,
            implant__patient__status=Patient.Status.ACTIVE,
            implant__patient__entered_in_error=False,
        )
        .filter(
            Q(battery_status=RefillVisit.BatteryStatus.EOS)
            | Q(discrepancy_flagged=True)
            | Q(after_empty_date=True)
            | pocket_q
        )
        .select_related("implant__pump_model")
        .order_by("performed_at", "id")
    )
    trends = _discrepancy_trends(implant_ids={v.implant_id for v in visits if v.discrepancy_flagged})
    alerts: list[Alert] = []
    for visit in visits:
        try:
            alerts.extend(_visit_alerts_of(visit=visit, tz=tz, trend=trends.get(visit.implant_id, [])))
        except RecordProblems.CATCH as exc:
            problems.add(
                patient_id=visit.implant.patient_id,
                record=f"Refill visit #{visit.pk} of pump {visit.pump_serial}",
                computing="visit alert",
                exc=exc,
                battery_event_on=visit.battery_event_on,
            )
    return alerts


def _discrepancy_trends(*, implant_ids: set[int]) -> dict[int, list[tuple[dt.datetime, object]]]:
    """The latest valid visits of each implant (newest first), for the trend a clinician reviews [S27]."""
    if not implant_ids:
        return {}
    rank = Window(RowNumber(), partition_by=[F("implant_id")], order_by=[F("performed_at").desc(), F("id").desc()])
    trends: dict[int, list[tuple[dt.datetime, object]]] = {}
    for implant_pk, performed_at, discrepancy in (
        RefillVisit.objects.valid()
        .filter(implant_id__in=implant_ids)
        .annotate(rank=rank)
        # Enough to reach back past every flagged visit of the alert window.
        .filter(rank__lte=DISCREPANCY_TREND_VISITS + 6)
        .order_by("implant_id", "-performed_at", "-id")
        .values_list("implant_id", "performed_at", "discrepancy_ml")
    ):
        trends.setdefault(implant_pk, []).append((performed_at, discrepancy))
    return trends


def _visit_alerts_of(*, visit: RefillVisit, tz: ZoneInfo, trend: list[tuple[dt.datetime, object]]) -> list[Alert]:
    implant = visit.implant
    on = timezone.localtime(visit.performed_at, tz).date()
    common = {"patient_id": implant.patient_id, "implant_id": implant.pk, "visit_id": visit.pk}
    alerts = []
    if visit.battery_status == RefillVisit.BatteryStatus.EOS:
        logged = visit.battery_event_on or on
        alerts.append(
            alert_build(
                Alert.Kind.END_OF_SERVICE,
                key_date=logged,
                severity=Alert.Severity.URGENT,
                message=f"End of service logged by pump {implant.serial_number} on {format_day(logged, 'D j M Y')} "
                f"(read at the refill of {format_day(on, 'j M Y')}): the pump stops infusing, withdrawal risk. "
                "Replace it now and cover with oral baclofen.",
                **common,
            )
        )
    if visit.discrepancy_flagged:
        expected, actual = visit.expected_residual_ml, visit.actual_residual_ml
        if expected is not None and actual > expected:
            meaning = "under-delivery (more drug left than forecast): withdrawal risk — check catheter and pump"
        elif expected is not None and actual < expected:
            meaning = "over-delivery (less drug left than forecast): overdose risk — check dose and pump"
        else:
            meaning = "the residual disagrees with the forecast"
        upto = [(at, d) for at, d in trend if at <= visit.performed_at][:DISCREPANCY_TREND_VISITS]
        shown = ", ".join(
            f"{format_day(timezone.localtime(at, tz), 'j M Y')} {'n/a' if d is None else f'{d:+} mL'}" for at, d in upto
        )
        alerts.append(
            alert_build(
                Alert.Kind.DISCREPANCY,
                key_date=on,
                severity=Alert.Severity.WARNING,
                message=f"Residual at the refill of {format_day(on, 'j M Y')}: expected "
                f"{'n/a' if expected is None else f'{expected} mL'}, aspirated {actual} mL — {meaning}. "
                f"Trend (last {len(upto)} visits, actual − expected): {shown}. A clinician reviews.",
                **common,
            )
        )
    if visit.after_empty_date:
        alerts.append(
            alert_build(
                Alert.Kind.REFILL_AFTER_EMPTY,
                key_date=on,
                severity=Alert.Severity.URGENT,
                message=f"Refilled on {format_day(on, 'j M Y')}, after the reservoir's empty date: "
                "the patient may already have been in withdrawal. "
                "Check for fever, itching, rising spasticity, fast heart rate.",
                **common,
            )
        )
    tolerance = implant.pump_model.pocket_fill_tolerance_ml
    gap = visit.post_fill_discrepancy_ml
    failed = visit.post_fill_check == RefillVisit.PostFillCheck.FAILED
    if failed or (gap is not None and abs(gap) > tolerance):
        why = "the post-fill check failed" if failed else f"the post-fill gap of {gap} mL exceeds {tolerance} mL"
        alerts.append(
            alert_build(
                Alert.Kind.POCKET_FILL,
                key_date=on,
                severity=Alert.Severity.URGENT,
                message=f"At the refill of {format_day(on, 'j M Y')} {why}: possible pocket fill, overdose risk. "
                "Watch for drowsiness and slowed breathing; a clinician reviews now.",
                **common,
            )
        )
    return alerts


def patient_alerts() -> list[Alert]:
    """EXPLANT_NO_REPLACEMENT and PATIENT_STATUS: one query over the few patients they can concern.

    - An active patient whose last pump came out, with no pump and no replacement booked.
    - A transferred or deceased patient who still has a pump, bookings or alerts here: keyed on
      the day the status changed (from the patient's history), so once a nurse has resolved it,
      saying what was done, it comes back only if the status changes again.

    A first, plain query finds those few (a pump explanted and none in place; a status no longer
    active); the query with the per-patient subqueries runs for them alone, when there are any.
    The withdrawal-risk flags are read by `alerts_raise`, when there is an alert to raise.
    """
    valid_implants = Implant.objects.valid()
    explanted_only = Q(
        status=Patient.Status.ACTIVE,
        pk__in=valid_implants.filter(explanted_on__isnull=False).values("patient_id"),
    ) & ~Q(pk__in=valid_implants.filter(explanted_on__isnull=True).values("patient_id"))
    gone = [Patient.Status.TRANSFERRED, Patient.Status.DECEASED]
    concerned = list(
        Patient.objects.valid().filter(explanted_only | Q(status__in=gone)).order_by().values_list("pk", flat=True)
    )
    if not concerned:
        return []
    tz = clinic_tz()
    implants = Implant.objects.valid().filter(patient=OuterRef("pk"))
    latest = implants.order_by("-implanted_on", "-id")
    history = Patient.history.model.objects
    changed_since = history.filter(id=OuterRef("id"), history_date__gt=OuterRef("history_date")).exclude(
        status=OuterRef("status")
    )
    # The first history row of the current run of this status.
    run_start = (
        history.filter(id=OuterRef("pk"), status=OuterRef("status"))
        .exclude(Exists(changed_since))
        .order_by("history_date")
        .values("history_date")[:1]
    )
    appointments = Appointment.objects.valid().filter(patient=OuterRef("pk"), status=Appointment.Status.BOOKED)
    alerts_open = Alert.objects.filter(patient=OuterRef("pk"), resolved_at__isnull=True)
    explanted_q = Q(status=Patient.Status.ACTIVE, has_explanted=True, has_implant=False, replacement_booked=False) & ~Q(
        last_explanted_on=None
    )
    status_q = Q(status__in=gone, status_alert_open=False) & (
        Q(has_implant=True) | Q(has_booking=True) | Q(has_alert=True)
    )
    rows = (
        Patient.objects.filter(pk__in=concerned)
        .annotate(
            has_implant=Exists(implants.filter(explanted_on__isnull=True)),
            has_explanted=Exists(implants.filter(explanted_on__isnull=False)),
            replacement_booked=Exists(appointments.filter(kind=Appointment.Kind.REPLACEMENT)),
            last_implant=Subquery(latest.values("pk")[:1]),
            last_explanted_on=Subquery(latest.values("explanted_on")[:1]),
            has_booking=Exists(appointments),
            has_alert=Exists(alerts_open.exclude(kind=Alert.Kind.PATIENT_STATUS)),
            status_alert_open=Exists(alerts_open.filter(kind=Alert.Kind.PATIENT_STATUS)),
            changed_at=Subquery(run_start),
        )
        .filter(explanted_q | status_q)
        .order_by()
        .values_list(
            "pk",
            "status",
            "has_implant",
            "has_booking",
            "has_alert",
            "last_implant",
            "last_explanted_on",
            "changed_at",
            "created_at",
        )
    )
    alerts: list[Alert] = []
    for (
        patient_pk,
        status,
        has_implant,
        has_booking,
        has_alert,
        last_implant,
        last_explanted_on,
        changed_at,
        created_at,
    ) in rows:
        if status == Patient.Status.ACTIVE:
            # explanted_q held: the last pump came out and nothing replaced it
            alerts.append(
                alert_build(
                    Alert.Kind.EXPLANT_NO_REPLACEMENT,
                    patient_id=patient_pk,
                    key_date=last_explanted_on,
                    implant_id=last_implant,
                    severity=Alert.Severity.WARNING,
                    message=f"Pump explanted on {format_day(last_explanted_on, 'j M Y')} and no replacement "
                    "is booked: book it, or resolve with the plan (e.g. ITB stopped, oral baclofen cover).",
                )
            )
            continue
        on = timezone.localtime(changed_at or created_at, tz).date()
        left = [
            what
            for what, present in (
                ("a pump not explanted", has_implant),
                ("booked appointments", has_booking),
                ("open alerts", has_alert),
            )
            if present
        ]
        if status == Patient.Status.TRANSFERRED:
            ask = "confirm the handover to the receiving clinic (who refills the pump, from when)"
        else:
            ask = "close the record (cancel the bookings, record what happened to the pump)"
        alerts.append(
            alert_build(
                Alert.Kind.PATIENT_STATUS,
                patient_id=patient_pk,
                key_date=on,
                severity=Alert.Severity.WARNING,
                message=f"Recorded as {status} on {format_day(on, 'j M Y')} with {', '.join(left)} here: {ask}, "
                "then resolve this alert saying what was done.",
            )
        )
    return alerts
