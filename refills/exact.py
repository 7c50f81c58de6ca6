"""Exact arithmetic shared by the refill calculations and the forecast (pure, no Django).

Days are computed with exact rational arithmetic (``fractions.Fraction``): a float, or a daily
volume rounded to a finite number of digits, can land on the wrong side of a whole number
(17 / 0.34 is 49.99999999999999 in float) and lose or invent a day of drug. Decimal results meant
for display are divided in a 28-significant-digit context.
"""

from decimal import Decimal, localcontext
from fractions import Fraction

DISPLAY_PRECISION = 28


def exact(name: str, value: Decimal, *, allow_zero: bool) -> Fraction:
    """`value` as an exact fraction, refused (naming it) unless a finite, non-negative Decimal."""
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal, got {value!r}")
    if not value.is_finite() or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {value}")
    return Fraction(value)


def to_decimal(value: Fraction) -> Decimal:
    """A fraction for display, to 28 significant digits (exact where it terminates)."""
    with localcontext(prec=DISPLAY_PRECISION):
        return Decimal(value.numerator) / Decimal(value.denominator)
