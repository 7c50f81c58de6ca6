"""
Benchmark (not a test): every staff list page and API list at 1,000 / 10,000 / 100,000 pumps on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/itbclinic_bench python benchmarks/pages.py --implants 1000 10000

For each size the clinic is seeded with bulk inserts (benchmarks/reminder_scan.py `seed`: patients,
implants with their forecast, booked refills for about half), then each page and endpoint is
requested through Django's test client as a logged-in nurse (median of --repeat runs, after one
warm-up): its query count, response bytes and median time, and the ratio to a reference — the
hand-written SQL that fetches what the worklist shows, or, for the DRF detail endpoint, a bare
Django JSON view of the same row behind the same middleware (benchmarks/bench_urls.py).
"""

import argparse
import datetime as dt
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "benchmarks"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "itbclinic.settings")
# Production settings (DEBUG off) want a key of their own: a throwaway one for this process.
os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.dummy.EmailBackend")

# What the worklist shows, by hand: the counts of the tiles and the first page of the refill table
# (overdue or due within the alert window, with the booked refill), the battery section's first rows.
# The reference of the README's earlier tables (three statements: the refill table and battery only).
RAW_WORKLIST_REFILLS = [
    """
    SELECT COUNT(*) FILTER (WHERE i.forecast_due_by < %(today)s),
           COUNT(*) FILTER (WHERE i.forecast_due_by <= %(soon)s AND NOT EXISTS (
               SELECT 1 FROM refills_appointment a WHERE a.implant_id = i.id AND a.kind = 'refill'
               AND a.status = 'booked' AND NOT a.entered_in_error)),
           COUNT(*) FILTER (WHERE i.forecast_due_by > %(soon)s AND i.forecast_alarm_on > %(urgent)s)
    FROM pumps_implant i JOIN patients_patient p ON p.id = i.patient_id
    WHERE NOT i.entered_in_error AND i.explanted_on IS NULL AND p.status = 'active' AND NOT p.entered_in_error
      AND i.forecast_due_by IS NOT NULL
    """,
    """
    SELECT i.id, i.serial_number, i.forecast_due_by, i.forecast_alarm_on, p.id, p.mrn, p.given_name, p.family_name,
           (SELECT a.starts_at FROM refills_appointment a WHERE a.implant_id = i.id AND a.kind = 'refill'
            AND a.status = 'booked' AND NOT a.entered_in_error ORDER BY a.starts_at LIMIT 1),
           COUNT(*) OVER ()
    FROM pumps_implant i JOIN patients_patient p ON p.id = i.patient_id
    WHERE NOT i.entered_in_error AND i.explanted_on IS NULL AND p.status = 'active' AND NOT p.entered_in_error
      AND i.forecast_due_by IS NOT NULL AND (i.forecast_due_by <= %(soon)s OR i.forecast_alarm_on <= %(urgent)s)
    ORDER BY i.forecast_due_by, i.forecast_alarm_on, i.id LIMIT 50
    """,
    """
    SELECT i.id, p.family_name,
           (i.implanted_on + make_interval(months => m.battery_hard_stop_years * 12))::date AS stops
    FROM pumps_implant i JOIN patients_patient p ON p.id = i.patient_id JOIN pumps_pumpmodel m ON m.id = i.pump_model_id
    WHERE NOT i.entered_in_error AND i.explanted_on IS NULL AND p.status = 'active'
      AND m.battery_hard_stop_years IS NOT NULL
      AND (i.implanted_on + make_interval(months => m.battery_hard_stop_years * 12
           - m.replacement_plan_months_before))::date <= %(horizon)s
    ORDER BY stops, i.implanted_on, i.id LIMIT 100
    """,
]
_PATIENT = "p.id, p.mrn, p.given_name, p.family_name"
_ACTIVE_PUMP = "NOT i.entered_in_error AND i.explanted_on IS NULL AND p.status = 'active' AND NOT p.entered_in_error"
# Every other section the page shows, by hand, each with its total (COUNT(*) OVER ()) and capped as
# the page caps it: today's appointments, past ones not recorded, recent no-shows (rebooked or not),
# pumps with no forecast, battery records that cannot be computed, open change requests, annual
# reviews due, open alerts (urgent first) and failed reminders.
RAW_WORKLIST_OTHER_SECTIONS = [
    f"""
    SELECT a.id, a.starts_at, a.kind, a.status, a.place, {_PATIENT}, COUNT(*) OVER ()
    FROM refills_appointment a JOIN patients_patient p ON p.id = a.patient_id
    WHERE NOT a.entered_in_error AND a.starts_at >= %(day_start)s AND a.starts_at < %(day_end)s
      AND a.status <> 'cancelled'
    ORDER BY a.starts_at, a.id LIMIT 100
    """,
    f"""
    SELECT a.id, a.starts_at, a.kind, {_PATIENT}, COUNT(*) OVER ()
    FROM refills_appointment a JOIN patients_patient p ON p.id = a.patient_id
    WHERE NOT a.entered_in_error AND a.status = 'booked' AND a.starts_at < %(day_start)s
    ORDER BY a.starts_at, a.id LIMIT 100
    """,
    f"""
    SELECT a.id, a.starts_at, a.kind, {_PATIENT},
           EXISTS (SELECT 1 FROM refills_appointment b WHERE b.patient_id = a.patient_id AND b.kind = a.kind
                   AND b.status = 'booked' AND NOT b.entered_in_error),
           COUNT(*) OVER ()
    FROM refills_appointment a JOIN patients_patient p ON p.id = a.patient_id
    WHERE NOT a.entered_in_error AND a.status = 'no_show' AND a.starts_at >= %(no_show_since)s
    ORDER BY a.starts_at DESC, a.id DESC LIMIT 100
    """,
    f"""
    SELECT i.id, i.serial_number, i.implanted_on, i.forecast_problem, m.name, {_PATIENT}, COUNT(*) OVER ()
    FROM pumps_implant i JOIN patients_patient p ON p.id = i.patient_id JOIN pumps_pumpmodel m ON m.id = i.pump_model_id
    WHERE {_ACTIVE_PUMP} AND i.forecast_due_by IS NULL
    ORDER BY i.implanted_on, i.id LIMIT 100
    """,
    f"""
    SELECT i.id, i.serial_number, {_PATIENT}, COUNT(*) OVER ()
    FROM pumps_implant i JOIN patients_patient p ON p.id = i.patient_id
    WHERE NOT i.entered_in_error AND i.explanted_on IS NULL AND p.status = 'active'
      AND (i.implanted_on > '9000-01-01' OR i.eri_reported_on < i.implanted_on OR i.eri_reported_on > '9000-01-01')
    ORDER BY i.implanted_on, i.id LIMIT 100
    """,
    f"""
    SELECT c.id, c.urgent, c.requested_at, c.preferred_dates, c.message, a.id, a.kind, a.starts_at, a.status,
           {_PATIENT}, COUNT(*) OVER ()
    FROM refills_appointmentchangerequest c JOIN refills_appointment a ON a.id = c.appointment_id
         JOIN patients_patient p ON p.id = a.patient_id
    WHERE c.status = 'open' AND NOT a.entered_in_error
    ORDER BY c.urgent DESC, c.requested_at, c.id LIMIT 100
    """,
    f"""
    SELECT i.id, {_PATIENT},
           (GREATEST(i.implanted_on, COALESCE((r.last_at AT TIME ZONE %(tz)s)::date, i.implanted_on))
            + interval '12 months')::date AS due_on
    FROM pumps_implant i JOIN patients_patient p ON p.id = i.patient_id
         LEFT JOIN (SELECT patient_id, MAX(starts_at) AS last_at FROM refills_appointment
                    WHERE kind = 'review' AND status = 'completed' AND NOT entered_in_error
                    GROUP BY patient_id) r ON r.patient_id = i.patient_id
    WHERE {_ACTIVE_PUMP}
      AND NOT EXISTS (SELECT 1 FROM refills_appointment b WHERE b.patient_id = i.patient_id AND b.kind = 'review'
                      AND b.status = 'booked' AND NOT b.entered_in_error)
      AND (GREATEST(i.implanted_on, COALESCE((r.last_at AT TIME ZONE %(tz)s)::date, i.implanted_on))
           + interval '12 months')::date <= %(review_horizon)s
    ORDER BY due_on, i.id LIMIT 100
    """,
    f"""
    SELECT l.id, l.kind, l.severity, l.message, l.risk_flags, l.escalation_count, l.escalated_at, l.raised_at,
           l.acknowledged_at, {_PATIENT}, COUNT(*) OVER ()
    FROM refills_alert l JOIN patients_patient p ON p.id = l.patient_id
    WHERE l.resolved_at IS NULL
    ORDER BY CASE l.severity WHEN 'urgent' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, l.raised_at DESC, l.id DESC
    LIMIT 100
    """,
    f"""
    SELECT r.id, r.channel, r.last_error, r.updated_at, a.starts_at, {_PATIENT}, COUNT(*) OVER ()
    FROM refills_reminder r JOIN refills_appointment a ON a.id = r.appointment_id
         JOIN patients_patient p ON p.id = r.patient_id
    WHERE r.status = 'failed' AND a.status = 'booked'
    ORDER BY r.send_at DESC, r.id DESC LIMIT 100
    """,
]
# What the whole page shows, by hand: the reference of issue 12's "within 3x".
RAW_WORKLIST = RAW_WORKLIST_REFILLS + RAW_WORKLIST_OTHER_SECTIONS


