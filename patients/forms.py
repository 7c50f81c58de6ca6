"""Staff forms for patients and screening trials: types and required fields only.

The clinical rules live in the services; a service's ValidationError comes back onto the form
through `core.forms.add_service_errors`, so the nurse sees the message next to the field it names.
"""

from decimal import Decimal

from django import forms
from django.utils import timezone

from core.formatting import format_day, format_dose
from core.forms import DateInput, DateTimeLocalInput

from .models import AshworthScore, Patient, ScreeningTrial, TrialStep


class PatientForm(forms.ModelForm):
    class Meta:
        model = Patient
        fields = [
            "mrn",
            "given_name",
            "family_name",
            "date_of_birth",
            "spasticity_origin",
            "diagnosis",
            "diagnosis_detail",
            "sci_level",
            "referred_on",
            "risk_high_sci",
            "risk_communication_difficulty",
            "risk_previous_withdrawal",
            "email",
            "phone",
            "reminder_consent",
            "reminder_channel",
            "notes",
        ]
        widgets = {
            "date_of_birth": DateInput(),
            "referred_on": DateInput(),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }


class TrialStartForm(forms.Form):
    started_on = forms.DateField(widget=DateInput())
    kind = forms.ChoiceField(choices=ScreeningTrial.Kind.choices, initial=ScreeningTrial.Kind.BOLUS)
    positivity_rule = forms.ChoiceField(
        label="Rule for a positive trial",
        choices=ScreeningTrial.Rule.choices,
        initial=ScreeningTrial.Rule.MAS_LOWER_LIMB_MEAN_1,
    )
    goals = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


class TrialStepForm(forms.Form):
    given_at = forms.DateTimeField(label="Given at", widget=DateTimeLocalInput())
    dose_mcg = forms.DecimalField(label="Dose (mcg)", max_digits=8, decimal_places=2, initial=Decimal("50"))
    volume_ml = forms.DecimalField(label="Volume (mL)", max_digits=6, decimal_places=2, initial=Decimal("1"))
    route = forms.ChoiceField(choices=TrialStep.Route.choices, initial=TrialStep.Route.LP_BOLUS)
    infusion_rate_mcg_per_day = forms.DecimalField(
        label="Infusion rate (mcg/day, catheter only)", max_digits=8, decimal_places=2, required=False
    )
    # Its own id: the trial page shows this form beside the assessment form (one id per page).
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "id": "id_step_notes"}), required=False)


HOURS_CHOICES = [(h, f"{h} h" if h != "0" else "Baseline (0 h)") for h in ("0", "1", "2", "4", "6", "8")]
PENN_CHOICES = [("", "Not scored")] + [(str(i), str(i)) for i in range(5)]
MAS_CHOICES = [("", "—"), *AshworthScore.Score.choices]


class TrialAssessmentForm(forms.Form):
    """Scores at one time point: Penn spasm frequency and the MAS of each muscle group examined."""

    step = forms.ModelChoiceField(queryset=TrialStep.objects.none(), required=False, label="After dose")
    hours_after = forms.TypedChoiceField(
        label="Time point", choices=HOURS_CHOICES, coerce=Decimal, initial="0", empty_value=None
    )
    assessed_at = forms.DateTimeField(label="Assessed at", widget=DateTimeLocalInput())
    penn_score = forms.TypedChoiceField(
        label="Penn spasm frequency (0–4)", choices=PENN_CHOICES, coerce=int, required=False, empty_value=None
    )
    adverse_effects = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "id": "id_assessment_notes"}), required=False)

    def __init__(self, *args, trial: ScreeningTrial, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["step"].queryset = trial.steps.filter(entered_in_error=False)
        self.fields["step"].label_from_instance = (
            lambda s: f"{format_dose(s.dose_mcg, per=None)} at {format_day(timezone.localtime(s.given_at), 'j M H:i')}"
        )
        for value, label in AshworthScore.MuscleGroup.choices:
            self.fields[f"mas_{value}"] = forms.ChoiceField(label=label, choices=MAS_CHOICES, required=False)

    @property
    def mas_fields(self):
        return [self[f"mas_{value}"] for value in AshworthScore.MuscleGroup.values]

    def ashworth(self) -> dict[str, str]:
        return {
            group: self.cleaned_data[f"mas_{group}"]
            for group in AshworthScore.MuscleGroup.values
            if self.cleaned_data.get(f"mas_{group}")
        }


class TrialVerdictForm(forms.Form):
    verdict = forms.ChoiceField(choices=ScreeningTrial.Verdict.choices)
    positivity_rule = forms.ChoiceField(label="Rule applied", choices=ScreeningTrial.Rule.choices)
    effective_bolus_mcg = forms.DecimalField(
        label="Effective bolus (mcg)", max_digits=8, decimal_places=2, required=False
    )
    effect_hours = forms.DecimalField(label="Effect lasted (hours)", max_digits=5, decimal_places=2, required=False)
    verdict_notes = forms.CharField(label="Notes", widget=forms.Textarea(attrs={"rows": 2}), required=False)


class PatientContactForm(forms.ModelForm):
    """The contact card of the staff patient page: how to reach the patient, and where they live."""

    class Meta:
        model = Patient
        fields = [
            "email",
            "phone",
            "address_line1",
            "address_line2",
            "address_town",
            "address_postcode",
            "reminder_consent",
            "reminder_channel",
        ]
        labels = {"reminder_consent": "The patient agrees to reminders"}


class PatientStatusForm(forms.Form):
    status = forms.ChoiceField(choices=Patient.Status.choices)
    reason = forms.CharField(
        label="Why",
        max_length=100,
        help_text="Kept in the patient's history, e.g. “Moved to the Leeds clinic” or “GP letter of 3 March”.",
    )
