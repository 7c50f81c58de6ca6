"""
Benchmark (not a test): the reminder scan and the dispatcher on 100,000 implants in PostgreSQL,
next to raw SQL selecting the same rows. Prints the times, their ratio and the query counts.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/itbclinic_bench python benchmarks/reminder_scan.py
    (options: --implants N [N ...] (default 10000 100000), --reseed, --repeat N)

The database named by DATABASE_URL is created if missing, migrated, and seeded once with
bulk_create (patients, implants with their forecast in force, booked refills for about half).
Each timed run happens in a transaction that is rolled back, so runs are comparable.
"""

import argparse
import datetime as dt
import os
import random
import secrets
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "itbclinic.settings")
# Production settings (DEBUG off) want a key of their own: a throwaway one for this process.
os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
# The alert digests are rendered and handed to a backend that drops them (no console flood).
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.dummy.EmailBackend")


def ensure_database(url: str) -> None:
    import psycopg2

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    conn = psycopg2.connect(
        dbname="postgres",
        user=parts.username,
        password=parts.password,
        host=parts.hostname,
        port=parts.port,
    )
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')
    conn.close()


def seed(n: int, today: dt.date) -> None:
    from django.db import connection, transaction
    from django.utils import timezone

    from itbclinic.accounts.models import User
    from patients.models import Patient
    from pumps.models import Implant, PumpModel
    from refills.models import Appointment

    rng = random.Random(42)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE refills_reminder, refills_alert, refills_appointment, pumps_implant, patients_patient "
            "RESTART IDENTITY CASCADE"
        )
    nurse, _ = User.objects.get_or_create(username="bench-nurse")
    models = list(PumpModel.objects.filter(name__in=["SynchroMed II", "Prometra II"]))
    tz = timezone.get_current_timezone()
    batch = 5000
    started = time.perf_counter()
    with transaction.atomic():
        Patient.objects.bulk_create(
            (
                Patient(
                    mrn=f"B{i:07d}",
                    given_name="Bench",
                    family_name=f"Patient{i}",
                    date_of_birth=dt.date(1970, 1, 1),
                    spasticity_origin="spinal",
                    diagnosis="ms",
                    email=f"b{i}@example.org",
                    phone="+447700900123",
                    reminder_consent=i % 20 != 0,
                    reminder_channel="sms" if i % 4 == 0 else "email",
                )
                for i in range(n)
            ),
            batch_size=batch,
        )
        patient_ids = list(Patient.objects.order_by("id").values_list("id", flat=True))
        implants = []
        for i, patient_id in enumerate(patient_ids):
            model = models[i % len(models)]
            due_by = today + dt.timedelta(days=rng.randrange(-10, 180))
            implants.append(
                Implant(
                    patient_id=patient_id,
                    pump_model=model,
                    manufacturer=model.manufacturer,
                    serial_number=f"BENCH{i:07d}",
                    implanted_on=today - dt.timedelta(days=rng.randrange(30, 2600)),
                    surgeon="Bench",
                    hospital="Bench",
                    catheter_tip_level="T10",
                    recorded_by=nurse,
                    forecast_due_by=due_by,
                    forecast_alarm_on=due_by + dt.timedelta(days=5),
                    forecast_empty_on=due_by + dt.timedelta(days=15),
                )
            )
        Implant.objects.bulk_create(implants, batch_size=batch)
        appointments = []
        for implant in Implant.objects.filter(forecast_due_by__gt=today + dt.timedelta(days=1)).values(
            "id", "patient_id", "forecast_due_by"
        ):
            if rng.random() < 0.55:
                day = max(
                    today + dt.timedelta(days=1), implant["forecast_due_by"] - dt.timedelta(days=rng.randrange(0, 14))
                )
                appointments.append(
                    Appointment(
                        patient_id=implant["patient_id"],
                        implant_id=implant["id"],
                        kind="refill",
                        starts_at=dt.datetime.combine(day, dt.time(9 + rng.randrange(0, 7)), tzinfo=tz),
                        place="Bench room",
                        booked_by=nurse,
                    )
                )
        Appointment.objects.bulk_create(appointments, batch_size=batch)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"seeded {n} patients and implants, {len(appointments)} booked refills in {time.perf_counter() - started:.1f} s"
    )


