"""The care schedule: refill visits, appointments, reminders, alerts. Knows patients and pumps."""

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower
from simple_history.models import HistoricalRecords

from core.records import ClinicalRecord, ClinicalRecordQuerySet
from core.validators import validate_no_control_characters
from patients.models import Patient
from pumps.models import DosePrescription, Drug, Implant

from .public_holidays import holiday_setting_errors


def default_reminder_offsets() -> list[int]:
    return [14, 2]


def default_closed_weekdays() -> list[int]:
    return [5, 6]  # Saturday, Sunday (Monday is 0)


def default_usual_dose_ranges() -> dict[str, list[int]]:
    """Usual maintenance doses in mcg/day by spasticity origin, and for children [S14][S47]."""
    return {"spinal": [300, 800], "cerebral": [90, 703], "other": [90, 800], "child": [25, 1000]}


class ClinicSettings(models.Model):
    """The clinic's own settings (one row), editable by the clinic admin."""

    name = models.CharField(max_length=200, default="ITB Clinic")
    phone = models.CharField(max_length=32, default="+44 20 7946 0000")
    address = models.TextField(default="Neurology outpatients, level 2")
    nursing_email = models.EmailField(default="itb-nurses@clinic.invalid")
    safety_margin_days = models.PositiveSmallIntegerField(  # [S8]
        default=5, validators=[MaxValueValidator(30)], help_text="Refill due this many days before the alarm."
    )
    reminder_offsets_days = models.JSONField(
        default=default_reminder_offsets, help_text="Days before an appointment that patients are reminded."
    )
    reminder_hour = models.PositiveSmallIntegerField(default=9, validators=[MaxValueValidator(23)])
    unbooked_alert_days = models.PositiveSmallIntegerField(
        default=21, help_text="Alert nurses when due-by is this close and no refill is booked."
    )
    urgent_alert_days = models.PositiveSmallIntegerField(
        default=7, help_text="Urgent daily alert when the alarm date is this close and nothing is booked."
    )
    replacement_alert_days = models.PositiveSmallIntegerField(default=90)
    clinicians_email = models.EmailField(
        default="itb-clinicians@clinic.invalid", help_text="Battery, replacement and ERI alerts are emailed here."
    )
    no_show_after_hours = models.PositiveSmallIntegerField(
        default=4, help_text="A booked refill with no visit this many hours after its start is a no-show."
    )
    refill_window_days = models.PositiveSmallIntegerField(
        default=21, help_text="A refill is proposed within this many days before its due-by date."
    )
    refills_per_day = models.PositiveSmallIntegerField(default=8)
    annual_review_notice_days = models.PositiveSmallIntegerField(
        default=28,
        validators=[MaxValueValidator(180)],
        help_text="The yearly review is proposed this many days before it falls due (a year after the last).",
    )
    # A nurse travels to a home visit: those are counted against their own capacity, not the
    # clinic's refill slots (docs/domain.md "Where refills happen").
    home_visits_per_day = models.PositiveSmallIntegerField(
        default=3, help_text="Home visits (of any kind) a day; they do not take a clinic refill slot."
    )
    closed_weekdays = models.JSONField(default=default_closed_weekdays, blank=True)
    # Public holidays (refills/public_holidays.py): closed as well as the weekly days and each
    # ClosedDay. The country is the clinic's own data, so it lives here rather than in settings.py.
    holiday_country = models.CharField(
        "country for public holidays",
        max_length=3,
        blank=True,
        default="GB",
        help_text="Two-letter country code, e.g. GB, IE, FR. Leave empty for no public holidays.",
    )
    holiday_subdivision = models.CharField(
        "region for public holidays",
        max_length=10,
        blank=True,
        default="ENG",
        help_text="The region's code if its holidays differ, e.g. ENG, SCT, WLS or NIR in GB.",
    )
    default_place = models.CharField(
        max_length=200, default="ITB clinic room 2", validators=[validate_no_control_characters]
    )
    # Escalation: urgent alerts also go by SMS to the on-call phone, and again (to both lists)
    # when nobody acknowledges them in time (docs/domain.md "Events that must escalate").
    # On the emergency pump passport: the number a patient or an emergency department rings at
    # any hour. Not the on-call phone below (that one receives the urgent alerts' texts).
    emergency_phone = models.CharField(
        "24-hour number", max_length=32, blank=True, help_text="On the pump passport: the clinic's 24-hour number."
    )
    on_call_phone = models.CharField(
        max_length=32, blank=True, help_text="Urgent alerts are texted here (international format)."
    )
    escalate_after_minutes = models.PositiveSmallIntegerField(
        default=60, help_text="An urgent alert nobody has acknowledged after this long is escalated again."
    )
    # Entries that cannot be true (docs/domain.md): clock skew allowed for "now", titration limits.
    clock_skew_minutes = models.PositiveSmallIntegerField(default=5, validators=[MaxValueValidator(60)])
    titration_max_increase_pct = models.PositiveSmallIntegerField(default=20)
    titration_max_increase_cerebral_pct = models.PositiveSmallIntegerField(default=15)
    titration_max_decrease_pct = models.PositiveSmallIntegerField(default=20)
    usual_dose_ranges = models.JSONField(
        default=default_usual_dose_ranges, help_text="Usual daily doses (mcg/day): outside them asks to confirm."
    )

    history = HistoricalRecords()

    class Meta:
        verbose_name_plural = "clinic settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(id=1),
                name="clinicsettings_singleton",
                violation_error_message="The clinic has one settings record: edit that one.",
            )
        ]

    def __str__(self) -> str:
        return f"Settings of {self.name}"

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)

    def clean(self) -> None:
        super().clean()
        self.holiday_country = self.holiday_country.strip().upper()
        self.holiday_subdivision = self.holiday_subdivision.strip().upper()
        errors = holiday_setting_errors(country=self.holiday_country, subdivision=self.holiday_subdivision)
        if errors:
            raise ValidationError(errors)

    @classmethod
    def load(cls) -> "ClinicSettings":
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj


