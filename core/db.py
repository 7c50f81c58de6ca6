"""Calendar arithmetic in SQL, so a list page filters and sorts by a computed date in the database.

Each function mirrors one pure Python function, and a test checks both on the edge dates (month
ends, 29 February, negative offsets) on SQLite and PostgreSQL:

- `AddMonths(date, months)` is `pumps.calculations.add_months`: moved by whole calendar months
  and clamped to the month's end (31 Aug - 6 months = 28 Feb; 29 Feb + 12 months = 28 Feb).
  PostgreSQL's `date + interval 'n months'` clamps the same way. SQLite's `date(…, '+n months')`
  overflows into the next month instead (31 Jan + 1 month = 3 Mar), so there it is built from the
  first of the target month plus the day, capped at the target month's last day.
- `AddDays(date, days)`: `date + timedelta(days=days)`.

`months` and `days` may be columns or expressions (a catalogue row's years × 12).

`jit_off_in_transaction()` turns PostgreSQL's JIT compiler off for the rest of a transaction;
`exists_each(*querysets)` asks whether each queryset has a row, in one round trip.
"""

from typing import Any

from django.db import connection
from django.db.models import DateField, Func, IntegerField, QuerySet
from django.db.models.expressions import Combinable, Value


def _expression(value: Any) -> Any:
    return value if hasattr(value, "resolve_expression") else Value(value, output_field=IntegerField())


class AddMonths(Func):
    """PostgreSQL and SQLite only (the two databases the project supports)."""

    arity = 2
    output_field = DateField()

    def __init__(self, date: Combinable | str, months: Combinable | int, **extra: Any) -> None:
        super().__init__(date, _expression(months), **extra)

    def as_postgresql(self, compiler, connection, **extra_context):
        date_sql, date_params = compiler.compile(self.source_expressions[0])
        months_sql, months_params = compiler.compile(self.source_expressions[1])
        return (
            f"(({date_sql}) + make_interval(months => ({months_sql})::integer))::date",
            (*date_params, *months_params),
        )

    def as_sqlite(self, compiler, connection, **extra_context):
        date_sql, date_params = compiler.compile(self.source_expressions[0])
        months_sql, months_params = compiler.compile(self.source_expressions[1])
        first = f"date({date_sql}, 'start of month', CAST(({months_sql}) AS TEXT) || ' months')"
        day = f"CAST(strftime('%%d', {date_sql}) AS INTEGER)"
        sql = f"MIN(date({first}, CAST({day} - 1 AS TEXT) || ' days'), date({first}, '+1 month', '-1 day'))"
        # `first` appears twice and the day once more: the parameters follow the placeholders.
        params = (
            *date_params,
            *months_params,
            *date_params,
            *date_params,
            *months_params,
        )
        return sql, params


class AddDays(Func):
    arity = 2
    output_field = DateField()

    def __init__(self, date: Combinable | str, days: Combinable | int, **extra: Any) -> None:
        super().__init__(date, _expression(days), **extra)

    def as_postgresql(self, compiler, connection, **extra_context):
        date_sql, date_params = compiler.compile(self.source_expressions[0])
        days_sql, days_params = compiler.compile(self.source_expressions[1])
        return f"(({date_sql}) + ({days_sql})::integer)", (*date_params, *days_params)

    def as_sqlite(self, compiler, connection, **extra_context):
        date_sql, date_params = compiler.compile(self.source_expressions[0])
        days_sql, days_params = compiler.compile(self.source_expressions[1])
        return f"date({date_sql}, CAST(({days_sql}) AS TEXT) || ' days')", (*date_params, *days_params)


def jit_off_in_transaction() -> None:
    """No JIT compilation for the rest of the current transaction (PostgreSQL; elsewhere nothing).

    The clinic-wide scans run one query over every patient or pump, with a dozen correlated
    subqueries: its estimated cost passes `jit_above_cost`, and compiling the plan then takes
    seconds (measured: 12 s of a 12.5 s query at 10,000 pumps, on a loaded 2-core machine) for
    an execution of a few milliseconds. `SET LOCAL` ends with the transaction, so it holds behind
    PgBouncer in transaction mode too.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")


def exists_each(*querysets: QuerySet) -> list[bool]:
    """`[qs.exists() for qs in querysets]` in one query: `SELECT EXISTS (…), EXISTS (…), …`.

    For a periodic job whose steps each look for rows that are nearly always absent: one round
    trip tells which steps have anything to do.
    """
    if not querysets:
        return []
    compiled = [qs.order_by().values("pk")[:1].query.sql_with_params() for qs in querysets]
    sql = "SELECT " + ", ".join(f"EXISTS ({part})" for part, _ in compiled)
    with connection.cursor() as cursor:
        cursor.execute(sql, [param for _, params in compiled for param in params])
        return [bool(found) for found in cursor.fetchone()]
