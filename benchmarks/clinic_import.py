"""
Benchmark (not a test): onboarding a clinic's spreadsheet of N rows (default 5,000), dry run then import.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/itbclinic_bench python benchmarks/clinic_import.py --rows 5000

The sheet is tests/interop/sample.py's good row (docs/domain.md's worked example, written in every
accepted spelling) N times, as XLSX. It runs in a fresh test database (test_<name>, migrated,
dropped at the end), and the clock is frozen at the sample's 20 March 2025. Prints the seconds for
reading the file, the dry run and the import, and the per-row cost.

Measured on the shared 2-core machine (other work running; load average in brackets):

    before (every row through the services one by one, in its own savepoint)
      PostgreSQL, 300 rows [9.0]:   dry run 230 ms a row, import 510 ms a row (5,000 rows: ~19 and ~42 min)
      SQLite, 300 rows [7.5]:       dry run 418 ms a row, import 439 ms a row (under cProfile)
    after (new pumps validated in memory by the same rules, written in bulk with their history)
      PostgreSQL, 5,000 rows [10.4]: read 16.8 s, dry run 31.9 s, import 36.3 s
      PostgreSQL, 5,000 rows [6.7]:  read  6.5 s, dry run 15.4 s, import 48.5 s
      (83 s for the import while this machine also ran the interop tests on PostgreSQL [10.1]:
      the figures move with the machine's other work)
      SQLite, 5,000 rows [8.1]:      read  5.7 s, dry run 12.5 s, import 34.4 s
    3 December 2026, a quiet machine
      PostgreSQL, 5,000 rows [0.3]:  read  1.2 s, dry run  2.6 s, import  8.6 s
      SQLite, 5,000 rows [0.6]:      read  1.4 s, dry run  2.4 s, import  8.4 s
"""

import argparse
import os
import secrets
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "itbclinic.settings")
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.dummy.EmailBackend")
os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))  # a throwaway key for this run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()

    import django

    django.setup()
    import time_machine
    from django.db import connection
    from django.test.utils import setup_databases, setup_test_environment, teardown_databases

    from interop.onboarding import clinic_import
    from interop.sheet import sheet_read
    from tests import factories
    from tests.interop import sample as messy
    from tests.staff.conftest import NOW

    # A fresh database (test_<name>, migrated: the catalogue is in), dropped at the end.
    setup_test_environment()
    databases = setup_databases(verbosity=0, interactive=False)
    with time_machine.travel(NOW, tick=True):
        admin = factories.ClinicAdminFactory()
        content = messy.Sample(rows=[messy.HEADERS, *(messy.good_row(i) for i in range(1, args.rows + 1))]).xlsx()
        started = time.perf_counter()
        sheet = sheet_read(content=content, filename="bench.xlsx")
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        dry = clinic_import(sheet=sheet, by=admin, dry_run=True)
        dry_s = time.perf_counter() - started
        started = time.perf_counter()
        done = clinic_import(sheet=sheet, by=admin, dry_run=False)
        import_s = time.perf_counter() - started
    teardown_databases(databases, verbosity=0)
    assert dry.counts["error"] == 0 and done.written, (dry.counts, done.counts)
    load = os.getloadavg()[0]
    print(f"{connection.vendor}, {args.rows:,} rows ({len(content) / 1e6:.1f} MB XLSX), load average {load:.1f}")
    print(f"  read the file  {read_s:7.1f} s")
    print(f"  dry run        {dry_s:7.1f} s   {dry_s / args.rows * 1000:5.1f} ms a row")
    print(f"  import         {import_s:7.1f} s   {import_s / args.rows * 1000:5.1f} ms a row")


if __name__ == "__main__":
    main()