def timed(fn, *, repeat: int, rollback: bool = True) -> tuple[float, int, object]:
    """Median seconds and the query count of fn(), each run in a rolled-back transaction."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    times, counts, result = [], [], None
    for _ in range(repeat):
        with transaction.atomic():
            with CaptureQueriesContext(connection) as queries:
                start = time.perf_counter()
                result = fn()
                times.append(time.perf_counter() - start)
            counts.append(len(queries.captured_queries))
            if rollback:
                transaction.set_rollback(True)
    return statistics.median(times), max(counts), result


RAW_MISSING_REMINDERS = """
SELECT a.id, a.patient_id, a.starts_at, p.reminder_channel
FROM refills_appointment a JOIN patients_patient p ON p.id = a.patient_id
WHERE a.status = 'booked' AND NOT a.entered_in_error AND a.starts_at > %(now)s
  AND p.status = 'active' AND NOT p.entered_in_error AND p.reminder_consent
  AND ((p.reminder_channel = 'email' AND p.email <> '') OR (p.reminder_channel = 'sms' AND p.phone <> ''))
  AND (NOT EXISTS (SELECT 1 FROM refills_reminder r WHERE r.appointment_id = a.id
                   AND r.appointment_starts_at = a.starts_at AND r.channel = p.reminder_channel AND r.offset_days = 14)
    OR NOT EXISTS (SELECT 1 FROM refills_reminder r WHERE r.appointment_id = a.id
                   AND r.appointment_starts_at = a.starts_at AND r.channel = p.reminder_channel AND r.offset_days = 2))
"""
# Pending rows that no longer announce anything true, and cancelled ones to bring back: what the
# scan's two UPDATEs look for before they write.
RAW_OBSOLETE_REMINDERS = """
SELECT r.id FROM refills_reminder r
JOIN refills_appointment a ON a.id = r.appointment_id JOIN patients_patient p ON p.id = r.patient_id
WHERE r.status = 'pending' AND (a.status <> 'booked' OR a.entered_in_error OR r.appointment_starts_at <> a.starts_at
   OR p.status <> 'active' OR p.entered_in_error OR NOT p.reminder_consent OR r.channel <> p.reminder_channel
   OR (p.reminder_channel = 'email' AND p.email = '') OR (p.reminder_channel = 'sms' AND p.phone = '')
   OR NOT r.offset_days = ANY(%(offsets)s::integer[]))
UNION ALL
SELECT r.id FROM refills_reminder r
JOIN refills_appointment a ON a.id = r.appointment_id JOIN patients_patient p ON p.id = r.patient_id
WHERE r.status = 'cancelled' AND r.reason_code = 'obsolete' AND r.send_at > %(now)s AND a.status = 'booked'
  AND NOT a.entered_in_error AND r.appointment_starts_at = a.starts_at AND r.channel = p.reminder_channel
  AND r.offset_days = ANY(%(offsets)s::integer[]) AND p.status = 'active' AND NOT p.entered_in_error
  AND p.reminder_consent
  AND ((p.reminder_channel = 'email' AND p.email <> '') OR (p.reminder_channel = 'sms' AND p.phone <> ''))