class ClosedDay(models.Model):
    date = models.DateField(unique=True)
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date} {self.reason}".strip()


# The safety checklist's items besides the post-fill check (which has its own outcomes), in the
# order the visit goes: the field names and what each item asks.
SAFETY_CHECK_ITEMS = {
    "check_pump_site": "Pump site checked",
    "check_needle_placement": "Needle placement confirmed",
    "check_aspiration": "Aspiration before fill",
    "check_alarm_settings": "Alarm settings confirmed",
    "check_symptom_screen": "Symptom screen for withdrawal and overdose",
}


class RefillVisit(ClinicalRecord):
    """One refill of the pump (docs/domain.md "The refill visit")."""

    class BatteryStatus(models.TextChoices):
        OK = "ok", "OK"
        ERI = "eri", "Elective replacement indicator (ERI)"
        EOS = "eos", "End of service"
        NOT_APPLICABLE = "n/a", "No battery"
        UNKNOWN = "unknown", "Not read"

    implant = models.ForeignKey(Implant, on_delete=models.PROTECT, related_name="refill_visits")
    performed_at = models.DateTimeField(db_index=True)
    performed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    prescriber = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    pump_serial = models.CharField(max_length=64)
    reservoir_ml = models.DecimalField(max_digits=5, decimal_places=1)
    expected_residual_ml = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    actual_residual_ml = models.DecimalField(max_digits=5, decimal_places=2)
    discrepancy_ml = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    discrepancy_flagged = models.BooleanField(default=False)
    volume_added_ml = models.DecimalField(max_digits=5, decimal_places=2)
    drug = models.ForeignKey(Drug, on_delete=models.PROTECT, related_name="+")
    drug_lot = models.CharField(max_length=64)
    # Null on visits recorded before the expiry was asked for: shown as "not recorded".
    drug_lot_expires_on = models.DateField(null=True, blank=True)
    kit_lot = models.CharField(max_length=64, blank=True)
    concentration_mcg_per_ml = models.DecimalField(max_digits=7, decimal_places=1)
    daily_dose_before_mcg = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    daily_dose_after_mcg = models.DecimalField(max_digits=8, decimal_places=2)
    dosing_mode = models.CharField(
        max_length=20, choices=DosePrescription.Mode.choices, default=DosePrescription.Mode.SIMPLE_CONTINUOUS
    )
    schedule = models.JSONField(default=list, blank=True)
    bridge_bolus_mcg = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    alarm_threshold_ml = models.DecimalField(max_digits=4, decimal_places=1)
    alarm_on = models.DateField()
    empty_on = models.DateField()
    due_by = models.DateField(db_index=True)
    battery_status = models.CharField(max_length=8, choices=BatteryStatus.choices, default=BatteryStatus.OK)
    # The date the pump logged the ERI or end of service (read from its event log), not the visit's.
    battery_event_on = models.DateField(null=True, blank=True)

    class PostFillCheck(models.TextChoices):
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed (pocket-fill risk)"
        NOT_DONE = "not_done", "Not done"

    # After the fill: the volume confirmed in the reservoir; a gap above the model's tolerance,
    # or a failed check, is a pocket-fill risk [S28][S29].
    post_fill_check = models.CharField(max_length=8, choices=PostFillCheck.choices, default=PostFillCheck.NOT_DONE)
    post_fill_discrepancy_ml = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    post_fill_check_reason = models.TextField(blank=True)

    class SafetyCheck(models.TextChoices):
        DONE = "done", "Done"
        NOT_DONE = "not_done", "Not done"
        NOT_RECORDED = "", "Not recorded"

    # The safety checklist of the visit (docs/domain.md "The refill visit records"): each item
    # done or not done, a skipped item with its reason. Blank on visits recorded before it existed.
    check_pump_site = models.CharField(max_length=8, choices=SafetyCheck.choices, blank=True, default="")
    check_pump_site_reason = models.TextField(blank=True)
    check_needle_placement = models.CharField(max_length=8, choices=SafetyCheck.choices, blank=True, default="")
    check_needle_placement_reason = models.TextField(blank=True)
    check_aspiration = models.CharField(max_length=8, choices=SafetyCheck.choices, blank=True, default="")
    check_aspiration_reason = models.TextField(blank=True)
    check_alarm_settings = models.CharField(max_length=8, choices=SafetyCheck.choices, blank=True, default="")
    check_alarm_settings_reason = models.TextField(blank=True)
    check_symptom_screen = models.CharField(max_length=8, choices=SafetyCheck.choices, blank=True, default="")
    check_symptom_screen_reason = models.TextField(blank=True)
    patient_bolus_mcg = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    patient_boluses_per_day = models.PositiveSmallIntegerField(null=True, blank=True)
    # Done after the reservoir's empty date: the patient may already have been in withdrawal.
    after_empty_date = models.BooleanField(default=False)
    notes = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-performed_at", "-id"]
        get_latest_by = "performed_at"
        constraints = [
            models.CheckConstraint(
                condition=Q(actual_residual_ml__gte=0),
                name="refillvisit_residual_not_negative",
                violation_error_message="The residual aspirated cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(volume_added_ml__gt=0),
                name="refillvisit_volume_added_positive",
                violation_error_message="The volume added must be more than 0 mL.",
            ),
            models.CheckConstraint(
                condition=Q(volume_added_ml__lte=F("reservoir_ml")),
                name="refillvisit_fill_within_reservoir",
                violation_error_message="The volume added cannot be more than the reservoir holds.",
            ),
            models.CheckConstraint(
                condition=Q(concentration_mcg_per_ml__gt=0),
                name="refillvisit_concentration_positive",
                violation_error_message="The concentration must be more than 0 mcg/mL.",
            ),
            models.CheckConstraint(
                condition=Q(daily_dose_after_mcg__gt=0),
                name="refillvisit_dose_positive",
                violation_error_message="The daily dose must be more than 0 mcg.",
            ),
            models.CheckConstraint(
                condition=Q(daily_dose_before_mcg__isnull=True) | Q(daily_dose_before_mcg__gt=0),
                name="refillvisit_dose_before_positive",
                violation_error_message="The daily dose before the refill must be more than 0 mcg.",
            ),
            models.CheckConstraint(
                condition=Q(alarm_threshold_ml__gte=0),
                name="refillvisit_threshold_not_negative",
                violation_error_message="The alarm volume cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(alarm_on__lte=F("empty_on")),
                name="refillvisit_alarm_before_empty",
                violation_error_message="The alarm date cannot be after the empty date.",
            ),
            models.CheckConstraint(
                condition=Q(due_by__lte=F("alarm_on")),
                name="refillvisit_due_before_alarm",
                violation_error_message="The due-by date cannot be after the alarm date.",
            ),
            *(
                models.CheckConstraint(
                    condition=~Q(**{item: "not_done"}) | ~Q(**{f"{item}_reason": ""}),
                    name=f"refillvisit_{item}_skipped_has_reason",
                    violation_error_message="Say why a safety check was not done.",
                )
                for item in SAFETY_CHECK_ITEMS
            ),
        ]

    def __str__(self) -> str:
        return f"Refill of {self.pump_serial} on {self.performed_at:%Y-%m-%d}"

    @property
    def volume_after_fill_ml(self) -> Decimal:
        # The residual is aspirated and discarded before the fill: the reservoir holds what was added.
        return self.volume_added_ml


