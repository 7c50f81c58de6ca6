from django import forms

from patients.models import Patient


class ChangeRequestForm(forms.Form):
    preferred_date = forms.DateField(
        label="Which date would suit you better?",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The clinic will phone or write to confirm a new time.",
    )
    message = forms.CharField(
        label="Your message to the clinic",
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="For example: why the date does not suit you, or the times you can come.",
    )

    def __init__(self, *args, due_by=None, **kwargs):
        super().__init__(*args, **kwargs)
        if due_by is not None:
            # A plain warning, before the patient chooses: a later date is allowed, and goes to
            # the nurses as urgent (refills.services.appointment_change_request_create).
            field = self.fields["preferred_date"]
            field.help_text = (
                f"Your pump needs its refill by {due_by.day} {due_by:%B %Y}. A later date is too late for the pump: "
                "if you choose one, the clinic will treat it as urgent and call you."
            )
            field.widget.attrs["data-due-by"] = due_by.isoformat()


class ReminderPreferencesForm(forms.Form):
    reminder_channel = forms.ChoiceField(
        label="How should we remind you?", choices=Patient.Channel.choices, widget=forms.RadioSelect
    )
    reminder_consent = forms.TypedChoiceField(
        label="Do you want reminders?",
        choices=[("yes", "Yes, remind me before each appointment"), ("no", "No, stop sending me reminders")],
        coerce=lambda v: v == "yes",
        widget=forms.RadioSelect,
    )


class InvitationForm(forms.Form):
    email = forms.EmailField(label="Email address the invitation goes to")
    carer = forms.BooleanField(label="This person is a carer (not the patient)", required=False)
    consent_note = forms.CharField(
        label="The patient's consent for this carer",
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Needed for a carer: how and when the patient agreed (e.g. 'agreed in clinic today').",
    )

    def clean(self):
        data = super().clean()
        if data.get("carer") and not (data.get("consent_note") or "").strip():
            self.add_error("consent_note", "Record how the patient agreed to this carer seeing their portal.")
        return data


class RevokeInvitationForm(forms.Form):
    reason = forms.CharField(
        label="Why (optional)", required=False, max_length=200, help_text="For example: 'typo in the address'."
    )


class RevokeCarerForm(forms.Form):
    reason = forms.CharField(
        label="Why this carer no longer sees the portal",
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="For example: 'patient withdrew consent by phone, 3 March'.",
    )


class AccountEmailChangeForm(forms.Form):
    new_email = forms.EmailField(label="New email address")
    reason = forms.CharField(
        label="Why the email changes",
        max_length=200,
        help_text="For example: 'patient asked in clinic, 3 March, and showed their new address'.",
    )