"""
RAW_REMINDER_STEADY = f"{RAW_MISSING_REMINDERS} UNION ALL SELECT id, NULL, NULL, NULL FROM ({RAW_OBSOLETE_REMINDERS}) o"
# The alerts every pump's refill and battery call for, written by hand: the candidates, the three
# refill rules, the battery window and the replacement plan with their messages (to_char), and the
# withdrawal-risk step. The steady state compares them with the alerts there; the first run inserts them.
RAW_ALERTS_WANTED = """
WITH c AS (
    SELECT i.id, i.patient_id, i.forecast_due_by AS due_by, i.forecast_alarm_on AS alarm_on,
           ((SELECT MIN(a.starts_at) FROM refills_appointment a WHERE a.implant_id = i.id AND a.kind = 'refill'
             AND a.status = 'booked' AND NOT a.entered_in_error) AT TIME ZONE %(tz)s)::date AS booked_day
    FROM pumps_implant i JOIN patients_patient p ON p.id = i.patient_id
    WHERE NOT i.entered_in_error AND i.explanted_on IS NULL AND p.status = 'active' AND NOT p.entered_in_error
      AND i.forecast_due_by <= %(horizon)s
    UNION ALL
    SELECT i.id, i.patient_id, i.forecast_due_by, i.forecast_alarm_on, (a.starts_at AT TIME ZONE %(tz)s)::date
    FROM refills_appointment a JOIN pumps_implant i ON i.id = a.implant_id
    JOIN patients_patient p ON p.id = i.patient_id
    WHERE a.kind = 'refill' AND a.status = 'booked' AND NOT a.entered_in_error AND i.forecast_due_by > %(horizon)s
      AND (a.starts_at AT TIME ZONE %(tz)s)::date > i.forecast_due_by
      AND NOT i.entered_in_error AND i.explanted_on IS NULL AND p.status = 'active' AND NOT p.entered_in_error
),
b AS (
    SELECT i.id, i.patient_id, i.implanted_on, i.eri_reported_on AS eri_on,
           m.manufacturer || ' ' || m.name || ' ' || trim_scale(m.reservoir_ml)::text || ' mL' AS label,
           m.battery_earliest_end_years AS earliest, m.battery_hard_stop_years AS hard,
           (i.implanted_on + make_interval(years => m.battery_hard_stop_years))::date AS hard_stop,
           m.replacement_plan_months_before AS months_before, COALESCE(m.eri_grace_days, 90) AS grace
    FROM pumps_implant i JOIN patients_patient p ON p.id = i.patient_id JOIN pumps_pumpmodel m ON m.id = i.pump_model_id
    WHERE NOT i.entered_in_error AND i.explanted_on IS NULL AND p.status = 'active' AND NOT p.entered_in_error
      AND (m.battery_earliest_end_years IS NOT NULL OR m.battery_hard_stop_years IS NOT NULL)
),
plan AS (
    SELECT b.*, LEAST((hard_stop - make_interval(months => months_before))::date, stops_on) AS plan_by
    FROM (SELECT b.*, LEAST(hard_stop, eri_on + grace) AS stops_on FROM b WHERE hard IS NOT NULL) b
    WHERE NOT EXISTS (SELECT 1 FROM refills_appointment a WHERE a.patient_id = b.patient_id AND a.kind = 'replacement'
                      AND a.status = 'booked' AND NOT a.entered_in_error)
),
d (kind, severity, patient_id, implant_id, key_date, message) AS (
    SELECT 'refill_unbooked', CASE WHEN due_by < %(today)s THEN 'urgent' ELSE 'warning' END, patient_id, id, due_by,
           'Refill ' || CASE WHEN due_by < %(today)s THEN 'overdue since ' ELSE 'due by ' END
           || to_char(due_by, 'Dy FMDD Mon YYYY') || ' (alarm ' || to_char(alarm_on, 'FMDD Mon')
           || '); no refill booked.'
    FROM c WHERE booked_day IS NULL AND due_by - %(today)s <= %(unbooked)s
    UNION ALL
    SELECT 'refill_urgent', 'urgent', patient_id, id,
           CASE WHEN booked_day <= alarm_on THEN LEAST(%(today)s, alarm_on - %(urgent)s) ELSE %(today)s END,
           'Pump alarm date ' || to_char(alarm_on, 'Dy FMDD Mon YYYY') || ' ('
           || CASE WHEN alarm_on > %(today)s THEN 'in ' || (alarm_on - %(today)s)
                        || CASE WHEN alarm_on - %(today)s = 1 THEN ' day' ELSE ' days' END
                   WHEN alarm_on = %(today)s THEN 'TODAY'
                   ELSE (%(today)s - alarm_on) || CASE WHEN %(today)s - alarm_on = 1 THEN ' day' ELSE ' days' END
                        || ' ago' END || '); '
           || CASE WHEN booked_day <= alarm_on
                   THEN 'refill booked for ' || to_char(booked_day, 'Dy FMDD Mon') || ': make sure the patient comes.'
                   ELSE 'NOTHING BOOKED before it: book today.' END
    FROM c WHERE alarm_on - %(today)s <= %(urgent)s
    UNION ALL
    SELECT 'booked_after_due', CASE WHEN booked_day >= alarm_on THEN 'urgent' ELSE 'warning' END,
           patient_id, id, due_by,
           'Refill booked for ' || to_char(booked_day, 'Dy FMDD Mon YYYY') || ', after its due-by date '
           || to_char(due_by, 'FMDD Mon') || ' (alarm ' || to_char(alarm_on, 'FMDD Mon') || '): bring it forward.'
    FROM c WHERE booked_day > due_by
    UNION ALL
    SELECT 'battery_window', 'info', patient_id, id, (implanted_on + make_interval(years => earliest))::date,
           label || ' implanted ' || to_char(implanted_on, 'FMDD Mon YYYY') || ': the battery may run out from '
           || to_char(implanted_on + make_interval(years => earliest), 'FMDD Mon YYYY')
           || CASE WHEN hard > 0 THEN '; it stops by ' || to_char(hard_stop, 'FMDD Mon YYYY') ELSE '' END
           || '. Check it at each refill.'
    FROM b WHERE earliest > 0 AND (implanted_on + make_interval(years => earliest))::date <= %(today)s
      AND NOT EXISTS (SELECT 1 FROM refills_alert x WHERE x.kind = 'battery_window' AND x.implant_id = b.id)
    UNION ALL
    SELECT 'replacement_plan', CASE WHEN stops_on <= %(today)s + 30 THEN 'urgent' ELSE 'warning' END, patient_id, id,
           plan_by, 'Plan the replacement of the ' || label || ' by ' || to_char(plan_by, 'FMDD Mon YYYY')
           || ': the pump stops by ' || to_char(stops_on, 'FMDD Mon YYYY') || '.'
    FROM plan WHERE plan_by <= %(plan_horizon)s
),
f AS (
    SELECT d.kind, CASE WHEN d.kind IN ('battery_window', 'replacement_plan') THEN 'clinicians' ELSE 'nurses' END
               AS audience,
           CASE WHEN p.risk_high_sci OR p.risk_communication_difficulty OR p.risk_previous_withdrawal
                THEN CASE d.severity WHEN 'info' THEN 'warning' ELSE 'urgent' END ELSE d.severity END AS severity,
           d.patient_id, d.implant_id, d.key_date, d.message,
           concat_ws('; ', CASE WHEN p.risk_high_sci THEN 'SCI at T6 or above' END,
                     CASE WHEN p.risk_communication_difficulty THEN 'communication difficulty' END,
                     CASE WHEN p.risk_previous_withdrawal THEN 'previous withdrawal' END) AS risk_flags
    FROM d JOIN patients_patient p ON p.id = d.patient_id
)
"""
# Steady state: what differs (new, to reopen, a message to rewrite; open ones no longer wanted;
# battery and ERI alerts of pumps that are gone) — nothing, in a clinic where nothing changed.
RAW_ALERTS_STEADY = f"""{RAW_ALERTS_WANTED}
SELECT f.kind, f.patient_id, f.key_date FROM f LEFT JOIN refills_alert a
    ON a.kind = f.kind AND a.patient_id = f.patient_id AND a.key_date = f.key_date AND a.severity = f.severity
