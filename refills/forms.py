"""Staff forms for the care schedule: booking, the refill visit, dose changes.

Types and required fields only; the safe window, capacity, conflicts and every clinical check
are the services' (their ValidationError lands on the form via `add_service_errors`).
"""

import datetime as dt

from django import forms
from django.utils import timezone

from patients.forms import DateInput, DateTimeLocalInput
from pumps.forms import drug_label
from pumps.models import DosePrescription, Drug

from .models import Appointment, RefillVisit

TIME_CHOICES = [(f"{h:02d}:{m:02d}", f"{h:02d}:{m:02d}") for h in range(8, 18) for m in (0, 30)]


def aware_start(*, day: dt.date, time: str) -> dt.datetime:
    """The clinic-local wall-clock time on that day (DST-safe)."""
    hour, minute = (int(part) for part in time.split(":"))
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute)))


class AppointmentBookForm(forms.Form):
    kind = forms.ChoiceField(choices=Appointment.Kind.choices, initial=Appointment.Kind.REFILL)
    day = forms.DateField(label="Date", widget=DateInput())
    time = forms.ChoiceField(choices=TIME_CHOICES, initial="10:00")
    place = forms.CharField(max_length=200, required=False)
    outside_window_reason = forms.CharField(
        label="Reason for booking outside the safe window (clinician)",
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=2000,
    )
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=2000)

    def starts_at(self) -> dt.datetime:
        return aware_start(day=self.cleaned_data["day"], time=self.cleaned_data["time"])


class AppointmentMoveForm(forms.Form):
    day = forms.DateField(label="New date", widget=DateInput())
    time = forms.ChoiceField(choices=TIME_CHOICES, initial="10:00")
    place = forms.CharField(max_length=200, required=False)
    outside_window_reason = forms.CharField(
        label="Reason for booking outside the safe window (clinician)",
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=2000,
    )

    def starts_at(self) -> dt.datetime:
        return aware_start(day=self.cleaned_data["day"], time=self.cleaned_data["time"])


class AppointmentCancelForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)


class RefillVisitForm(forms.Form):
    performed_at = forms.DateTimeField(label="Refilled at", widget=DateTimeLocalInput())
    actual_residual_ml = forms.DecimalField(
        label="Actual residual aspirated (mL)",
        max_digits=5,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "0.1", "inputmode": "decimal"}),
    )
    volume_added_ml = forms.DecimalField(
        label="Volume added (mL)",
        max_digits=5,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "0.1", "inputmode": "decimal"}),
    )
    drug = forms.ModelChoiceField(
        label="Drug and concentration",
        queryset=Drug.objects.filter(is_active=True, screening_only=False),
        empty_label="Choose the drug",
    )
    drug_lot = forms.CharField(label="Drug lot number", max_length=64)
    daily_dose_after_mcg = forms.DecimalField(
        label="Daily dose (mcg/day)",
        max_digits=8,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "1", "inputmode": "decimal"}),
    )
    dosing_mode = forms.ChoiceField(
        label="Dosing mode", choices=DosePrescription.Mode.choices, initial=DosePrescription.Mode.SIMPLE_CONTINUOUS
    )
    alarm_threshold_ml = forms.DecimalField(
        label="Low-reservoir alarm (mL)",
        max_digits=4,
        decimal_places=1,
        widget=forms.NumberInput(attrs={"step": "0.1", "inputmode": "decimal"}),
    )
    battery_status = forms.ChoiceField(
        label="Battery status read from the pump",
        choices=RefillVisit.BatteryStatus.choices,
        initial=RefillVisit.BatteryStatus.OK,
    )
    bridge_bolus_mcg = forms.DecimalField(
        label="Bridge or priming bolus (mcg)", max_digits=8, decimal_places=2, required=False
    )
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=4000)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["drug"].label_from_instance = drug_label


class DoseChangeForm(forms.Form):
    daily_dose_mcg = forms.DecimalField(label="New daily dose (mcg/day)", max_digits=8, decimal_places=2)
    effective_at = forms.DateTimeField(label="Effective from", widget=DateTimeLocalInput())
    dosing_mode = forms.ChoiceField(
        label="Dosing mode", choices=DosePrescription.Mode.choices, initial=DosePrescription.Mode.SIMPLE_CONTINUOUS
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)


class WorklistFilterForm(forms.Form):
    q = forms.CharField(label="Find a patient", required=False, max_length=100)
    urgency = forms.ChoiceField(
        label="Urgency",
        required=False,
        choices=[
            ("", "All"),
            ("overdue", "Overdue"),
            ("urgent", "Urgent"),
            ("soon", "Due soon"),
            ("later", "Later"),
        ],
    )
    unbooked = forms.BooleanField(label="Nothing booked only", required=False)
