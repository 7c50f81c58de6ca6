"""Staff forms for the care schedule: booking, the refill visit, dose changes.

Types and required fields only; the safe window, capacity, conflicts and every clinical check
are the services' (their ValidationError lands on the form via `add_service_errors`).
"""

import datetime as dt

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone

from core.forms import DateInput, DateTimeLocalInput
from itbclinic.accounts.roles import Role
from patients.models import Patient
from pumps.forms import ImplantRegisterForm
from pumps.models import DosePrescription, Drug

from .models import SAFETY_CHECK_ITEMS, Appointment, RefillVisit, ReservoirEmptying

User = get_user_model()


def clinician_queryset():
    return User.objects.filter(is_active=True, groups__name=Role.CLINICIAN.value).order_by("last_name", "first_name")


class ScheduleField(forms.CharField):
    """Flex steps or periodic boluses typed one a line: "00:00 12.5" (start and mcg/hour, flex) or
    "08:00 25" (time and mcg, periodic bolus). Becomes the list the services sum; the rules
    (steps cover the day, at most 13) are the services'."""

    widget = forms.Textarea(attrs={"rows": 4, "placeholder": "00:00 15\n07:00 20\n22:00 15"})

    def __init__(self, **kwargs):
        kwargs.setdefault("label", "Flex steps or boluses (one a line: HH:MM and mcg/hour or mcg)")
        kwargs.setdefault("max_length", 2000)
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, list):
            return "\n".join(
                f"{row.get('start') or row.get('at')} {row.get('mcg_per_hour') or row.get('mcg')}" for row in value
            )
        return value

    def to_python(self, value):
        text = super().to_python(value)
        return [] if not text.strip() else text

    def parse(self, *, text, dosing_mode: str) -> list[dict]:
        rows = []
        for number, line in enumerate(text.strip().splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise ValidationError(f"Line {number}: write a time and a number, e.g. 07:00 20.")
            key = "start" if dosing_mode == DosePrescription.Mode.FLEX else "at"
            amount = "mcg_per_hour" if dosing_mode == DosePrescription.Mode.FLEX else "mcg"
            rows.append({key: parts[0], amount: parts[1]})
        return rows


class ScheduleFormMixin:
    def clean(self):
        data = super().clean()
        text = data.get("schedule")
        if isinstance(text, str):
            try:
                data["schedule"] = self.fields["schedule"].parse(text=text, dosing_mode=data.get("dosing_mode", ""))
            except ValidationError as exc:
                self.add_error("schedule", exc)
        return data


TIME_CHOICES = [(f"{h:02d}:{m:02d}", f"{h:02d}:{m:02d}") for h in range(8, 18) for m in (0, 30)]


def aware_start(*, day: dt.date, time: str) -> dt.datetime:
    """The clinic-local wall-clock time on that day (DST-safe)."""
    hour, minute = (int(part) for part in time.split(":"))
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute)))


def first_slot_after(now: dt.datetime) -> tuple[dt.date, str]:
    """The first bookable (day, time) strictly after `now`, clinic-local: today while a slot is
    left, else the first slot of tomorrow. A proposal is never already past."""
    today = timezone.localdate(now)
    for value, _label in TIME_CHOICES:
        if aware_start(day=today, time=value) > now:
            return today, value
    return today + dt.timedelta(days=1), TIME_CHOICES[0][0]


class ChangeRequestDeclineForm(forms.Form):
    reason = forms.CharField(
        label="Why the appointment cannot be changed (the patient reads this)",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=1000,
    )