def measure(client, url: str, *, repeat: int) -> tuple[int, int, float, int]:
    """(queries, bytes, median seconds, status) of GET url."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url, secure=True)  # warm-up: template and URL caches, the session row
    times, queries, size, status = [], 0, 0, 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            response = client.get(url, secure=True)
            times.append(time.perf_counter() - start)
        executed = [
            q for q in captured.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE", "BEGIN", "COMMIT"))
        ]
        queries, size, status = len(executed), len(response.content), response.status_code
    return queries, size, statistics.median(times), status


def raw_time(statements: list[str], params: dict, *, repeat: int) -> float:
    from django.db import connection

    times = []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql, params)
                cursor.fetchall()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def field_safety_notice_seed(today: dt.date) -> int:
    """A field-safety notice flagging every active pump of the model of the clinic's first pump (the
    seed spreads the pumps over the catalogue's SynchroMed II and Prometra II models), through the
    service the page uses. Idempotent: after a reseed the same notice flags the new pumps."""
    from django.utils import timezone

    from itbclinic.accounts.models import User
    from patients.models import Patient
    from pumps.models import Implant
    from refills.field_safety import field_safety_flag_recall
    from refills.recall import RecallCriteria

    implant = Implant.objects.select_related("pump_model").order_by("pk").first()
    assert implant is not None
    clinician, _ = User.objects.get_or_create(username="bench-clinician")
    result = field_safety_flag_recall(
        criteria=RecallCriteria(pump_model=implant.pump_model, status="active"),
        title="Benchmark notice",
        reference="BENCH-FSN-1",
        manufacturer_text="Interrogate the pump at the next refill.",
        by=clinician,
        visible=Patient.objects.all(),
        now=timezone.now(),
    )
    return result.notice.pk


def bench(n: int, *, repeat: int, worklist_only: bool = False) -> list[tuple]:
    from django.conf import settings
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.test import Client, override_settings
    from django.utils import timezone
    from reminder_scan import RAW_INSERT_ALERTS, scan_params, seed

    from itbclinic.accounts.models import User
    from itbclinic.accounts.roles import Role
    from patients.models import Patient
    from pumps.models import Implant
    from refills.clinic_time import clinic_day_start
    from refills.models import Alert, ClinicSettings
    from refills.programme_views import CSV_TABLES

    today = timezone.localdate()
    clinic = ClinicSettings.load()
    if Implant.objects.count() != n:
        seed(n, today)
    if not Alert.objects.filter(resolved_at__isnull=True).exists():
        # The clinic as its first alert scan leaves it (one refill alert per pump overdue or due
        # soon: 395 at 1,000 pumps), inserted by hand: the worklist's alert section is full.
        with connection.cursor() as cursor:
            cursor.execute(RAW_INSERT_ALERTS, scan_params(now=timezone.now(), today=today))
    nurse, _ = User.objects.get_or_create(username="bench-nurse")
    nurse.groups.add(Group.objects.get(name=Role.NURSE.value))
    client = Client()
    client.force_login(nurse)
    params = {
        "today": today,
        "soon": today + dt.timedelta(days=clinic.unbooked_alert_days),
        "urgent": today + dt.timedelta(days=clinic.urgent_alert_days),
        "horizon": today + dt.timedelta(days=clinic.replacement_alert_days),
        "review_horizon": today + dt.timedelta(days=clinic.annual_review_notice_days),
        "day_start": clinic_day_start(today),
        "day_end": clinic_day_start(today + dt.timedelta(days=1)),
        "no_show_since": clinic_day_start(today) - dt.timedelta(days=30),
        "tz": settings.TIME_ZONE,
    }
    patient_id = Patient.objects.order_by("pk").values_list("pk", flat=True)[n // 2]
    rows = []

    # Static URLs without `collectstatic`'s manifest (the tests do the same).
    storages = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(ROOT_URLCONF="bench_urls", STORAGES=storages):
        from rest_framework.throttling import SimpleRateThrottle

        SimpleRateThrottle.THROTTLE_RATES = {"anon": None, "user": None}
        worklist = measure(client, "/staff/", repeat=repeat)
        rows.append(
            (
                "worklist /staff/",
                *worklist,
                raw_time(RAW_WORKLIST, params, repeat=repeat),
                "hand-written SQL, every section",
            )
        )
        rows.append(
            (
                "  (same page, earlier reference)",
                *worklist,
                raw_time(RAW_WORKLIST_REFILLS, params, repeat=repeat),
                "hand-written SQL, refills and battery only",
            )
        )
        if worklist_only:
            return rows
        notice_id = field_safety_notice_seed(today)
        for url in (
            "/staff/calendar/",
            "/staff/patients/",
            "/staff/quality/",
            "/staff/recall/?serial_from=0&serial_to=z",
            "/staff/field-safety/",
            f"/staff/field-safety/{notice_id}/",
            f"/staff/field-safety/{notice_id}/export.csv",
            "/staff/recall/export.csv?serial_from=0&serial_to=z",
            *(f"/staff/quality/{table}.csv" for table in CSV_TABLES),
            # A patient's own page (the seed has no refill visits: the printable record is held
            # constant by tests/itbclinic/test_constant_queries.py instead).
            f"/staff/patients/{patient_id}/wallet-card/",
        ):
            rows.append((url, *measure(client, url, repeat=repeat), None, ""))
        for url in ("/api/patients/", "/api/implants/", "/api/appointments/", "/api/due-for-refill/", "/api/alerts/"):
            rows.append((url, *measure(client, url, repeat=repeat), None, ""))
            rows.append((f"{url}?page_size=200", *measure(client, f"{url}?page_size=200", repeat=repeat), None, ""))
        bare = measure(client, f"/bench/bare-patient/{patient_id}/", repeat=repeat * 3)
        detail = measure(client, f"/api/patients/{patient_id}/", repeat=repeat * 3)
        rows.append(("/api/patients/<id>/ (DRF)", *detail, bare[2], "bare Django view"))
        rows.append(("  bare Django JSON view, same row", *bare, None, ""))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--implants", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worklist-only", action="store_true", help="measure the worklist alone")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("DATABASE_URL must point at PostgreSQL, e.g. postgres://postgres@127.0.0.1:5432/itbclinic_bench")
    from reminder_scan import ensure_database

    ensure_database(url)
    import django

    django.setup()
    import logging

    # The access log's rows are still written for every request; its console line is not printed
    # (hundreds of lines of patient ids between the tables).
    logging.getLogger("itbclinic.audit").setLevel(logging.WARNING)
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()  # the test client's "testserver" host and response capture
    call_command("migrate", verbosity=0)
    for n in args.implants:
        rows = bench(n, repeat=args.repeat, worklist_only=args.worklist_only)
        print(f"\n{n:,} pumps, PostgreSQL, median of {args.repeat} requests")
        print(f"{'page or endpoint':42} {'queries':>7} {'bytes':>9} {'median':>9} {'reference':>10} {'ratio':>6}")
        for name, queries, size, median, status, reference, label in rows:
            ref = f"{reference * 1000:8.1f}ms" if reference else ""
            ratio = f"{median / reference:5.1f}x" if reference else ""
            flag = "" if status == 200 else f"  (HTTP {status})"
            print(f"{name:42} {queries:7d} {size:9,d} {median * 1000:7.1f}ms {ref:>10} {ratio:>6} {label}{flag}")


if __name__ == "__main__":
    main()
