"""Staff forms for implants: types and required fields; the rules are in pumps.services."""

from decimal import Decimal

from django import forms

from patients.forms import DateInput, plain_decimal
from patients.models import VERTEBRAL_LEVELS

from .models import Drug, PumpModel


def pump_model_label(model: PumpModel) -> str:
    return f"{model.manufacturer} {model.name} {model.reservoir_ml.normalize():f} mL"


def drug_label(drug: Drug) -> str:
    return f"{drug.name} {drug.concentration_mcg_per_ml.normalize():f} mcg/mL"


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
    starting_daily_dose_mcg = forms.DecimalField(
        label="Starting dose (mcg/day)", max_digits=8, decimal_places=2, required=False
    )
    concentration_mcg_per_ml = forms.TypedChoiceField(
        label="Concentration in the pump",
        choices=[],
        coerce=Decimal,
        required=False,
        empty_value=None,
    )
    mri_notes = forms.CharField(label="MRI notes", widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pump_model"].label_from_instance = pump_model_label
        concentrations = sorted(
            set(
                Drug.objects.filter(is_active=True, screening_only=False).values_list(
                    "concentration_mcg_per_ml", flat=True
                )
            )
        )
        self.fields["concentration_mcg_per_ml"].choices = [("", "None yet")] + [
            (f"{c:f}", f"{plain_decimal(c)} mcg/mL") for c in concentrations
        ]


class ImplantEriForm(forms.Form):
    eri_on = forms.DateField(label="ERI reported on", widget=DateInput())


class ImplantExplantForm(forms.Form):
    explanted_on = forms.DateField(label="Explanted on", widget=DateInput())
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)
