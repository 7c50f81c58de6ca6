"""Forms of the programme pages: the quality dashboard's period and the recall search."""

import datetime as dt

from django import forms

from core.forms import DateInput
from core.validators import validate_no_control_characters
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
    kit_lot = forms.CharField(
        max_length=64, required=False, label="Refill kit lot", help_text="Any refill done with a kit of this lot."
    )
    status = forms.ChoiceField(choices=STATUS_CHOICES, required=False, label="Pumps")

    def clean(self):
        data = super().clean()
        criteria = ("pump_model", "serial_from", "serial_to", "catheter_model", "implanted_from", "implanted_to")
        if not any(data.get(name) for name in (*criteria, "drug", "drug_lot", "kit_lot")) and not self.errors:
            raise forms.ValidationError(
                "Give at least one criterion: a model, serials, catheter, dates, drug, drug lot or kit lot."
            )
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


class FieldSafetyFlagForm(forms.Form):
    """The notice that flags every pump of a recall search."""

    title = forms.CharField(max_length=200, label="Notice title", validators=[validate_no_control_characters])
    reference = forms.CharField(
        max_length=64,
        label="Manufacturer's reference",
        validators=[validate_no_control_characters],
        help_text="Flagging again under the same reference adds only the pumps not yet flagged.",
    )
    manufacturer_text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=8000,
        label="What the manufacturer says and what to do",
    )


class FieldSafetyActionForm(forms.Form):
    action_taken = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=4000,
        label="Action taken for this patient",
        help_text="What was done or decided (e.g. pump interrogated, no fault; replacement booked).",
    )