WHERE a.id IS NULL OR (a.resolved_at IS NULL AND (a.message <> f.message OR a.implant_id <> f.implant_id))
   OR (a.resolved_at IS NOT NULL AND a.resolved_by_id IS NULL)
UNION ALL
SELECT a.kind, a.patient_id, a.key_date FROM refills_alert a
WHERE a.resolved_at IS NULL AND a.kind IN ('refill_unbooked', 'refill_urgent', 'booked_after_due', 'replacement_plan')
  AND (a.kind, a.patient_id, a.key_date, a.severity) NOT IN (SELECT kind, patient_id, key_date, severity FROM f)
UNION ALL
SELECT a.kind, a.patient_id, a.key_date FROM refills_alert a JOIN pumps_implant i ON i.id = a.implant_id
JOIN patients_patient p ON p.id = a.patient_id
WHERE a.resolved_at IS NULL AND a.kind IN ('battery_window', 'eri', 'no_show')
  AND (i.explanted_on IS NOT NULL OR i.entered_in_error OR p.status <> 'active')
"""
# The rest of the scan's steady state, by hand: everything else `alerts_scan` looks at on each run
# (refills/alerts/scan.py) — refills long past with no visit (no-shows to mark), pumps with no
# forecast, an ERI with no alert, the patient rules (an explanted pump and nothing after it; a
# transferred or deceased patient with a pump, bookings or alerts left here), the recent visits
# with an event, the open alerts of the other kinds (which those rules may no longer want), and
# the alerts to email or to escalate. The scan is held to this: the same questions, one statement.
_OPEN_ELSEWHERE = ", ".join(
    f"'{kind}'"
    for kind in (
        "refill_unbooked",
        "refill_urgent",
        "booked_after_due",
        "battery_window",
        "replacement_plan",
        "eri",
    )
)
RAW_ALERTS_REST = f"""
SELECT 'no_show', a.patient_id, NULL::date FROM refills_appointment a JOIN patients_patient p ON p.id = a.patient_id
WHERE a.kind = 'refill' AND a.status = 'booked' AND NOT a.entered_in_error AND a.visit_id IS NULL
  AND a.starts_at < %(no_show_before)s AND p.status = 'active'
  AND NOT EXISTS (SELECT 1 FROM refills_refillvisit v WHERE v.implant_id = a.implant_id AND NOT v.entered_in_error
                  AND v.performed_at >= a.starts_at - interval '12 hours')