class AppointmentBookForm(forms.Form):
    kind = forms.ChoiceField(choices=Appointment.Kind.choices, initial=Appointment.Kind.REFILL)
    day = forms.DateField(label="Date", widget=DateInput())
    time = forms.ChoiceField(choices=TIME_CHOICES, initial="10:00")
    location = forms.ChoiceField(
        label="Where",
        choices=Appointment.Location.choices,
        initial=Appointment.Location.CLINIC,
        required=False,
        help_text="A home visit is at the patient's address and counts against the day's home visits.",
    )
    place = forms.CharField(label="Room (at the clinic)", max_length=200, required=False)

    def clean_location(self) -> str:
        # Not sent (an older page, the API's form posts): at the clinic, as before home visits.
        return self.cleaned_data.get("location") or Appointment.Location.CLINIC

    outside_window_reason = forms.CharField(
        label="Reason for booking outside the safe window (clinician)",
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=2000,
    )
    override_reason = forms.CharField(
        label="Urgent: reason to book on a closed or full day (clinician)",
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
    override_reason = forms.CharField(
        label="Urgent: reason to book on a closed or full day (clinician)",
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=2000,
    )

    def starts_at(self) -> dt.datetime:
        return aware_start(day=self.cleaned_data["day"], time=self.cleaned_data["time"])


class CalendarBookForm(AppointmentBookForm):
    """Booking from the week calendar: the same booking, with the patient chosen on the form."""

    patient = forms.ModelChoiceField(queryset=Patient.objects.none(), empty_label="Choose a patient")
    field_order = ["patient", "kind", "day", "time", "location", "place", "notes"]

    def __init__(self, *args, patients: QuerySet[Patient], **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["patient"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = patients


class AppointmentCancelForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)


class RefillVisitForm(ScheduleFormMixin, forms.Form):
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
    drug_lot_expires_on = forms.DateField(
        label="Drug lot expiry date",
        widget=DateInput(),
        help_text="A label with a month only expires on its last day.",
    )
    kit_lot = forms.CharField(label="Refill kit lot number", max_length=64)
    daily_dose_after_mcg = forms.DecimalField(
        label="Daily dose (mcg/day)",
        max_digits=8,
        decimal_places=2,
        required=False,
        widget=forms.NumberInput(attrs={"step": "1", "inputmode": "decimal"}),
        help_text="As prescribed. On a constant-flow pump it follows from the flow and the concentration.",
    )
    prescriber = forms.ModelChoiceField(
        label="Prescribing clinician (when the dose or concentration changes)",
        queryset=User.objects.none(),
        required=False,
        empty_label="No change: the prescribed dose",
    )
    titration_confirmed = forms.BooleanField(
        label="I confirm this dose although it is outside the usual range or titration limits", required=False
    )
    schedule = ScheduleField(required=False)
    patient_bolus_mcg = forms.DecimalField(
        label="Patient bolus (mcg, Prometra PTC)", max_digits=8, decimal_places=2, required=False
    )
    patient_boluses_per_day = forms.IntegerField(
        label="Patient boluses allowed per day", min_value=1, max_value=48, required=False
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
    battery_event_on = forms.DateField(
        label="Date the pump logged the ERI / end of service", widget=DateInput(), required=False
    )
    post_fill_check = forms.ChoiceField(
        label="Post-fill check", choices=RefillVisit.PostFillCheck.choices, initial=RefillVisit.PostFillCheck.PASSED
    )
    post_fill_discrepancy_ml = forms.DecimalField(
        label="Post-fill discrepancy (mL)", max_digits=5, decimal_places=2, required=False
    )
    post_fill_check_reason = forms.CharField(
        label="Why the post-fill check was not done", required=False, max_length=2000
    )
    bridge_bolus_mcg = forms.DecimalField(
        label="Bridge or priming bolus (mcg)", max_digits=8, decimal_places=2, required=False
    )
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=4000)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The safety checklist: each item done or not done (no default: the nurse answers each),
        # a skipped item with its reason (the rule is the service's: `safety_checklist_errors`).
        for name, label in SAFETY_CHECK_ITEMS.items():
            self.fields[name] = forms.ChoiceField(
                label=label,
                choices=[(RefillVisit.SafetyCheck.DONE, "Done"), (RefillVisit.SafetyCheck.NOT_DONE, "Not done")],
                widget=forms.RadioSelect,
            )
            self.fields[f"{name}_reason"] = forms.CharField(
                label=f"Reason: {label.lower()} not done", required=False, max_length=2000
            )
        self.fields["prescriber"].queryset = clinician_queryset()
        self.fields["prescriber"].label_from_instance = lambda user: user.get_full_name() or user.get_username()

    def safety_checklist(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        """The checklist's items with their reason fields, in order, for the template."""
        return [(self[name], self[f"{name}_reason"]) for name in SAFETY_CHECK_ITEMS]


class DoseChangeForm(ScheduleFormMixin, forms.Form):
    daily_dose_mcg = forms.DecimalField(
        label="New daily dose (mcg/day)",
        max_digits=8,
        decimal_places=2,
        required=False,
        help_text="For flex dosing, leave blank: the steps are summed.",
    )
    effective_at = forms.DateTimeField(label="Effective from", widget=DateTimeLocalInput())
    dosing_mode = forms.ChoiceField(
        label="Dosing mode", choices=DosePrescription.Mode.choices, initial=DosePrescription.Mode.SIMPLE_CONTINUOUS
    )
    schedule = ScheduleField(required=False)
    patient_bolus_mcg = forms.DecimalField(
        label="Patient bolus (mcg, Prometra PTC)", max_digits=8, decimal_places=2, required=False
    )
    patient_boluses_per_day = forms.IntegerField(
        label="Patient boluses allowed per day", min_value=1, max_value=48, required=False
    )
    titration_confirmed = forms.BooleanField(
        label="I confirm this dose although it is outside the usual range or titration limits", required=False
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)


class ReservoirEmptyForm(forms.Form):
    emptied_at = forms.DateTimeField(label="Emptied at", widget=DateTimeLocalInput())
    reason = forms.ChoiceField(choices=ReservoirEmptying.Reason.choices, initial=ReservoirEmptying.Reason.MRI)
    volume_removed_ml = forms.DecimalField(
        label="Volume withdrawn (mL)", max_digits=5, decimal_places=2, required=False
    )
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=2000)


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


CORRECTION_REASON_HELP = "Kept with the record marked entered in error, e.g. “Volume typed as 2 mL: 20 mL were added”."


def correction_reason_field() -> forms.CharField:
    return forms.CharField(
        label="What was wrong",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
        help_text=CORRECTION_REASON_HELP,
    )


class RefillVisitCorrectForm(RefillVisitForm):
    correction_reason = correction_reason_field()


class DoseCorrectForm(DoseChangeForm):
    correction_reason = correction_reason_field()


class ImplantEriCorrectForm(forms.Form):
    eri_on = forms.DateField(
        label="Correct ERI date",
        widget=DateInput(),
        required=False,
        help_text="Leave it empty if the pump never reported an ERI.",
    )
    correction_reason = correction_reason_field()


class ImplantCorrectForm(ImplantRegisterForm):
    correction_reason = correction_reason_field()