class AppointmentQuerySet(ClinicalRecordQuerySet):
    def booked_refills(self) -> "AppointmentQuerySet":
        """Valid refill appointments still booked: the one definition of "a refill is booked"."""
        return self.filter(kind=Appointment.Kind.REFILL, status=Appointment.Status.BOOKED, entered_in_error=False)

    def booked_home_visits(self) -> "AppointmentQuerySet":
        """Valid home visits (of any kind) still booked: what a day's home-visit capacity counts."""
        return self.filter(location=Appointment.Location.HOME, status=Appointment.Status.BOOKED, entered_in_error=False)


class Appointment(ClinicalRecord):
    class Kind(models.TextChoices):
        REFILL = "refill", "Refill"
        REPLACEMENT = "replacement", "Replacement surgery"
        TRIAL = "trial", "Screening trial"
        REVIEW = "review", "Review"

    class Location(models.TextChoices):
        CLINIC = "clinic", "At the clinic"
        HOME = "home", "Home visit"

    class Status(models.TextChoices):
        BOOKED = "booked", "Booked"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"
        NO_SHOW = "no_show", "No-show"

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="appointments")
    implant = models.ForeignKey(Implant, null=True, blank=True, on_delete=models.PROTECT, related_name="appointments")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    starts_at = models.DateTimeField(db_index=True)
    duration_minutes = models.PositiveSmallIntegerField(default=30)
    # At the clinic (in `place`, a room) or at the patient's home (the patient's address).
    location = models.CharField(max_length=8, choices=Location.choices, default=Location.CLINIC)
    place = models.CharField(max_length=200, validators=[validate_no_control_characters])
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BOOKED, db_index=True)
    cancel_reason = models.TextField(blank=True)
    outside_window_reason = models.TextField(
        blank=True, help_text="A clinician's reason for booking a refill outside the safe window."
    )
    # A clinician's urgent booking on a closed or full day (the alarm date left no open day).
    override_reason = models.TextField(blank=True)
    visit = models.OneToOneField(
        RefillVisit, null=True, blank=True, on_delete=models.PROTECT, related_name="appointment"
    )
    booked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    notes = models.TextField(blank=True)

    objects = AppointmentQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["starts_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["implant"],
                condition=Q(kind="refill", status="booked", entered_in_error=False),
                name="appointment_one_booked_refill_per_implant",
                violation_error_message="A refill is already booked for this pump: move that one instead.",
            ),
            models.CheckConstraint(
                condition=~Q(kind="refill") | Q(implant__isnull=False),
                name="appointment_refill_has_implant",
                violation_error_message="A refill appointment needs the pump it refills.",
            ),
            models.CheckConstraint(
                condition=~Q(status="cancelled") | ~Q(cancel_reason=""),
                name="appointment_cancel_has_reason",
                violation_error_message="Say why the appointment is cancelled.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.starts_at:%Y-%m-%d %H:%M} ({self.get_status_display()})"

    @property
    def is_home_visit(self) -> bool:
        return self.location == self.Location.HOME


class AppointmentChangeRequest(models.Model):
    """A patient's request for another date; it lands on the nurses' worklist."""

    class Status(models.TextChoices):
        OPEN = "open", "Waiting for the clinic"
        DONE = "done", "Moved"
        DECLINED = "declined", "Not changed"
        WITHDRAWN = "withdrawn", "Withdrawn"
        CANCELLED = "cancelled", "Appointment cancelled"

    appointment = models.ForeignKey(Appointment, on_delete=models.PROTECT, related_name="change_requests")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(auto_now_add=True)
    preferred_dates = models.CharField(max_length=200, blank=True)
    message = models.TextField(max_length=2000)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    handled_at = models.DateTimeField(null=True, blank=True)
    # Said to the patient: why the clinic could not change it (a decline's reason).
    response = models.TextField(blank=True)
    # The appointment's time once the request was met by moving it (the portal shows it).
    moved_to = models.DateTimeField(null=True, blank=True)
    # The preferred date falls after the pump's due-by date: the request reached the nurses as urgent.
    urgent = models.BooleanField(default=False)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"Change request for {self.appointment} ({self.get_status_display()})"


class AppointmentNotice(models.Model):
    """A message telling the patient their appointment changed (moved, cancelled, request not met).

    Written in the same transaction as the change, sent by a Celery task after commit: the row,
    not the broker, is the record of what the patient must be told. The text is rendered when the
    row is written (what the patient was told is kept as sent) and names no patient.
    """

    class Kind(models.TextChoices):
        MOVED = "moved", "Appointment moved"
        CANCELLED = "cancelled", "Appointment cancelled"
        REQUEST_DECLINED = "request_declined", "Request for another date not met"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Could not be sent"

    appointment = models.ForeignKey(Appointment, on_delete=models.PROTECT, related_name="notices")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="appointment_notices")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    channel = models.CharField(max_length=8, choices=[("email", "Email"), ("sms", "SMS")])
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.channel}, {self.status}) for appointment {self.appointment_id}"


