"""Staff forms for implants: types and required fields; the rules are in pumps.services."""

from decimal import Decimal

from django import forms

from core.forms import DateInput
from patients.models import VERTEBRAL_LEVELS

from .models import Drug, PumpModel


class ImplantRegisterForm(forms.Form):
    pump_model = forms.ModelChoiceField(
        label="Pump model", queryset=PumpModel.objects.filter(is_active=True), empty_label="Choose a model"
    )
    serial_number = forms.CharField(max_length=64)
    implanted_on = forms.DateField(label="Implanted on", widget=DateInput())
    catheter_model = forms.CharField(max_length=100, required=False)
    catheter_tip_level = forms.ChoiceField(
        label="Catheter tip level", choices=[("", "Choose a level"), *VERTEBRAL_LEVELS]
    )
    surgeon = forms.CharField(max_length=200)
    hospital = forms.CharField(max_length=200)
    # The fill in theatre: the forecast starts at the implant (docs/domain.md "What feeds the forecast").
    fill_drug = forms.ModelChoiceField(
        label="Drug and concentration filled",
        queryset=Drug.objects.filter(is_active=True, screening_only=False),
        empty_label="Choose the drug",
        required=False,
    )
    fill_volume_ml = forms.DecimalField(
        label="Volume filled (mL)", max_digits=5, decimal_places=2, required=False, min_value=Decimal("0.01")
    )
    fill_drug_lot = forms.CharField(label="Drug lot number", max_length=64, required=False)
    fill_alarm_threshold_ml = forms.DecimalField(
        label="Low-reservoir alarm (mL)", max_digits=4, decimal_places=1, required=False
    )
    starting_daily_dose_mcg = forms.DecimalField(
        label="Starting dose (mcg/day)", max_digits=8, decimal_places=2, required=False, min_value=Decimal("0.01")
    )
    flow_ml_per_day = forms.DecimalField(
        label="Labelled flow (mL/day, constant-flow pumps)", max_digits=6, decimal_places=3, required=False
    )
    mri_notes = forms.CharField(label="MRI notes", widget=forms.Textarea(attrs={"rows": 2}), required=False)


class ImplantFillForm(forms.Form):
    """The theatre fill of a pump registered without it (the same fields as at registration)."""

    fill_drug = ImplantRegisterForm.base_fields["fill_drug"]
    fill_volume_ml = ImplantRegisterForm.base_fields["fill_volume_ml"]
    fill_drug_lot = ImplantRegisterForm.base_fields["fill_drug_lot"]
    fill_alarm_threshold_ml = ImplantRegisterForm.base_fields["fill_alarm_threshold_ml"]
    starting_daily_dose_mcg = ImplantRegisterForm.base_fields["starting_daily_dose_mcg"]
    flow_ml_per_day = ImplantRegisterForm.base_fields["flow_ml_per_day"]
    titration_confirmed = forms.BooleanField(
        label="I confirm this starting dose although it is outside the usual range", required=False
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["fill_drug"].required = True
        self.fields["fill_volume_ml"].required = True
        self.fields["fill_drug_lot"].required = True


class ImplantReplaceForm(ImplantRegisterForm):
    """One action: the old pump out, the new one in with its fill."""

    explanted_on = forms.DateField(label="Old pump explanted on", widget=DateInput())
    explant_reason = forms.CharField(
        label="Why it was replaced", widget=forms.Textarea(attrs={"rows": 2}), max_length=2000
    )


class ImplantEriForm(forms.Form):
    eri_on = forms.DateField(label="ERI reported on", widget=DateInput())


class ImplantExplantForm(forms.Form):
    explanted_on = forms.DateField(label="Explanted on", widget=DateInput())
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)
