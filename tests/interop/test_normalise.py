"""Reading a spreadsheet's cells: every accepted spelling, and every refusal with its reason."""

import datetime as dt
from decimal import Decimal

import pytest

from interop.normalise import (
    CellError,
    clean_text,
    header_key,
    parse_concentration,
    parse_daily_dose,
    parse_date,
    parse_volume,
)

MARCH_1 = dt.date(2026, 3, 1)


@pytest.mark.parametrize(
    "cell",
    [
        "2026-03-01",
        "01/03/2026",
        "1/3/2026",
        "1.3.2026",
        "01-03-2026",
        " 01/03/2026 ",
        "46082",
        46082,
        46082.0,
        dt.date(2026, 3, 1),
        dt.datetime(2026, 3, 1),
        "2026-03-01 00:00:00",
    ],
)
def test_dates_in_every_accepted_spelling(cell):
    assert parse_date(cell) == MARCH_1


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("01/13/2026", "month first"),
        ("1/3/26", "two-digit year"),
        ("31/02/2026", "not a real date"),
        ("2026-02-30", "not a real date"),
        ("March 1st", "not a date"),
        ("46082.5", "time of day"),
        (dt.datetime(2026, 3, 1, 14, 30), "time of day"),
        (100, "between 1950 and 2100"),
        ("99999", "between 1950 and 2100"),
    ],
)
def test_dates_that_cannot_be_read_without_guessing(cell, reason):
    with pytest.raises(CellError, match=reason):
        parse_date(cell)


def test_blank_cells_are_none():
    assert parse_date(None) is None
    assert parse_date("  ") is None
    assert parse_volume("") is None
    assert parse_daily_dose(None) is None


@pytest.mark.parametrize(
    ("parse", "cell", "value"),
    [
        (parse_volume, "20", Decimal("20")),
        (parse_volume, "20 mL", Decimal("20")),
        (parse_volume, "20ml", Decimal("20")),
        (parse_volume, "3,5", Decimal("3.5")),
        (parse_volume, "3,5 ML", Decimal("3.5")),
        (parse_volume, 3.5, Decimal("3.5")),
        (parse_volume, 20, Decimal("20")),
        (parse_concentration, "2000mcg/ml", Decimal("2000")),
        (parse_concentration, "2000 µg/mL", Decimal("2000")),
        (parse_concentration, "2 mg/mL", Decimal("2000")),
        (parse_concentration, "0,5 mg/ml", Decimal("500.0")),
        (parse_daily_dose, "400 mcg/day", Decimal("400")),
        (parse_daily_dose, "112,5", Decimal("112.5")),
        (parse_daily_dose, "0.4 mg/day", Decimal("400.0")),
        (parse_daily_dose, "400 mcg/24h", Decimal("400")),
    ],
)
def test_numbers_with_decimal_commas_and_units(parse, cell, value):
    assert parse(cell) == value


@pytest.mark.parametrize(
    ("parse", "cell", "reason"),
    [
        (parse_volume, "20 L", "not mL"),
        (parse_volume, "about 20", "not a number"),
        (parse_volume, "20 - 22", "not mL"),
        (parse_concentration, "2,000", "two ways"),
        (parse_concentration, "2,000 mcg/mL", "two ways"),
        (parse_concentration, "1.000.000", "two ways"),
        (parse_concentration, "2000 mcg/day", "not mcg/mL"),
        (parse_daily_dose, "400 mL", "not mcg/day"),
        (parse_volume, True, "not a number"),
    ],
)
def test_numbers_that_are_refused(parse, cell, reason):
    with pytest.raises(CellError, match=reason):
        parse(cell)


def test_text_and_headers_are_trimmed():
    assert clean_text("  Grace\u00a0 Hopper ") == "Grace Hopper"
    assert clean_text(12.0) == "12"
    assert header_key(" Volume added (mL) ") == "volume added"
    assert header_key("Date-of-Birth") == "date of birth"