UNION ALL
SELECT 'no_forecast', i.patient_id, NULL::date FROM pumps_implant i JOIN patients_patient p ON p.id = i.patient_id
WHERE NOT i.entered_in_error AND i.explanted_on IS NULL AND p.status = 'active' AND NOT p.entered_in_error
  AND (i.forecast_due_by IS NULL OR i.forecast_alarm_on IS NULL)
UNION ALL
SELECT 'eri', i.patient_id, i.eri_reported_on FROM pumps_implant i JOIN patients_patient p ON p.id = i.patient_id
WHERE NOT i.entered_in_error AND i.explanted_on IS NULL AND p.status = 'active' AND NOT p.entered_in_error
  AND i.eri_reported_on IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM refills_alert x WHERE x.kind = 'eri' AND x.implant_id = i.id
                  AND x.key_date = i.eri_reported_on)
UNION ALL
SELECT CASE WHEN p.status = 'active' THEN 'explant_no_replacement' ELSE 'patient_status' END, p.id, NULL::date
FROM patients_patient p
WHERE NOT p.entered_in_error AND (
    (p.status = 'active'
     AND EXISTS (SELECT 1 FROM pumps_implant i WHERE i.patient_id = p.id AND NOT i.entered_in_error
                 AND i.explanted_on IS NOT NULL)
     AND NOT EXISTS (SELECT 1 FROM pumps_implant i WHERE i.patient_id = p.id AND NOT i.entered_in_error
                     AND i.explanted_on IS NULL)
     AND NOT EXISTS (SELECT 1 FROM refills_appointment a WHERE a.patient_id = p.id AND a.kind = 'replacement'
                     AND a.status = 'booked' AND NOT a.entered_in_error))
    OR (p.status IN ('transferred', 'deceased')
        AND NOT EXISTS (SELECT 1 FROM refills_alert x WHERE x.patient_id = p.id AND x.kind = 'patient_status'
                        AND x.resolved_at IS NULL)
        AND (EXISTS (SELECT 1 FROM pumps_implant i WHERE i.patient_id = p.id AND NOT i.entered_in_error
                     AND i.explanted_on IS NULL)
             OR EXISTS (SELECT 1 FROM refills_appointment a WHERE a.patient_id = p.id AND a.status = 'booked'
                        AND NOT a.entered_in_error)
             OR EXISTS (SELECT 1 FROM refills_alert x WHERE x.patient_id = p.id AND x.resolved_at IS NULL
                        AND x.kind <> 'patient_status'))))
