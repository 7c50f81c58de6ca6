"""Public holidays of the clinic's country and region, from the `holidays` library.

The clinic closes on them as well as on its own closed days (docs/domain.md "Where refills
happen"). The country (ISO 3166-1 alpha-2, e.g. "GB") and the optional region ("ENG") are clinic
settings (`ClinicSettings.holiday_country` / `holiday_subdivision`); no country means no public
holidays. Names come in the clinic's language when the library has it ("Christmas Day").
"""

import datetime as dt
from functools import lru_cache

import holidays
from django.conf import settings


@lru_cache(maxsize=1)
def supported_countries() -> dict[str, list[str]]:
    """Country code → its region codes, as the installed `holidays` release knows them."""
    countries: dict[str, list[str]] = holidays.list_supported_countries()
    return countries


def holiday_setting_errors(*, country: str, subdivision: str) -> dict[str, str]:
    """Why a (country, region) pair cannot be used, by field; empty when it can."""
    country, subdivision = country.strip().upper(), subdivision.strip().upper()
    if not country:
        return {"holiday_subdivision": "Choose the country before its region."} if subdivision else {}
    known = supported_countries()
    if country not in known:
        return {
            "holiday_country": f"“{country}” is not a country whose public holidays are known: give its "
            "two-letter code, e.g. GB, IE, FR or DE."
        }
    regions = known[country]
    if subdivision and subdivision not in regions:
        listed = ", ".join(regions) if regions else "none"
        return {"holiday_subdivision": f"“{subdivision}” is not a region of {country} (its regions: {listed})."}
    return {}


def _language(country: str) -> str | None:
    """The clinic's language (LANGUAGE_CODE "en-gb" → "en_GB") if the country's names exist in it."""
    languages = set(getattr(holidays.country_holidays(country), "supported_languages", ()) or ())
    code = settings.LANGUAGE_CODE.replace("-", "_")
    language, _, region = code.partition("_")
    for candidate in (f"{language}_{region.upper()}" if region else language, language, "en_GB", "en_US"):
        if candidate in languages:
            return candidate
    return None


@lru_cache(maxsize=64)
def _year(country: str, subdivision: str, year: int) -> dict[dt.date, str]:
    calendar = holidays.country_holidays(country, subdiv=subdivision or None, years=year, language=_language(country))
    return dict(calendar.items())


def public_holidays(*, start: dt.date, end: dt.date, country: str, subdivision: str = "") -> dict[dt.date, str]:
    """The public holidays from `start` to `end` (inclusive), each with its name."""
    country, subdivision = country.strip().upper(), subdivision.strip().upper()
    if not country or end < start or holiday_setting_errors(country=country, subdivision=subdivision):
        return {}
    found: dict[dt.date, str] = {}
    for year in range(start.year, end.year + 1):
        found.update({day: name for day, name in _year(country, subdivision, year).items() if start <= day <= end})
    return found
