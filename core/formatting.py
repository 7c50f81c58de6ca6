"""How numbers read on every page, form, API label and alert: "20 mL", never "20.0 mL" or "2E+1"."""

from decimal import Decimal


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