class Reminder(models.Model):
    """One message that must reach a patient: the database, not the broker, is the record.

    One row per (appointment, offset, channel) under a unique constraint, so a scan that runs
    twice, or two beats, cannot create a second reminder for the same thing.
    """

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        SMS = "sms", "SMS"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    appointment = models.ForeignKey(Appointment, on_delete=models.PROTECT, related_name="reminders")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="reminders")
    offset_days = models.PositiveSmallIntegerField()
    channel = models.CharField(max_length=8, choices=Channel.choices)
    send_at = models.DateTimeField(db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)

    class ReasonCode(models.TextChoices):
        NONE = "", "—"
        # Cancelled because what it announced changed (moved, cancelled, consent withdrawn…);
        # such a row comes back to pending if the change is undone.
        OBSOLETE = "obsolete", "No longer applies"
        # Cancelled because its send time had passed when the booking was made, or a later
        # (closer) reminder is already due: a stale "in 14 days" message helps nobody.
        STALE = "stale", "Too late to send"
        FAILED = "failed", "Failed"

    # The appointment time this reminder announces: part of the key, so a moved appointment
    # gets its own reminders and a sent one for the old time stays in the log.
    appointment_starts_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # Set by the dispatcher's claim; the send task acts only while the row still carries it.
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Deliveries the email/SMS backend acknowledged. Each call to it is also a DeliveryAttempt row,
    # written before the call: the duplicates figure counts those (a crash leaves no acknowledgement).
    send_count = models.PositiveSmallIntegerField(default=0)
    # Times the row was found stuck in "sending" and put back in the queue (a would-be loss).
    recovered_count = models.PositiveSmallIntegerField(default=0)
    reason_code = models.CharField(max_length=16, choices=ReasonCode.choices, blank=True, default="")
    status_reason = models.CharField(max_length=200, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["send_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["appointment", "appointment_starts_at", "offset_days", "channel"],
                name="reminder_one_per_appointment_time_offset_channel",
                violation_error_message="This reminder is already planned.",
            ),
            models.CheckConstraint(
                condition=~Q(status="sent") | Q(sent_at__isnull=False),
                name="reminder_sent_has_sent_at",
                violation_error_message="A sent reminder needs the time it was sent.",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "send_at"], name="reminder_due_idx"),
            models.Index(fields=["status", "claimed_at"], name="reminder_claimed_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} reminder {self.offset_days}d before appointment {self.appointment_id} ({self.status})"


class DeliveryAttempt(models.Model):
    """One hand-over of a reminder to the email or SMS provider, committed BEFORE the provider is called.

    A worker killed between the provider's call and the row's acknowledgement leaves this row
    `started`; the retry writes another. So every message that may have reached the patient is a
    row here, and the duplicates figure counts them (`refills.reminders.reads.reminder_figures`).
    """

    class Outcome(models.TextChoices):
        # The provider was called and no answer was recorded (crash, or the database went away):
        # the message may have gone.
        STARTED = "started", "Started, no answer recorded"
        SENT = "sent", "Accepted by the provider"
        # The provider failed (timeout, disconnection, 5xx): retried; it most likely did not go.
        ERROR = "error", "Failed, retried"
        REFUSED = "refused", "Refused for good"
        # Something else went wrong after the call began: the message may have gone.
        UNKNOWN = "unknown", "Unexpected error"

    # Outcomes after which the message may have reached the patient: more than one such attempt
    # on a reminder is a (possible) duplicate.
    MAY_HAVE_GONE = (Outcome.STARTED, Outcome.SENT, Outcome.UNKNOWN)

    reminder = models.ForeignKey(Reminder, on_delete=models.PROTECT, related_name="delivery_attempts")
    channel = models.CharField(max_length=8, choices=Reminder.Channel.choices)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, default=Outcome.STARTED)
    # What the provider answered: the email's Message-ID, the SMS provider's message id.
    provider_id = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["started_at", "id"]
        indexes = [models.Index(fields=["reminder", "outcome"], name="deliveryattempt_reminder_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(outcome="started") | Q(finished_at__isnull=False),
                name="deliveryattempt_finished_has_finished_at",
                violation_error_message="A finished delivery attempt needs the time it finished.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} attempt, reminder {self.reminder_id}, {self.started_at:%Y-%m-%d %H:%M}: {self.outcome}"


class Alert(models.Model):
    """Something a nurse or clinician must act on; one row per (kind, subject, key date)."""

    class Kind(models.TextChoices):
        REFILL_UNBOOKED = "refill_unbooked", "Refill due soon, nothing booked"
        REFILL_URGENT = "refill_urgent", "URGENT: alarm date near, nothing booked"
        NO_SHOW = "no_show", "Missed appointment"
        BOOKED_AFTER_DUE = "booked_after_due", "Appointment after the due-by date"
        REMINDER_FAILED = "reminder_failed", "Reminder could not be sent"
        BATTERY_WINDOW = "battery_window", "Pump entering its battery window"
        REPLACEMENT_PLAN = "replacement_plan", "Replacement surgery to plan"
        ERI = "eri", "ERI recorded: pump stops in 90 days"
        CHANGE_REQUEST = "change_request", "Patient asked for a new date"
        NO_FORECAST = "no_forecast", "URGENT: pump with no forecast"
        RECORD_ATTENTION = "record_attention", "Record needs attention"
        END_OF_SERVICE = "end_of_service", "URGENT: battery end of service"
        DISCREPANCY = "discrepancy", "Residual discrepancy to review"
        REFILL_AFTER_EMPTY = "refill_after_empty", "URGENT: refilled after the empty date"
        POCKET_FILL = "pocket_fill", "URGENT: failed post-fill check"
        EXPLANT_NO_REPLACEMENT = "explant_no_replacement", "Pump explanted, no replacement"
        PATIENT_STATUS = "patient_status", "Patient transferred or deceased"

    class Audience(models.TextChoices):
        NURSES = "nurses", "Nurses"
        CLINICIANS = "clinicians", "Clinicians"

    class Severity(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        URGENT = "urgent", "Urgent"

    kind = models.CharField(max_length=24, choices=Kind.choices)
    audience = models.CharField(max_length=16, choices=Audience.choices, default=Audience.NURSES)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.WARNING)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="alerts")
    implant = models.ForeignKey(Implant, null=True, blank=True, on_delete=models.PROTECT, related_name="alerts")
    appointment = models.ForeignKey(Appointment, null=True, blank=True, on_delete=models.PROTECT, related_name="alerts")
    reminder = models.ForeignKey(Reminder, null=True, blank=True, on_delete=models.PROTECT, related_name="alerts")
    # What makes the alert distinct: the due-by date, the day of an urgent repeat, the ERI date…
    key_date = models.DateField()
    message = models.TextField()
    raised_at = models.DateTimeField(auto_now_add=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolution = models.CharField(max_length=200, blank=True)
    visit = models.ForeignKey(RefillVisit, null=True, blank=True, on_delete=models.PROTECT, related_name="alerts")
    # The patient's withdrawal-risk flags at the time, in words; a flag raises the severity.
    risk_flags = models.CharField(max_length=200, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    sms_sent_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    escalation_count = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-raised_at"]
        constraints = [
            # Severity is part of the key: resolving an early alert never silences a later,
            # more urgent one about the same date.
            models.UniqueConstraint(
                fields=["kind", "patient", "key_date", "severity"],
                name="alert_one_per_kind_patient_date_severity",
                violation_error_message="This alert is already raised for this patient.",
            ),
        ]
        indexes = [models.Index(fields=["resolved_at", "audience"], name="alert_open_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} – patient {self.patient_id} ({self.key_date})"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class ReservoirEmptying(ClinicalRecord):
    """The reservoir emptied (before MRI for Prometra, or at explant): 0 mL from then on.

    The next fill starts a new interval; until then the pump has no forecast and is escalated.
    """

    class Reason(models.TextChoices):
        MRI = "mri", "Before MRI"
        EXPLANT = "explant", "At explant"
        OTHER = "other", "Other"

    implant = models.ForeignKey(Implant, on_delete=models.PROTECT, related_name="emptyings")
    emptied_at = models.DateTimeField()
    volume_removed_ml = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    reason = models.CharField(max_length=16, choices=Reason.choices, default=Reason.MRI)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    notes = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-emptied_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(volume_removed_ml__isnull=True) | Q(volume_removed_ml__gte=0),
                name="reservoiremptying_volume_not_negative",
                violation_error_message="The volume removed cannot be negative.",
            )
        ]

    def __str__(self) -> str:
        return f"Reservoir of implant {self.implant_id} emptied {self.emptied_at:%Y-%m-%d}"


class TaskRun(models.Model):
    """When each scheduled task last completed: the watchdog's evidence that the net is running."""

    name = models.CharField(max_length=100, unique=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_completed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.name}: completed {self.last_completed_at}"


class FieldSafetyNotice(ClinicalRecord):
    """A manufacturer's field safety notice (or the clinic's own recall) and the search that found its pumps.

    Every pump the search found is flagged (`FieldSafetyFlag`): the flag shows on the patient's
    page, the worklist and its alerts until a clinician records what was done for that patient.
    """

    title = models.CharField(max_length=200, validators=[validate_no_control_characters])
    # The manufacturer's reference (e.g. "FA1234"): one notice per reference, so flagging the
    # same search again adds only the pumps not yet flagged.
    reference = models.CharField(max_length=64, validators=[validate_no_control_characters])
    manufacturer_text = models.TextField(help_text="What the manufacturer says, and what the clinic must do.")
    # The recall criteria used, in words (each search that added patients, one line each).
    criteria = models.TextField()
    issued_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    issued_at = models.DateTimeField()

    history = HistoricalRecords()

    class Meta:
        ordering = ["-issued_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                Lower("reference"),
                condition=Q(entered_in_error=False),
                name="fieldsafetynotice_one_per_reference",
                violation_error_message="A notice with this reference exists: add the patients to that one.",
            ),
            models.CheckConstraint(
                condition=~Q(reference="") & ~Q(title=""),
                name="fieldsafetynotice_has_title_and_reference",
                violation_error_message="A notice needs its title and the manufacturer's reference.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference}: {self.title}"


class FieldSafetyFlag(ClinicalRecord):
    """One flagged pump of a notice: who was told, how, and what the clinician did about it."""

    class Status(models.TextChoices):
        OPEN = "open", "Action to record"
        CLOSED = "closed", "Action recorded"

    class Contact(models.TextChoices):
        NOT_CONTACTED = "", "Not contacted"
        PENDING = "pending", "Message waiting to be sent"
        SENDING = "sending", "Message being sent"
        SENT = "sent", "Message sent"
        FAILED = "failed", "Message could not be sent"
        NO_CHANNEL = "no_channel", "Cannot be messaged: phone the patient"

    notice = models.ForeignKey(FieldSafetyNotice, on_delete=models.PROTECT, related_name="flags")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="field_safety_flags")
    implant = models.ForeignKey(Implant, on_delete=models.PROTECT, related_name="field_safety_flags")
    contact = models.CharField(max_length=16, choices=Contact.choices, blank=True, default="", db_index=True)
    channel = models.CharField(max_length=8, choices=[("email", "Email"), ("sms", "SMS")], blank=True)
    contacted_at = models.DateTimeField(null=True, blank=True)
    # Who asked for the message to be sent.
    contacted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    contact_attempts = models.PositiveSmallIntegerField(default=0)
    contact_error = models.TextField(blank=True)
    # What the patient was told, kept as sent (it names no patient).
    message_subject = models.CharField(max_length=200, blank=True)
    message_body = models.TextField(blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN, db_index=True)
    action_taken = models.TextField(blank=True)
    action_recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    action_recorded_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["notice", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["notice", "implant"],
                name="fieldsafetyflag_one_per_notice_implant",
                violation_error_message="This pump is already flagged for this notice.",
            ),
            models.CheckConstraint(
                condition=Q(status="open")
                | (~Q(action_taken="") & Q(action_recorded_at__isnull=False) & Q(action_recorded_by__isnull=False)),
                name="fieldsafetyflag_closed_has_action",
                violation_error_message="Record the action taken to close the flag.",
            ),
            models.CheckConstraint(
                condition=~Q(contact="sent") | Q(contacted_at__isnull=False),
                name="fieldsafetyflag_sent_has_contacted_at",
                violation_error_message="A message sent needs the time it was sent.",
            ),
        ]
        indexes = [models.Index(fields=["status", "notice"], name="fieldsafetyflag_open_idx")]

    def __str__(self) -> str:
        return f"Notice {self.notice_id}, implant {self.implant_id} ({self.get_status_display()})"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN
