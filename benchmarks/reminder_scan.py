"""
Benchmark (not a test): the reminder scan and the dispatcher on 100,000 implants in PostgreSQL,
next to raw SQL selecting the same rows. Prints the times, their ratio and the query counts.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/itbclinic_bench python benchmarks/reminder_scan.py
    (options: --implants N, --reseed, --repeat N)

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
RAW_REFILL_ALERT_CANDIDATES = """
SELECT i.id, i.patient_id, i.forecast_due_by, i.forecast_alarm_on,
       (SELECT MIN(a.starts_at) FROM refills_appointment a
        WHERE a.implant_id = i.id AND a.kind = 'refill' AND a.status = 'booked' AND NOT a.entered_in_error)
FROM pumps_implant i JOIN patients_patient p ON p.id = i.patient_id
WHERE NOT i.entered_in_error AND i.explanted_on IS NULL AND p.status = 'active' AND NOT p.entered_in_error
  AND i.forecast_due_by IS NOT NULL
  AND (i.forecast_due_by <= %(horizon)s OR i.forecast_alarm_on <= %(horizon)s OR EXISTS (
       SELECT 1 FROM refills_appointment a WHERE a.implant_id = i.id AND a.kind = 'refill'
       AND a.status = 'booked' AND NOT a.entered_in_error
       AND (a.starts_at AT TIME ZONE %(tz)s)::date > i.forecast_due_by))
"""
# The first materialisation, written by hand: every missing row in one INSERT … SELECT each (the
# reminders at the clinic's hour on each offset's day, no stale or catch-up decision; one alert
# per refill candidate).
RAW_INSERT_REMINDERS = f"""
INSERT INTO refills_reminder (appointment_id, patient_id, appointment_starts_at, offset_days, channel, send_at,
    status, reason_code, status_reason, attempts, send_count, recovered_count, last_error, created_at, updated_at)
SELECT m.id, m.patient_id, m.starts_at, o.offset_days, m.reminder_channel,
       (((m.starts_at AT TIME ZONE %(tz)s)::date - o.offset_days) + make_time(%(hour)s, 0, 0)) AT TIME ZONE %(tz)s,
       'pending', '', '', 0, 0, 0, '', %(now)s, %(now)s
FROM ({RAW_MISSING_REMINDERS}) m CROSS JOIN unnest(%(offsets)s::integer[]) AS o (offset_days)
ON CONFLICT DO NOTHING
"""
RAW_INSERT_ALERTS = f"""
INSERT INTO refills_alert (kind, audience, severity, patient_id, implant_id, key_date, message, raised_at,
    resolution, risk_flags, escalation_count)
SELECT CASE WHEN c.forecast_alarm_on <= %(today)s THEN 'refill_urgent' ELSE 'refill_unbooked' END, 'nurses',
       'warning', c.patient_id, c.id, c.forecast_due_by, 'Refill due by ' || c.forecast_due_by, %(now)s, '', '', 0
