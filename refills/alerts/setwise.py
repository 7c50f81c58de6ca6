"""The pump-by-pump alert rules as one statement over every pump (PostgreSQL).

REFILL_UNBOOKED, REFILL_URGENT, BOOKED_AFTER_DUE, BATTERY_WINDOW and REPLACEMENT_PLAN are the
rules whose rows grow with the clinic: one alert or more for every pump near its refill or its
battery's end. `rules.py` decides them one pump at a time in Python; here the same decisions, the
same messages (the day and month names come from `format_day`, so they follow the clinic's
language) and the same withdrawal-risk step are written in SQL, and one statement inserts the new
alerts, reopens those the scan had cleared, rewrites an open alert's message or pump, and resolves
the open ones whose condition no longer holds, with `alerts_resolve`'s reasons. A scan that finds
nothing changed is that one statement, writing nothing.

Rows SQL could not compute as Python does — an empty or implausible date, a catalogue setting the
pure functions refuse — stay with `rules.py` (`sql_leaves_q`), which isolates them into
RECORD_ATTENTION alerts (STYLE.md 20). tests/refills/test_alerts_sql.py holds the two paths row
for row on a clinic with every rule's case; SQLite runs `rules.py` alone.
"""

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import BooleanField, Exists, ExpressionWrapper, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from core.formatting import format_day
from pumps.models import PumpModel

from ..clinic_time import clinic_tz
from ..models import Alert, Appointment, ClinicSettings
from .raising import RESOLUTIONS
from .rules import (
    CLINICIAN_ALERT_KINDS,
    IMPLAUSIBLE_AFTER_YEARS,
    RISK_FLAG_WORDS,
    active_implants,
    battery_candidates_q,
    battery_models,
)

REFILL_KINDS = (Alert.Kind.REFILL_UNBOOKED, Alert.Kind.REFILL_URGENT, Alert.Kind.BOOKED_AFTER_DUE)
BATTERY_KINDS = (Alert.Kind.BATTERY_WINDOW, Alert.Kind.REPLACEMENT_PLAN)
# The kinds this statement raises and resolves, and those whose end it decides with the pump's
# (explanted, entered in error, the patient no longer in care): alerts_resolve leaves them alone.
SETWISE_KINDS = frozenset({*REFILL_KINDS, *BATTERY_KINDS, Alert.Kind.ERI})
_GONE_KINDS = (Alert.Kind.BATTERY_WINDOW, Alert.Kind.ERI, Alert.Kind.NO_SHOW)
_GONE_RESOLUTION = "Cleared: pump explanted or patient no longer in care."
_EARLIEST = dt.date(1900, 1, 1)


def setwise_available() -> bool:
    return connection.vendor == "postgresql"


def _plausible_range(today: dt.date) -> tuple[dt.date, dt.date]:
    """Dates SQL and Python compute alike: from 1900 to `RecordProblems`' implausible horizon."""
    return _EARLIEST, dt.date(min(today.year + IMPLAUSIBLE_AFTER_YEARS, dt.MAXYEAR), 1, 1)


def _models_sql_computes(models: dict[int, PumpModel]) -> dict[int, PumpModel]:
    """Models whose settings `battery_window` and `replacement_plan` accept (the others raise)."""
    good = {}
    for pk, m in models.items():
        earliest, hard = m.battery_earliest_end_years, m.battery_hard_stop_years
        grace = m.eri_grace_days if m.eri_grace_days is not None else 90
        window_ok = not earliest or (earliest >= 1 and (hard or earliest) >= earliest)
        plan_ok = not hard or (hard >= 1 and m.replacement_plan_months_before >= 0 and grace >= 0)
        if window_ok and plan_ok:
            good[pk] = m
    return good


@dataclass(frozen=True, slots=True)
class SetwiseScope:
    """Which rows the statement decides; `leaves` is the rest, for `rules.py`."""

    refill_q: Q
    refill_leaves: Q
    battery_q: Q
    battery_leaves: Q
    models: dict[int, PumpModel]
    # Every battery-powered model (`battery_models`), those above being the ones SQL computes.
    battery_models: dict[int, PumpModel]