UNION ALL
SELECT 'visit', i.patient_id, NULL::date FROM refills_refillvisit v JOIN pumps_implant i ON i.id = v.implant_id
JOIN patients_patient p ON p.id = i.patient_id JOIN pumps_pumpmodel m ON m.id = i.pump_model_id
WHERE NOT v.entered_in_error AND v.performed_at >= %(visits_since)s AND NOT i.entered_in_error
  AND p.status = 'active' AND NOT p.entered_in_error
  AND (v.battery_status = 'eos' OR v.discrepancy_flagged OR v.after_empty_date OR v.post_fill_check = 'failed'
       OR abs(v.post_fill_discrepancy_ml) > m.pocket_fill_tolerance_ml)
UNION ALL
SELECT a.kind, a.patient_id, a.key_date FROM refills_alert a
WHERE a.resolved_at IS NULL AND a.kind NOT IN ({_OPEN_ELSEWHERE})
UNION ALL
(SELECT 'email', a.patient_id, NULL::date FROM refills_alert a WHERE a.emailed_at IS NULL AND a.resolved_at IS NULL
 ORDER BY a.id LIMIT 1000)
UNION ALL
(SELECT 'escalate', a.patient_id, NULL::date FROM refills_alert a
 WHERE a.severity = 'urgent' AND a.resolved_at IS NULL AND a.acknowledged_at IS NULL
   AND ((a.escalated_at IS NULL AND a.raised_at <= %(escalate_before)s) OR a.escalated_at <= %(escalate_before)s)
 LIMIT 500)
"""
RAW_ALERTS_SCAN_STEADY = f"{RAW_ALERTS_STEADY}UNION ALL{RAW_ALERTS_REST}"
# The first materialisation, written by hand: every missing row in one INSERT … SELECT each (the
# reminders at the clinic's hour on each offset's day, no stale or catch-up decision; the alerts
# above, all of them new).
RAW_INSERT_REMINDERS = f"""
INSERT INTO refills_reminder (appointment_id, patient_id, appointment_starts_at, offset_days, channel, send_at,
    status, reason_code, status_reason, attempts, send_count, recovered_count, last_error, created_at, updated_at)
SELECT m.id, m.patient_id, m.starts_at, o.offset_days, m.reminder_channel,
       (((m.starts_at AT TIME ZONE %(tz)s)::date - o.offset_days) + make_time(%(hour)s, 0, 0)) AT TIME ZONE %(tz)s,
       'pending', '', '', 0, 0, 0, '', %(now)s, %(now)s
FROM ({RAW_MISSING_REMINDERS}) m CROSS JOIN unnest(%(offsets)s::integer[]) AS o (offset_days)
ON CONFLICT DO NOTHING
"""
RAW_INSERT_ALERTS = f"""{RAW_ALERTS_WANTED}
INSERT INTO refills_alert (kind, audience, severity, patient_id, implant_id, key_date, message, raised_at,
    resolution, risk_flags, escalation_count)
