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
RAW_WORKLIST = [
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
            AND a.status = 'booked' AND NOT a.entered_in_error ORDER BY a.starts_at LIMIT 1)
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


def bench(n: int, *, repeat: int) -> list[tuple]:
    from django.contrib.auth.models import Group
    from django.test import Client, override_settings
    from django.utils import timezone
    from reminder_scan import seed

    from itbclinic.accounts.models import User
    from itbclinic.accounts.roles import Role
    from patients.models import Patient
    from pumps.models import Implant
    from refills.models import ClinicSettings

    today = timezone.localdate()
    if Implant.objects.count() != n:
        seed(n, today)
    nurse, _ = User.objects.get_or_create(username="bench-nurse")
    nurse.groups.add(Group.objects.get(name=Role.NURSE.value))
    client = Client()
    client.force_login(nurse)
    clinic = ClinicSettings.load()
    params = {
        "today": today,
        "soon": today + dt.timedelta(days=clinic.unbooked_alert_days),
        "urgent": today + dt.timedelta(days=clinic.urgent_alert_days),
        "horizon": today + dt.timedelta(days=clinic.replacement_alert_days),
    }
    patient_id = Patient.objects.order_by("pk").values_list("pk", flat=True)[n // 2]
    rows = []
    from django.conf import settings

    # Static URLs without `collectstatic`'s manifest (the tests do the same).
    storages = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(ROOT_URLCONF="bench_urls", STORAGES=storages):
        from rest_framework.throttling import SimpleRateThrottle

        SimpleRateThrottle.THROTTLE_RATES = {"anon": None, "user": None}
        worklist = measure(client, "/staff/", repeat=repeat)
        rows.append(("worklist /staff/", *worklist, raw_time(RAW_WORKLIST, params, repeat=repeat), "hand-written SQL"))
        for url in (
            "/staff/calendar/",
            "/staff/patients/",
            "/staff/quality/",
            "/staff/recall/?serial_from=0&serial_to=z",
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
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("DATABASE_URL must point at PostgreSQL, e.g. postgres://postgres@127.0.0.1:5432/itbclinic_bench")
    from reminder_scan import ensure_database

    ensure_database(url)
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()  # the test client's "testserver" host and response capture
    call_command("migrate", verbosity=0)
    for n in args.implants:
        rows = bench(n, repeat=args.repeat)
        print(f"\n{n:,} pumps, PostgreSQL, median of {args.repeat} requests")
        print(f"{'page or endpoint':42} {'queries':>7} {'bytes':>9} {'median':>9} {'reference':>10} {'ratio':>6}")
        for name, queries, size, median, status, reference, label in rows:
            ref = f"{reference * 1000:8.1f}ms" if reference else ""
            ratio = f"{median / reference:5.1f}x" if reference else ""
            flag = "" if status == 200 else f"  (HTTP {status})"
            print(f"{name:42} {queries:7d} {size:9,d} {median * 1000:7.1f}ms {ref:>10} {ratio:>6} {label}{flag}")


if __name__ == "__main__":
    main()