def setwise_scope(*, today: dt.date) -> SetwiseScope:
    low, high = _plausible_range(today)
    refill_q = Q(
        forecast_due_by__gte=low, forecast_due_by__lt=high, forecast_alarm_on__gte=low, forecast_alarm_on__lt=high
    )
    refill_leaves = (
        Q(forecast_due_by__isnull=True)
        | Q(forecast_alarm_on__isnull=True)
        | Q(forecast_due_by__lt=low)
        | Q(forecast_due_by__gte=high)
        | Q(forecast_alarm_on__lt=low)
        | Q(forecast_alarm_on__gte=high)
    )
    all_models = battery_models()
    models = _models_sql_computes(all_models)
    # An ERI before the implant date, which `replacement_plan` refuses, is refused by a constraint too.
    plausible = Q(implanted_on__gte=low, implanted_on__lt=high) & (
        Q(eri_reported_on__isnull=True) | Q(eri_reported_on__gte=low, eri_reported_on__lt=high)
    )
    battery_q = Q(pump_model_id__in=list(models)) & plausible
    battery_leaves = ~Q(pump_model_id__in=list(models)) | ~plausible
    return SetwiseScope(
        refill_q=refill_q,
        refill_leaves=refill_leaves,
        battery_q=battery_q,
        battery_leaves=battery_leaves,
        models=models,
        battery_models=all_models,
    )


def setwise_leaves(*, scope: SetwiseScope, clinic: ClinicSettings, today: dt.date) -> tuple[QuerySet, ...]:
    """What `rules.py` has to look at besides the statement: the pumps whose refill dates SQL leaves
    to it, those near their battery's end that SQL leaves to it, and the ERIs with no alert yet.
    Nearly always empty: the scan asks once (`core.db.exists_each`) and skips the rules if so."""
    window_q, plan_q = battery_candidates_q(models=scope.battery_models, clinic=clinic, today=today)
    eri_alerted = Alert.objects.filter(
        kind=Alert.Kind.ERI, implant=OuterRef("pk"), key_date=OuterRef("eri_reported_on")
    )
    return (
        active_implants().filter(scope.refill_leaves),
        active_implants().filter(scope.battery_leaves).filter(window_q | plan_q),
        active_implants().filter(eri_reported_on__isnull=False).exclude(Exists(eri_alerted)),
    )


def _day_sql(expr: str, fmt: str) -> str:
    """`format_day(expr, fmt)` in SQL for the codes the alerts use (D j M Y), names from `n`."""
    pieces = {
        "D": f"n.days[extract(isodow from {expr})::int]",
        "j": f"extract(day from {expr})::int::text",
        "M": f"n.months[extract(month from {expr})::int]",
        "Y": f"lpad(extract(year from {expr})::int::text, 4, '0')",
    }
    return "(" + " || ' ' || ".join(pieces[code] for code in fmt.split(" ")) + ")"


def _count_sql(expr: str, noun: str) -> str:
    """`format_count(expr, noun)`."""
    return f"(({expr})::text || CASE WHEN ({expr}) = 1 THEN ' {noun}' ELSE ' {noun}s' END)"


D = _day_sql

