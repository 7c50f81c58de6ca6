"""How numbers read on every page, form, API label and alert: "20 mL", never "20.0 mL" or "2E+1"."""

from decimal import Decimal

import phonenumbers
from django.utils import dateformat


def plain_decimal(value: Decimal | None) -> Decimal | None:
    """400.00 -> 400, 2.50 -> 2.5 (never 4E+2): how a pre-filled number should read in a field."""
    if value is None:
        return None
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def format_number(value: Decimal) -> str:
    """A Decimal without trailing zeros or an exponent: 20.00 -> "20", 0.50 -> "0.5"."""
    return f"{value.normalize():f}"


def format_volume(ml: Decimal) -> str:
    return f"{format_number(ml)} mL"


def format_dose(mcg: Decimal, *, per: str | None = "day") -> str:
    """150.00 -> "150 mcg/day"; `per=None` for a single dose ("50 mcg")."""
    return f"{format_number(mcg)} mcg" + (f"/{per}" if per else "")


def format_concentration(mcg_per_ml: Decimal) -> str:
    return f"{format_number(mcg_per_ml)} mcg/mL"


def format_pump(model) -> str:
    """A pump model by its manufacturer, name and reservoir: "Medtronic SynchroMed II 20 mL"."""
    return f"{model.manufacturer} {model.name} {format_volume(model.reservoir_ml)}"


def format_drug(drug) -> str:
    """A drug by its name and concentration: "Baclofen 2000 mcg/mL"."""
    return f"{drug.name} {format_concentration(drug.concentration_mcg_per_ml)}"


def format_day(value, fmt: str = "j M Y") -> str:
    """A date or time as the pages print it (Django's date format codes): "5 Mar 2026", never "05 Mar".

    `fmt` as in the `date` template filter: "j M Y", "D j M", "l j F Y", "j M Y H:i".
    """
    return dateformat.format(value, fmt)


def format_phone(number, *, region: str) -> str:
    """A phone number as the clinic dials it: national format at home ("020 7946 0000"), international abroad.

    `number` is a django-phonenumber-field PhoneNumber or a string ("+44 20 7946 0000"); a string
    that does not parse is shown as it was typed.
    """
    if not number:
        return ""
    try:
        parsed = number if isinstance(number, phonenumbers.PhoneNumber) else phonenumbers.parse(str(number), region)
    except phonenumbers.NumberParseException:
        return str(number)
    if not phonenumbers.is_possible_number(parsed):
        return str(number)
    # By the country code: +44 is GB's and also Guernsey's, Jersey's and the Isle of Man's.
    same_country = parsed.country_code == phonenumbers.country_code_for_region(region.upper())
    style = phonenumbers.PhoneNumberFormat.NATIONAL if same_country else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(parsed, style)


def phone_href(number, *, region: str) -> str:
    """The tel: link of a phone number (E.164), or "" when it does not parse."""
    if not number:
        return ""
    try:
        parsed = number if isinstance(number, phonenumbers.PhoneNumber) else phonenumbers.parse(str(number), region)
    except phonenumbers.NumberParseException:
        return ""
    return "tel:" + phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def format_count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 day', '2 days', '0 refills': never '1 days'."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"
