"""Figures the API tests report at the end of the run (matrix size, schemathesis cases)."""

from collections import Counter

FIGURES: Counter = Counter()


def record(name: str, amount: int = 1) -> None:
    FIGURES[name] += amount
