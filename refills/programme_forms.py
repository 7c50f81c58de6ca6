"""Forms of the programme pages: the quality dashboard's period and the recall search."""

import datetime as dt

from django import forms

from core.forms import DateInput
from pumps.calculations import add_months
from pumps.models import Drug, PumpModel

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


class RecallSearchForm(forms.Form):
    STATUS_CHOICES = [("", "Active and explanted"), ("active", "Still implanted"), ("past", "Explanted")]

    pump_model = forms.ModelChoiceField(queryset=PumpModel.objects.order_by("name", "reservoir_ml"), required=False)
    serial_from = forms.CharField(max_length=64, required=False, label="Serial from")
    serial_to = forms.CharField(
        max_length=64,
        required=False,
        label="Serial to",
        help_text="Serials are compared as text: give both ends with the same number of characters.",
    )
    catheter_model = forms.CharField(max_length=100, required=False)
    implanted_from = forms.DateField(widget=DateInput(), required=False)
    implanted_to = forms.DateField(widget=DateInput(), required=False)
    drug = forms.ModelChoiceField(
        queryset=Drug.objects.order_by("name", "concentration_mcg_per_ml"), required=False, label="Drug product"
    )
    drug_lot = forms.CharField(max_length=64, required=False, help_text="Any fill or refill with this lot.")
    status = forms.ChoiceField(choices=STATUS_CHOICES, required=False, label="Pumps")

    def clean(self):
        data = super().clean()
        criteria = ("pump_model", "serial_from", "serial_to", "catheter_model", "implanted_from", "implanted_to")
        if not any(data.get(name) for name in (*criteria, "drug", "drug_lot")) and not self.errors:
            raise forms.ValidationError("Give at least one criterion: a model, serials, catheter, dates, drug or lot.")
        start, end = data.get("serial_from", ""), data.get("serial_to", "")
        if start and end:
            if len(start.strip()) != len(end.strip()):
                self.add_error("serial_to", "Give both ends of the serial range with the same number of characters.")
            elif end.strip() < start.strip():
                self.add_error("serial_to", "The end of the serial range must come after its start.")
        opened, closed = data.get("implanted_from"), data.get("implanted_to")
        if opened and closed and closed < opened:
            self.add_error("implanted_to", "The end of the implant dates must be on or after their start.")
        return data