# The f-string only places fixed column expressions (the date formats); every value is a parameter.
_STATEMENT = f"""
WITH n (months, days) AS (SELECT %s::text[], %s::text[]),
m (id, label, earliest, hard, months_before, grace) AS (
    SELECT * FROM unnest(%s::int[], %s::text[], %s::int[], %s::int[], %s::int[], %s::int[])
),
r (id, patient_id, due_by, alarm_on, booked_at) AS ({{refills}}),
rc AS (
    SELECT r.id, r.patient_id, r.due_by, r.alarm_on, (r.booked_at AT TIME ZONE %s)::date AS booked_day,
           r.due_by - %s::date AS d_due, r.alarm_on - %s::date AS d_alarm
    FROM r
),
b (id, patient_id, model_id, implanted_on, eri_on, in_window, in_plan, windowed, replacement_booked) AS ({{battery}}),
bc AS (
    SELECT b.*, m.label, m.hard,
           CASE WHEN m.earliest > 0 THEN (b.implanted_on + make_interval(months => 12 * m.earliest))::date END
               AS opens_on,
           (b.implanted_on + make_interval(months => 12 * COALESCE(NULLIF(m.hard, 0), m.earliest)))::date
               AS window_stop,
           CASE WHEN m.hard > 0 THEN (b.implanted_on + make_interval(months => 12 * m.hard))::date END AS hard_stop,
           m.months_before, m.grace
    FROM b JOIN m ON m.id = b.model_id
),
bp AS (
    SELECT bc.*, CASE WHEN eri_on IS NULL THEN hard_stop ELSE LEAST(hard_stop, eri_on + grace) END AS stops_on
    FROM bc WHERE hard_stop IS NOT NULL AND in_plan AND NOT replacement_booked
),
raw (kind, severity, patient_id, implant_id, key_date, message) AS (
    SELECT 'refill_unbooked', CASE WHEN d_due < 0 THEN 'urgent' ELSE 'warning' END, rc.patient_id, rc.id, rc.due_by,
           'Refill ' || CASE WHEN d_due < 0 THEN 'overdue since ' ELSE 'due by ' END || {D("rc.due_by", "D j M Y")}
           || ' (alarm ' || {D("rc.alarm_on", "j M")} || '); no refill booked.'
    FROM rc CROSS JOIN n WHERE rc.booked_day IS NULL AND rc.d_due <= %s
    UNION ALL
    SELECT 'refill_urgent', 'urgent', rc.patient_id, rc.id,
           CASE WHEN rc.booked_day <= rc.alarm_on THEN LEAST(%s::date, rc.alarm_on - %s) ELSE %s::date END,
           'Pump alarm date ' || {D("rc.alarm_on", "D j M Y")} || ' ('
           || CASE WHEN d_alarm > 0 THEN 'in ' || {_count_sql("d_alarm", "day")}
                   WHEN d_alarm = 0 THEN 'TODAY' ELSE {_count_sql("-d_alarm", "day")} || ' ago' END
           || '); '
           || CASE WHEN rc.booked_day <= rc.alarm_on
                   THEN 'refill booked for ' || {D("rc.booked_day", "D j M")} || ': make sure the patient comes.'
                   ELSE 'NOTHING BOOKED before it: book today.' END
    FROM rc CROSS JOIN n WHERE rc.d_alarm <= %s
    UNION ALL
    SELECT 'booked_after_due', CASE WHEN rc.booked_day >= rc.alarm_on THEN 'urgent' ELSE 'warning' END,
           rc.patient_id, rc.id, rc.due_by,
           'Refill booked for ' || {D("rc.booked_day", "D j M Y")} || ', after its due-by date '
           || {D("rc.due_by", "j M")} || ' (alarm ' || {D("rc.alarm_on", "j M")} || '): bring it forward.'
    FROM rc CROSS JOIN n WHERE rc.booked_day > rc.due_by
    UNION ALL
    SELECT 'battery_window', 'info', bc.patient_id, bc.id, bc.opens_on,
           bc.label || ' implanted ' || {D("bc.implanted_on", "j M Y")} || ': the battery may run out from '
           || {D("bc.opens_on", "j M Y")}
           || CASE WHEN bc.hard > 0 THEN '; it stops by ' || {D("bc.window_stop", "j M Y")} ELSE '' END
           || '. Check it at each refill.'
    FROM bc CROSS JOIN n WHERE bc.in_window AND NOT bc.windowed AND bc.opens_on <= %s::date
    UNION ALL
    SELECT 'replacement_plan', CASE WHEN p.stops_on <= %s::date THEN 'urgent' ELSE 'warning' END,
           p.patient_id, p.id, p.plan_by,
           'Plan the replacement of the ' || p.label || ' by ' || {D("p.plan_by", "j M Y")}
           || ': the pump stops by ' || {D("p.stops_on", "j M Y")} || '.'
    FROM (SELECT bp.*, LEAST((bp.hard_stop - make_interval(months => bp.months_before))::date, bp.stops_on)
                 AS plan_by FROM bp) p CROSS JOIN n
    WHERE p.plan_by <= %s::date
),
f AS (
    SELECT raw.kind,
           CASE WHEN raw.kind IN ('battery_window', 'replacement_plan') THEN %s ELSE %s END AS audience,
           CASE WHEN w.words <> '' THEN CASE raw.severity WHEN 'info' THEN 'warning' ELSE 'urgent' END
                ELSE raw.severity END AS severity,
           raw.patient_id, raw.implant_id, raw.key_date, raw.message, COALESCE(w.words, '') AS risk_flags
    FROM raw LEFT JOIN LATERAL (
        SELECT concat_ws('; ', CASE WHEN p.risk_high_sci THEN %s END,
                         CASE WHEN p.risk_communication_difficulty THEN %s END,
                         CASE WHEN p.risk_previous_withdrawal THEN %s END) AS words
        FROM patients_patient p WHERE p.id = raw.patient_id
    ) w ON true
),
x AS (
    SELECT f.*, a.id AS alert_id, a.implant_id AS had_implant, a.message AS had_message,
           a.resolved_at AS had_resolved, a.resolved_by_id AS had_resolver
    FROM f LEFT JOIN refills_alert a
        ON a.kind = f.kind AND a.patient_id = f.patient_id AND a.key_date = f.key_date AND a.severity = f.severity
),
ins AS (
    INSERT INTO refills_alert (kind, audience, severity, patient_id, implant_id, key_date, message, raised_at,
                               resolution, risk_flags, escalation_count)
    SELECT kind, audience, severity, patient_id, implant_id, key_date, message, %s, '', risk_flags, 0
    FROM x WHERE alert_id IS NULL
    ON CONFLICT DO NOTHING
    RETURNING 1
),
reopened AS (
    UPDATE refills_alert a
    SET resolved_at = NULL, resolution = '', implant_id = x.implant_id, message = x.message, emailed_at = NULL,
        sms_sent_at = NULL, acknowledged_at = NULL, acknowledged_by_id = NULL, escalated_at = NULL,
        escalation_count = 0, raised_at = %s
    FROM x WHERE a.id = x.alert_id AND x.had_resolved IS NOT NULL AND x.had_resolver IS NULL
        AND a.resolved_at IS NOT NULL AND a.resolved_by_id IS NULL
    RETURNING 1
),
rewritten AS (
    UPDATE refills_alert a SET implant_id = x.implant_id, message = x.message
    FROM x WHERE a.id = x.alert_id AND x.had_resolved IS NULL AND a.resolved_at IS NULL
        AND (x.had_implant IS DISTINCT FROM x.implant_id OR x.had_message <> x.message)
    RETURNING 1
),
k (kind, patient_id, key_date, severity) AS (SELECT * FROM unnest(%s::text[], %s::int[], %s::date[], %s::text[])),
wanted AS (SELECT DISTINCT kind, patient_id, key_date, severity FROM (SELECT kind, patient_id, key_date, severity FROM f
                                                                    UNION ALL SELECT * FROM k) w),
wanted_day AS (SELECT kind, patient_id, key_date, max(severity) AS severity FROM wanted GROUP BY 1, 2, 3),
urgent_today AS (SELECT DISTINCT patient_id FROM wanted WHERE kind = 'refill_urgent' AND key_date = %s::date),
stale AS (
    SELECT a.id,
           CASE WHEN o.severity IS NOT NULL THEN 'Now ' || o.severity || ': see the newer alert.'
                WHEN a.kind = 'refill_urgent' AND u.patient_id IS NOT NULL THEN %s
                ELSE t.reason
           END AS reason
    FROM refills_alert a
    LEFT JOIN wanted_day o ON o.kind = a.kind AND o.patient_id = a.patient_id AND o.key_date = a.key_date
    LEFT JOIN urgent_today u ON u.patient_id = a.patient_id
    LEFT JOIN unnest(%s::text[], %s::text[]) t (kind, reason) ON t.kind = a.kind
    -- NOT IN (no column is null): a hashed subplan, whatever the planner guesses of `wanted`'s size.
    WHERE a.resolved_at IS NULL AND a.kind = ANY(%s::text[])
        AND (a.kind, a.patient_id, a.key_date, a.severity) NOT IN (SELECT * FROM wanted)
),
resolved AS (
    UPDATE refills_alert a SET resolved_at = %s, resolution = stale.reason
    FROM stale WHERE a.id = stale.id AND a.resolved_at IS NULL
    RETURNING 1
),
-- From the few pumps gone and patients no longer in care (hashed subplans), not a join of every
-- open alert with every pump and patient.
gone AS (
    UPDATE refills_alert a SET resolved_at = %s, resolution = %s
    WHERE a.resolved_at IS NULL AND a.kind = ANY(%s::text[]) AND a.implant_id IS NOT NULL
        AND (a.implant_id IN (SELECT i.id FROM pumps_implant i WHERE i.explanted_on IS NOT NULL OR i.entered_in_error)
             OR a.patient_id IN (SELECT p.id FROM patients_patient p WHERE p.status <> 'active'))
    RETURNING 1
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM reopened),
       (SELECT count(*) FROM resolved) + (SELECT count(*) FROM gone)
"""  # noqa: S608


