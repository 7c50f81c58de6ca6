"""Random sequences of clinical events, and after every one: the net still holds (hypothesis).

Each example is one patient's story through the services, with the clock moving forward: implant
(with or without the theatre fill), refills, dose changes past and future, emptying, replacement,
explant, a settings change, records entered in error, bookings, no-shows, cancellations, and typos
that must be refused. After every step:
- the forecast stored on each pump equals a recomputation from its whole history;
- every active pump of an active patient has a forecast, or an open urgent alert saying why not;
- the scan (reminders and alerts) never raises.
"""

import contextlib
import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from pumps.models import DosePrescription, Implant
from refills import services
from refills.alerts.scan import alerts_scan
from refills.models import Alert, Appointment, ClinicSettings, RefillVisit
from refills.reminders.planning import reminders_scan
from refills.selectors import implant_forecast_compute
from tests import factories
from tests.helpers import implant_register_filled

TZ = ZoneInfo("Europe/London")
START = dt.datetime(2025, 1, 6, 9, 0, tzinfo=TZ)
DOSES = st.sampled_from(["300", "360", "400", "440", "480", "520"])


class PumpHistory(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        # Each example is one patient's story in a savepoint of its own, rolled back at teardown:
        # the clinic-wide scans of the invariants see this story's rows, not those of every earlier
        # example (which made the test quadratic in max_examples), and a settings change does not
        # carry into the next example.
        self.story = transaction.atomic()
        self.story.__enter__()
        self.traveller = time_machine.travel(START, tick=False)
        self.clock = self.traveller.start()
        self.clinician = factories.ClinicianFactory()
        self.nurse = factories.NurseFactory()
        self.patient = factories.PatientFactory()
        self.serials = 0

    def teardown(self):
        self.traveller.stop()
        transaction.set_rollback(True)
        self.story.__exit__(None, None, None)

    # --- helpers ------------------------------------------------------------------------------
    @property
    def now(self) -> dt.datetime:
        return dt.datetime.now(tz=TZ)

    def active(self) -> Implant | None:
        return Implant.objects.valid().filter(patient=self.patient, explanted_on__isnull=True).first()

    def serial(self) -> str:
        self.serials += 1
        return f"SM-{self.patient.pk}-{self.serials}"

    # --- rules --------------------------------------------------------------------------------
    @precondition(lambda self: self.active() is None)
    @rule(filled=st.booleans(), dose=DOSES)
    def implant(self, filled, dose):
        fields = {} if filled else {"fill_drug": None, "fill_volume_ml": None, "starting_daily_dose_mcg": None}
        if filled:
            implant_register_filled(
                patient=self.patient,
                recorded_by=self.clinician,
                implanted_on=self.now.date(),
                dose=dose,
                serial_number=self.serial(),
            )
        else:
            services.implant_register_with_fill(
                patient=self.patient,
                recorded_by=self.clinician,
                pump_model=factories.pump_model(),
                serial_number=self.serial(),
                implanted_on=self.now.date(),
                surgeon="S",
                hospital="H",
                catheter_tip_level="T10",
                **{k: v for k, v in fields.items() if k != "fill_volume_ml"},
            )

    @precondition(lambda self: self.active() is not None)
    @rule(change=st.booleans(), dose=DOSES, residual=st.sampled_from(["0", "1.5", "4", "9"]))
    def refill(self, change, dose, residual):
        implant = self.active()
        in_force = DosePrescription.objects.valid().filter(implant=implant, effective_at__lte=self.now).first()
        prescribed = in_force.daily_dose_mcg if in_force else Decimal(dose)
        try:
            services.refill_visit_record(
                implant=implant,
                performed_at=self.now - dt.timedelta(minutes=5),
                performed_by=self.nurse,
                prescriber=self.clinician if change else None,
                actual_residual_ml=Decimal(residual),
                volume_added_ml=Decimal("20"),
                drug=factories.drug("2000"),
                drug_lot="LOT",
                daily_dose_after_mcg=Decimal(dose) if change else prescribed,
                titration_confirmed=True,
            )
        except ValidationError as error:
            # Refused only for a reason a clinic would meet: no dose known yet, or not after the last refill.
            assert set(error.message_dict) <= {"prescriber", "performed_at", "daily_dose_after_mcg"}, error

    @precondition(lambda self: self.active() is not None)
    @rule(dose=DOSES, hours=st.integers(min_value=-48, max_value=24 * 60))
    def dose_change(self, dose, hours):
        implant = self.active()
        try:
            services.dose_change_record(
                implant=implant,
                daily_dose_mcg=Decimal(dose),
                effective_at=self.now + dt.timedelta(hours=hours),
                prescribed_by=self.clinician,
                titration_confirmed=True,
                reason="Titration",
            )
        except ValidationError as error:
            # Before the last refill or the implant, or no concentration known (no fill yet).
            assert set(error.message_dict) <= {"effective_at", "implant"}, error

    @precondition(lambda self: self.active() is not None)
    @rule()
    def empty_for_mri(self):
        services.reservoir_empty_record(
            implant=self.active(), emptied_at=self.now - dt.timedelta(minutes=1), recorded_by=self.nurse
        )

    @precondition(lambda self: self.active() is not None)
    @rule(filled=st.booleans())
    def replace(self, filled):
        extra = (
            {
                "fill_drug": factories.drug("2000"),
                "fill_volume_ml": Decimal("20"),
                "fill_drug_lot": "L",
                "starting_daily_dose_mcg": Decimal("400"),
            }
            if filled
            else {}
        )
        services.implant_replace(
            implant=self.active(),
            explanted_on=self.now.date(),
            reason="Battery",
            recorded_by=self.clinician,
            pump_model=factories.pump_model(),
            serial_number=self.serial(),
            surgeon="S",
            hospital="H",
            catheter_tip_level="T10",
            **extra,
        )

    @precondition(lambda self: self.active() is not None)
    @rule()
    def explant(self):
        services.implant_explant_record(
            implant=self.active(), explanted_on=self.now.date(), reason="Infection", by=self.clinician
        )

    @rule(margin=st.integers(min_value=3, max_value=10))
    def settings_change(self, margin):
        clinic = ClinicSettings.load()
        clinic.safety_margin_days = margin
        clinic.save()
        services.forecasts_recompute_after_catalogue_change(record=clinic)

    @precondition(lambda self: self.active() is not None)
    @rule(which=st.sampled_from(["refill", "dose"]))
    def entered_in_error(self, which):
        model = RefillVisit if which == "refill" else DosePrescription
        record = model.objects.valid().filter(implant=self.active()).first()
        if record is not None:
            services.care_record_mark_entered_in_error(record=record, by=self.clinician, reason="Typo")

    @precondition(lambda self: self.active() is not None)
    @rule(days=st.integers(min_value=1, max_value=40))
    def book(self, days):
        implant = self.active()
        starts_at = (self.now + dt.timedelta(days=days)).replace(hour=10, minute=0)
        # Already booked, or a day that cannot be taken: both are refused cleanly.
        with contextlib.suppress(ValidationError, services.BookingConflict):
            services.appointment_book(
                patient=self.patient,
                implant=implant,
                kind="refill",
                starts_at=starts_at,
                booked_by=self.clinician,
                outside_window_reason="Stateful test",
                override_reason="Stateful test",
            )

    @rule()
    def cancel(self):
        booked = Appointment.objects.valid().booked_refills().filter(patient=self.patient).first()
        if booked is not None:
            services.appointment_cancel(appointment=booked, reason="Patient unwell", cancelled_by=self.nurse)

    @precondition(lambda self: self.active() is not None)
    @rule(dose=st.sampled_from(["99999", "4000", "0"]))
    def typo_is_refused(self, dose):
        implant = self.active()
        before = (RefillVisit.objects.count(), implant.forecast_due_by, implant.forecast_problem)
        with pytest.raises(ValidationError):
            services.refill_visit_record(
                implant=implant,
                performed_at=self.now + dt.timedelta(days=400),
                performed_by=self.nurse,
                actual_residual_ml=Decimal("2"),
                volume_added_ml=Decimal("20"),
                drug=factories.drug("2000"),
                drug_lot="LOT",
                daily_dose_after_mcg=Decimal(dose),
            )
        implant.refresh_from_db()
        assert (RefillVisit.objects.count(), implant.forecast_due_by, implant.forecast_problem) == before

    @rule(days=st.integers(min_value=1, max_value=60))
    def time_passes(self, days):
        # The patient who never comes: booked refills in the past become no-shows in the scan.
        self.clock.shift(dt.timedelta(days=days))

    # --- invariants ---------------------------------------------------------------------------
    @invariant()
    def stored_forecast_is_the_recomputed_one(self):
        for implant in Implant.objects.valid().filter(patient=self.patient, explanted_on__isnull=True):
            fresh = implant_forecast_compute(implant=implant)
            stored = (implant.forecast_due_by, implant.forecast_alarm_on, implant.forecast_empty_on)
            assert stored == (fresh.due_by, fresh.alarm_on, fresh.empty_on)
            assert implant.forecast_problem == fresh.problem

    @invariant()
    def every_active_pump_has_a_forecast_or_an_urgent_alert_and_the_scan_never_raises(self):
        reminders_scan(now=self.now)
        alerts_scan(now=self.now)
        for implant in Implant.objects.valid().filter(patient=self.patient, explanted_on__isnull=True):
            if implant.forecast_due_by is None:
                assert Alert.objects.filter(
                    implant=implant, kind=Alert.Kind.NO_FORECAST, severity="urgent", resolved_at__isnull=True
                ).exists(), implant.forecast_problem


@pytest.mark.django_db
def test_the_net_holds_after_every_step_of_a_random_history():
    run_state_machine_as_test(
        PumpHistory,
        settings=settings(
            max_examples=60,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