FROM ({RAW_REFILL_ALERT_CANDIDATES}) c (id, patient_id, forecast_due_by, forecast_alarm_on, booked_at)
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
    parser.add_argument("--implants", type=int, default=100_000)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("DATABASE_URL must point at PostgreSQL, e.g. postgres://postgres@127.0.0.1:5432/itbclinic_bench")
    ensure_database(url)

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from pumps.models import Implant
    from refills.alerts.scan import alerts_scan
    from refills.models import Alert, ClinicSettings, Reminder
    from refills.reminders.dispatch import reminders_dispatch
    from refills.reminders.planning import reminders_scan

    call_command("migrate", verbosity=0)
    now = timezone.now()
    today = timezone.localdate(now)
    if args.reseed or Implant.objects.count() != args.implants:
        seed(args.implants, today)

    with connection.cursor() as cursor:
        # every run starts with no reminder or alert rows: the first scan materialises them all
        cursor.execute("TRUNCATE refills_reminder, refills_alert RESTART IDENTITY CASCADE")
    clinic = ClinicSettings.load()
    horizon = today + dt.timedelta(days=max(clinic.unbooked_alert_days, clinic.urgent_alert_days))
    params = {
        "now": now,
        "today": today,
        "horizon": horizon,
        "tz": settings.TIME_ZONE,
        "limit": settings.REMINDER_DISPATCH_BATCH,
        "hour": clinic.reminder_hour,
        "offsets": sorted(set(clinic.reminder_offsets_days)),
    }

    def scan():
        return reminders_scan(now=now), alerts_scan(now=now)

    rows = []
    # 1. first scan: materialises every reminder and raises every alert, rolled back each time;
    # next to the hand-written INSERT … SELECT of the same rows (also rolled back)
    t_rem_cold, q_rem_cold, rem_result = timed(lambda: reminders_scan(now=now), repeat=1)
    t_raw_rem_ins, q_raw_rem_ins, rem_inserted = timed(raw(RAW_INSERT_REMINDERS, params), repeat=args.repeat)
    rows.append(("reminder scan, first (materialise all)", t_rem_cold, q_rem_cold, t_raw_rem_ins, q_raw_rem_ins))
    t_alert_cold, q_alert_cold, alert_result = timed(lambda: alerts_scan(now=now), repeat=1)
    t_raw_al_ins, q_raw_al_ins, al_inserted = timed(raw(RAW_INSERT_ALERTS, params), repeat=args.repeat)
    rows.append(("alert scan, first (raise all)", t_alert_cold, q_alert_cold, t_raw_al_ins, q_raw_al_ins))
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
        f"{alert_result.raised} alerts raised (hand-written INSERT: {al_inserted} refill alerts)"
    )
    # 2. steady state: keep the materialised rows; the seeded clinic raises tens of thousands of
    # alerts at once, which a real clinic never does: mark them emailed rather than send 500-alert
    # digests for an hour. Then time a scan that finds nothing new, next to the hand-written
    # SELECT of the rows it looks for (missing reminders; refill alert candidates).
    timed(scan, repeat=1, rollback=False)
    Alert.objects.filter(emailed_at__isnull=True).update(emailed_at=now)
    t_rem, q_rem, _ = timed(lambda: reminders_scan(now=now), repeat=args.repeat)
    t_raw_missing, q_raw_missing, _ = timed(raw(RAW_MISSING_REMINDERS, params), repeat=args.repeat)
    rows.append(("reminder scan, steady state", t_rem, q_rem, t_raw_missing, q_raw_missing))
    t_alert, q_alert, _ = timed(lambda: alerts_scan(now=now), repeat=args.repeat)
    t_raw_cand, q_raw_cand, _ = timed(raw(RAW_REFILL_ALERT_CANDIDATES, params), repeat=args.repeat)
    rows.append(("alert scan, steady state", t_alert, q_alert, t_raw_cand, q_raw_cand))
    rows.append(
        (
            "both scans, steady state",
            t_rem + t_alert,
            q_rem + q_alert,
            t_raw_missing + t_raw_cand,
            q_raw_missing + q_raw_cand,
        )
    )
    # 3. the dispatcher: one claim of a full batch of due rows
    due = Reminder.objects.filter(status="pending", send_at__lte=now).count()
    t_dispatch, q_dispatch, claimed = timed(
        lambda: reminders_dispatch(now=now, enqueue=lambda **kw: None).claimed, repeat=args.repeat
    )
    t_raw_due, q_raw_due, due_rows = timed(raw(RAW_DUE_REMINDERS, params), repeat=args.repeat)
    rows.append(
        (
            f"dispatch vs raw select (batch {settings.REMINDER_DISPATCH_BATCH})",
            t_dispatch,
            q_dispatch,
            t_raw_due,
            q_raw_due,
        )
    )
    t_raw_claim, q_raw_claim, _ = timed(raw(RAW_CLAIM_REMINDERS, params), repeat=args.repeat)
    rows.append(("dispatch vs raw claim (UPDATE)", t_dispatch, q_dispatch, t_raw_claim, q_raw_claim))
    print(f"dispatcher: {due} reminders due, {len(claimed)} claimed in one batch; raw SQL selected {len(due_rows)}")

    print(f"\n{args.implants} implants, PostgreSQL, median of {args.repeat} runs (the first scan: one run)")
    print(f"{'operation':44} {'ORM time':>10} {'queries':>8} {'raw SQL':>10} {'queries':>8} {'ratio':>7}")
    for name, t_orm, q_orm, t_raw, q_raw in rows:
        print(f"{name:44} {t_orm * 1000:8.1f}ms {q_orm:8d} {t_raw * 1000:8.1f}ms {q_raw:8d} {t_orm / t_raw:6.1f}x")


if __name__ == "__main__":
    main()