SELECT kind, audience, severity, patient_id, implant_id, key_date, message, %(now)s, '', risk_flags, 0 FROM f
ON CONFLICT DO NOTHING
"""
RAW_DUE_REMINDERS = """
SELECT id FROM refills_reminder WHERE status = 'pending' AND send_at <= %(now)s ORDER BY send_at, id LIMIT %(limit)s
"""
# What the dispatcher does, written by hand: claim the same batch in one statement.
RAW_CLAIM_REMINDERS = """
UPDATE refills_reminder
SET status = 'sending', claimed_at = %(now)s, claim_token = gen_random_uuid(), updated_at = %(now)s
WHERE id IN (SELECT id FROM refills_reminder WHERE status = 'pending' AND send_at <= %(now)s
             ORDER BY send_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
RETURNING id
"""


def scan_params(*, now: dt.datetime, today: dt.date) -> dict:
    """The parameters of the hand-written scan SQL, from the clinic's settings (pages.py too)."""
    from django.conf import settings

    from refills.alerts.rules import VISIT_ALERT_WINDOW_DAYS
    from refills.models import ClinicSettings

    clinic = ClinicSettings.load()
    horizon = today + dt.timedelta(days=max(clinic.unbooked_alert_days, clinic.urgent_alert_days))
    return {
        "now": now,
        "today": today,
        "horizon": horizon,
        "plan_horizon": today + dt.timedelta(days=clinic.replacement_alert_days),
        "unbooked": clinic.unbooked_alert_days,
        "urgent": clinic.urgent_alert_days,
        "tz": settings.TIME_ZONE,
        "limit": settings.REMINDER_DISPATCH_BATCH,
        "hour": clinic.reminder_hour,
        "offsets": sorted(set(clinic.reminder_offsets_days)),
        "no_show_before": now - dt.timedelta(hours=clinic.no_show_after_hours),
        "visits_since": now - dt.timedelta(days=VISIT_ALERT_WINDOW_DAYS),
        "escalate_before": now - dt.timedelta(minutes=clinic.escalate_after_minutes),
    }


def raw(sql: str, params: dict):
    from django.db import connection

    def run():
        with connection.cursor() as cursor:
            # the scans turn PostgreSQL's JIT off in their transaction (core.db); so does the reference
            cursor.execute("SET LOCAL jit = off")
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else cursor.rowcount

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--implants", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("DATABASE_URL must point at PostgreSQL, e.g. postgres://postgres@127.0.0.1:5432/itbclinic_bench")
    ensure_database(url)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    for n in args.implants:
        measure(n, reseed=args.reseed, repeat=args.repeat)


def measure(n: int, *, reseed: bool, repeat: int) -> None:
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from pumps.models import Implant
    from refills.alerts.scan import alerts_scan
    from refills.models import Alert, Reminder
    from refills.reminders.dispatch import reminders_dispatch
    from refills.reminders.planning import reminders_scan

    now = timezone.now()
    today = timezone.localdate(now)
    if reseed or Implant.objects.count() != n:
        seed(n, today)

    with connection.cursor() as cursor:
        # every run starts with no reminder or alert rows: the first scan materialises them all
        cursor.execute("TRUNCATE refills_reminder, refills_alert RESTART IDENTITY CASCADE")
        cursor.execute("ANALYZE refills_reminder, refills_alert")
    params = scan_params(now=now, today=today)

    def scan():
        return reminders_scan(now=now), alerts_scan(now=now)

    rows = []
    load_before = os.getloadavg()
    # 1. first scan: materialises every reminder and raises every alert, rolled back each time;
    # next to the hand-written INSERT … SELECT of the same rows (also rolled back)
    t_rem_cold, q_rem_cold, rem_result = timed(lambda: reminders_scan(now=now), repeat=repeat)
    t_raw_rem_ins, q_raw_rem_ins, rem_inserted = timed(raw(RAW_INSERT_REMINDERS, params), repeat=repeat)
    rows.append(("reminder scan, first (materialise all)", t_rem_cold, q_rem_cold, t_raw_rem_ins, q_raw_rem_ins))
    t_alert_cold, q_alert_cold, alert_result = timed(lambda: alerts_scan(now=now), repeat=repeat)
    t_raw_al_ins, q_raw_al_ins, al_inserted = timed(raw(RAW_INSERT_ALERTS, params), repeat=repeat)
    rows.append(("alert scan, first (raise all, email 1,000)", t_alert_cold, q_alert_cold, t_raw_al_ins, q_raw_al_ins))
    rows.append(
        (
            "both scans, first",
            t_rem_cold + t_alert_cold,
            q_rem_cold + q_alert_cold,
            t_raw_rem_ins + t_raw_al_ins,
            q_raw_rem_ins + q_raw_al_ins,
        )
    )
    print(
        f"first scan: {rem_result.planned} reminder rows planned (hand-written INSERT: {rem_inserted}); "
        f"{alert_result.raised} alerts raised (hand-written INSERT: {al_inserted})"
    )
    # 2. steady state: keep the materialised rows (analysed, as autovacuum would); the seeded
    # clinic raises thousands of alerts at once, which a real clinic never does: mark them emailed
    # rather than send 500-alert digests for an hour. Then time a scan that finds nothing new,
    # next to the hand-written SQL that looks for the same work (missing and obsolete reminders;
    # alerts new, stale, to reopen or to rewrite) and finds none.
    timed(scan, repeat=1, rollback=False)
    Alert.objects.filter(emailed_at__isnull=True).update(emailed_at=now)
    with connection.cursor() as cursor:
        # The rolled-back first runs above left their rows dead in both tables (seven times the
        # live ones at --repeat 7); autovacuum would clear them between two scans of a real clinic,
        # and may start in the middle of a timed run here: vacuumed once, for every run alike.
        cursor.execute("VACUUM ANALYZE refills_reminder, refills_alert")
    t_rem, q_rem, _ = timed(lambda: reminders_scan(now=now), repeat=repeat)
    t_raw_missing, q_raw_missing, _ = timed(raw(RAW_REMINDER_STEADY, params), repeat=repeat)
    rows.append(("reminder scan, steady state", t_rem, q_rem, t_raw_missing, q_raw_missing))
    t_alert, q_alert, alert_steady = timed(lambda: alerts_scan(now=now), repeat=repeat)
    t_raw_cand, q_raw_cand, raw_steady = timed(raw(RAW_ALERTS_SCAN_STEADY, params), repeat=repeat)
    rows.append(("alert scan, steady state", t_alert, q_alert, t_raw_cand, q_raw_cand))
    # the earlier reference, for comparison: the refill and battery rules alone (what alerts.setwise decides)
    t_raw_setwise, q_raw_setwise, _ = timed(raw(RAW_ALERTS_STEADY, params), repeat=repeat)
    rows.append(("  (vs the refill and battery rules alone)", t_alert, q_alert, t_raw_setwise, q_raw_setwise))
    rows.append(
        (
            "both scans, steady state",
            t_rem + t_alert,
            q_rem + q_alert,
            t_raw_missing + t_raw_cand,
            q_raw_missing + q_raw_cand,
        )
    )
    print(
        f"steady state: the alert scan raised {alert_steady.raised}, resolved {alert_steady.resolved}; "
        f"the hand-written SQL found {len(raw_steady)} rows to change"
    )
    # 3. the dispatcher: one claim of a full batch of due rows
    due = Reminder.objects.filter(status="pending", send_at__lte=now).count()
    t_dispatch, q_dispatch, claimed = timed(
        lambda: reminders_dispatch(now=now, enqueue=lambda **kw: None).claimed, repeat=repeat
    )
    t_raw_due, q_raw_due, due_rows = timed(raw(RAW_DUE_REMINDERS, params), repeat=repeat)
    rows.append(
        (
            f"dispatch vs raw select (batch {settings.REMINDER_DISPATCH_BATCH})",
            t_dispatch,
            q_dispatch,
            t_raw_due,
            q_raw_due,
        )
    )
    t_raw_claim, q_raw_claim, _ = timed(raw(RAW_CLAIM_REMINDERS, params), repeat=repeat)
    rows.append(("dispatch vs raw claim (UPDATE)", t_dispatch, q_dispatch, t_raw_claim, q_raw_claim))
    print(f"dispatcher: {due} reminders due, {len(claimed)} claimed in one batch; raw SQL selected {len(due_rows)}")

    load = " ".join(f"{x:.2f}" for x in load_before) + " → " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n{n} implants, PostgreSQL, median of {repeat} runs; load average {load}")
    print(f"{'operation':44} {'ORM time':>10} {'queries':>8} {'raw SQL':>10} {'queries':>8} {'ratio':>7}")
    for name, t_orm, q_orm, t_raw, q_raw in rows:
        print(f"{name:44} {t_orm * 1000:8.1f}ms {q_orm:8d} {t_raw * 1000:8.1f}ms {q_raw:8d} {t_orm / t_raw:6.1f}x")
    print()


if __name__ == "__main__":
    main()