@dataclass(frozen=True, slots=True)
class SetwiseResult:
    raised: int
    resolved: int


def _names() -> tuple[list[str], list[str]]:
    """Month and weekday abbreviations as `format_day` prints them in the active language."""
    months = [format_day(dt.date(2000, month, 1), "M") for month in range(1, 13)]
    # 1 January 2024 was a Monday: isodow 1..7.
    days = [format_day(dt.date(2024, 1, 1) + dt.timedelta(days=i), "D") for i in range(7)]
    return months, days


def alerts_setwise(
    *, clinic: ClinicSettings, today: dt.date, now: dt.datetime, scope: SetwiseScope, also_wanted: list[Alert]
) -> SetwiseResult:
    """Raise, reopen, rewrite and resolve the set-wise kinds in one statement (PostgreSQL).

    `also_wanted` are the alerts of these kinds that `rules.py` raised for the rows left to it:
    they hold, so the statement does not resolve them.
    """
    horizon = today + dt.timedelta(days=max(clinic.unbooked_alert_days, clinic.urgent_alert_days))
    plan_horizon = today + dt.timedelta(days=clinic.replacement_alert_days)
    booked = Appointment.objects.booked_refills().filter(implant=OuterRef("pk"))
    late_booked = (
        Appointment.objects.booked_refills()
        .filter(implant__isnull=False, implant__forecast_due_by__gt=horizon)
        .annotate(day=TruncDate("starts_at", tzinfo=clinic_tz()))
        .filter(day__gt=F("implant__forecast_due_by"))
        .values("implant_id")
    )
    candidates = (
        active_implants()
        .filter(scope.refill_q)
        .annotate(booked_at=Subquery(booked.order_by("starts_at").values("starts_at")[:1]))
        .order_by()
        .values_list("pk", "patient_id", "forecast_due_by", "forecast_alarm_on", "booked_at")
    )
    # Those due within the horizon (indexed), and those booked after a due-by date beyond it.
    refills = candidates.filter(forecast_due_by__lte=horizon).union(
        candidates.filter(forecast_due_by__gt=horizon, pk__in=late_booked), all=True
    )
    window_q, plan_q = battery_candidates_q(models=scope.models, clinic=clinic, today=today)
    replacement_booked = Appointment.objects.valid().filter(
        patient=OuterRef("patient"), kind=Appointment.Kind.REPLACEMENT, status=Appointment.Status.BOOKED
    )
    battery = (
        active_implants()
        .filter(scope.battery_q)
        .filter(window_q | plan_q)
        .annotate(
            in_window=ExpressionWrapper(window_q, output_field=BooleanField()),
            in_plan=ExpressionWrapper(plan_q, output_field=BooleanField()),
            windowed=Exists(Alert.objects.filter(kind=Alert.Kind.BATTERY_WINDOW, implant=OuterRef("pk"))),
            replacement_booked=Exists(replacement_booked),
        )
        .order_by()
        .values_list(
            "pk",
            "patient_id",
            "pump_model_id",
            "implanted_on",
            "eri_reported_on",
            "in_window",
            "in_plan",
            "windowed",
            "replacement_booked",
        )
    )
    refills_sql, refills_params = refills.query.sql_with_params()
    battery_sql, battery_params = battery.query.sql_with_params()
    months, days = _names()
    models = list(scope.models.values())
    resolvable = [kind for kind in (*REFILL_KINDS, *BATTERY_KINDS) if kind in RESOLUTIONS]
    created = timezone.now()
    params = [
        months,
        days,
        [m.pk for m in models],
        [str(m) for m in models],
        [m.battery_earliest_end_years for m in models],
        [m.battery_hard_stop_years for m in models],
        [m.replacement_plan_months_before for m in models],
        [m.eri_grace_days if m.eri_grace_days is not None else 90 for m in models],
        *refills_params,
        settings.TIME_ZONE,
        today,
        today,
        *battery_params,
        clinic.unbooked_alert_days,
        today,
        clinic.urgent_alert_days,
        today,
        clinic.urgent_alert_days,
        today,
        today + dt.timedelta(days=30),
        plan_horizon,
        Alert.Audience.CLINICIANS,
        Alert.Audience.NURSES,
        *RISK_FLAG_WORDS,
        created,
        created,
        [str(a.kind) for a in also_wanted],
        [a.patient_id for a in also_wanted],
        [a.key_date for a in also_wanted],
        [str(a.severity) for a in also_wanted],
        today,
        f"Repeated on {format_day(today, 'j M Y')}.",
        [str(kind) for kind in RESOLUTIONS],
        list(RESOLUTIONS.values()),
        [str(kind) for kind in resolvable],
        now,
        now,
        _GONE_RESOLUTION,
        [str(kind) for kind in _GONE_KINDS],
    ]
    assert not (set(BATTERY_KINDS) - CLINICIAN_ALERT_KINDS)  # the audience CASE above
    sql = _STATEMENT.format(refills=refills_sql, battery=battery_sql)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        inserted, reopened, resolved = cursor.fetchone()
    return SetwiseResult(raised=int(inserted) + int(reopened), resolved=int(resolved))
