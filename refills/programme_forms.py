"""Forms of the programme pages: the quality dashboard's period and the recall search."""

import datetime as dt

from django import forms

from core.forms import DateInput
from pumps.calculations import add_months

# A period longer than this is refused: the figures are for running the programme, not archaeology.
MAX_PERIOD_DAYS = 366 * 5


def default_period(today: dt.date) -> tuple[dt.date, dt.date]:
    """The last twelve months: from the first day of the month eleven months back to today."""
    return add_months(day=today.replace(day=1), months=-11), today


class QualityPeriodForm(forms.Form):
    start = forms.DateField(widget=DateInput(), label="From")
    end = forms.DateField(widget=DateInput(), label="To")

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end < start:
                self.add_error("end", "The end of the period must be on or after its start.")
            elif (end - start).days > MAX_PERIOD_DAYS:
                self.add_error("start", "Choose a period of at most five years.")
        return data
