"""
The demo clinic for `seed_demo`: about forty patients at every stage of the ITB path.

Everything is written through the services (patient_create, trial_*, implant_register_with_fill,
implant_replace, refill_visit_record, dose_change_record, appointment_book, appointment_mark_no_show,
implant_explant_record…), so the demo holds only what the app itself could have recorded, forecasts
included, under the same rules: a dose changed at a refill names the prescribing clinician, and a
dose outside the usual range or a change beyond the titration limits is confirmed by them.

A pump whose whole history the demo shows is registered with its fill in theatre, so its forecast
starts at the implant. An older pump (implanted before the clinic's records in this system begin)
is registered with the dose in force when they begin; its forecast starts at the first refill
recorded here, as a clinic's would after moving to a new system (its theatre fill of years ago,
with no refill recorded since, would make that first refill look overdue and discrepant).

Dates are relative to `today`, so the demo always looks current on the day it is seeded.
Idempotent: each patient is keyed on its MRN and built in one transaction; a patient whose MRN
exists is skipped whole, so a second run creates nothing.

Randomness (names are fixed lists; residual noise, lots, appointment times) comes from one
seeded generator per patient, so a patient's data does not depend on which others exist.
"""

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from itbclinic.accounts.roles import Role
from patients.models import AshworthScore, Patient, ScreeningTrial, TrialAssessment, TrialStep
from patients.selectors import trial_get_summary
from patients.services import (
    patient_create,
    patient_update,
    trial_assessment_add,
    trial_record_verdict,
    trial_start,
    trial_step_add,
)
from pumps.models import DosePrescription, Drug, Implant, PumpModel
from pumps.rules import dose_needs_confirmation, is_child
from refills.field_safety import field_safety_action_record, field_safety_flag_recall
from refills.forecasting import Dose, Fill, pump_forecast, reservoir_volume_on
from refills.models import Appointment, ClinicSettings, ClosedDay, RefillVisit
from refills.no_shows import appointment_mark_no_show
from refills.public_holidays import public_holidays
from refills.recall import RecallCriteria, recall_search
from refills.selectors import (
    max_interval_days_get,
    refill_window_get,
)
from refills.services import (
    appointment_book,
    dose_change_record,
    implant_explant_record,
    implant_register_with_fill,
    implant_replace,
    refill_visit_record,
)

MRN_PREFIX = "DEMO-"

GIVEN_NAMES = [
    "Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Jack", "Mia", "Jacob", "Emily",
    "Charlie", "Sophie", "Thomas", "Grace", "Oscar", "Lily", "William", "Freya", "James", "Evie",
    "Alfie", "Ella", "Henry", "Poppy", "Arthur", "Florence", "Leo", "Ruby", "Edward", "Alice",
    "Samuel", "Imogen", "Joseph", "Matilda", "Daniel", "Harriet", "Rhys", "Siobhan", "Callum", "Niamh",
]  # fmt: skip
FAMILY_NAMES = [
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright",
    "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson", "Clarke",
    "Patel", "Khan", "Hughes", "Edwards", "Turner", "Hill", "Morgan", "Cooper", "Ward", "Harrison",
    "Price", "Bennett", "Griffiths", "Lloyd", "Murphy", "Campbell", "Stewart", "MacDonald", "Kaur", "Ahmed",
]  # fmt: skip
SURGEONS = ["Mr D. Okafor", "Ms R. Lindqvist", "Mr S. Chaudhry", "Miss H. Fraser"]
HOSPITALS = ["St Aldhelm's Hospital", "Northgate General Hospital", "Royal Severn Infirmary"]
LOWER_LIMB = [
    AshworthScore.MuscleGroup.HIP_ADDUCTORS_L,
    AshworthScore.MuscleGroup.HIP_ADDUCTORS_R,
    AshworthScore.MuscleGroup.KNEE_EXTENSORS_L,
    AshworthScore.MuscleGroup.KNEE_EXTENSORS_R,
    AshworthScore.MuscleGroup.KNEE_FLEXORS_L,
    AshworthScore.MuscleGroup.KNEE_FLEXORS_R,
    AshworthScore.MuscleGroup.ANKLE_PLANTARFLEXORS_L,
    AshworthScore.MuscleGroup.ANKLE_PLANTARFLEXORS_R,
]
UPPER_LIMB = [AshworthScore.MuscleGroup.ELBOW_FLEXORS_L, AshworthScore.MuscleGroup.ELBOW_FLEXORS_R]
MAS_SCALE = ["0", "1", "1+", "2", "3", "4"]
# Share of the peak effect at each assessment after a bolus: onset 30–60 min, peak 4–6 h, gone by ~8 h.
EFFECT_CURVE = {0: 0.0, 1: 0.5, 2: 0.8, 4: 1.0, 6: 0.8, 8: 0.4}
BOOKED_HISTORY_DAYS = 180
SLOTS = [dt.time(h, m) for h in range(9, 16) for m in (0, 30) if (h, m) != (12, 30)]

DIAGNOSES = {
    # key: (origin, diagnosis, detail)
    "ms": (Patient.Origin.SPINAL, Patient.Diagnosis.MS, "Secondary progressive multiple sclerosis"),
    "sci": (Patient.Origin.SPINAL, Patient.Diagnosis.SCI, "Traumatic spinal cord injury"),
    "cp": (Patient.Origin.CEREBRAL, Patient.Diagnosis.CP, "Bilateral spastic cerebral palsy"),
    "bi": (Patient.Origin.CEREBRAL, Patient.Diagnosis.BRAIN_INJURY, "Hypoxic brain injury"),
    "stroke": (Patient.Origin.CEREBRAL, Patient.Diagnosis.STROKE, "Left middle cerebral artery stroke"),
    "hsp": (Patient.Origin.SPINAL, Patient.Diagnosis.OTHER, "Hereditary spastic paraplegia"),
}


@dataclass
class Spec:
    """One demo patient: who they are and where they stand on the path (offsets are days from today)."""

    n: int
    stage: str
    diagnosis: str
    age: int
    sci_level: str = ""
    risks: tuple[str, ...] = ()
    channel: str = Patient.Channel.EMAIL
    consent: bool = True
    user: str = ""
    # Trial: list of (bolus mcg, effect 0..2) and the verdict; started `trial_ago` days ago.
    trial: tuple[tuple[int, float], ...] = ()
    trial_ago: int = 0
    verdict: str = ""
    effect_hours: int = 6
    referred_ago: int = 0
    # Pump
    pump: tuple[str, str] | None = None
    dose: int = 0
    conc: int = 0
    implanted_ago: int = 0  # days
    history_days: int = 300  # how far back refills are recorded (from the implant if more recent)
    due: tuple[int, int] | None = None  # the forecast due-by falls in this range (days from today)
    last_visit_ago: int | None = None  # instead of `due`: the last refill was this many days ago
    book_refill: bool = False  # a future refill is booked inside the safe window
    titrate: bool = True
    dose_changes: bool = False  # clinician changes the dose between refills
    flag_discrepancy: float = 0.0  # one visit's aspirated residual is this far from expected (mL)
    tip: str = "T10"
    extra: dict = field(default_factory=dict)


def _specs() -> list[Spec]:
    sm20, sm40 = ("SynchroMed II", "20"), ("SynchroMed II", "40")
    pr20, pr40 = ("Prometra II", "20"), ("Prometra II", "40")
    codman = ("Codman 3000", "30")
    year = 365
    return [
        # --- referred, waiting for a screening trial
        Spec(1, "awaiting_trial", "ms", 47, referred_ago=21, extra={"trial_appointment_in": 6}),
        Spec(2, "awaiting_trial", "sci", 33, sci_level="T8", referred_ago=10),
        Spec(3, "awaiting_trial", "cp", 24, referred_ago=40, risks=("comm",), extra={"trial_appointment_in": 17}),
        # --- screening trials
        Spec(4, "trial_positive", "ms", 52, referred_ago=70, trial=((50, 1), (75, 2)), trial_ago=15,
             verdict="positive", extra={"review_in": 9}),
        Spec(5, "trial_positive", "stroke", 61, referred_ago=90, trial=((50, 2),), trial_ago=33,
             verdict="positive", effect_hours=10, extra={"review_in": 3}),
        Spec(6, "trial_negative", "bi", 38, referred_ago=80, trial=((50, 0), (75, 0), (100, 0.5)), trial_ago=22,
             verdict="negative"),
        # --- implanted last week, from a positive trial: starting dose 2 x 75 mcg
        Spec(7, "implanted_last_week", "sci", 29, sci_level="T11", referred_ago=120, trial=((50, 1), (75, 2)),
             trial_ago=45, verdict="positive", pump=sm20, conc=500, implanted_ago=6, tip="T10",
             extra={"review_in": 8}),
        # --- refill due within days, one booked
        Spec(8, "due_soon_booked", "ms", 56, pump=sm20, dose=400, conc=2000, implanted_ago=3 * year + 40,
             history_days=2 * year, due=(4, 7), book_refill=True, user="patient1", dose_changes=True),
        Spec(9, "due_soon_booked", "sci", 44, sci_level="T6", risks=("sci_high",), pump=sm40, dose=700,
             conc=2000, implanted_ago=2 * year + 100, due=(6, 9), book_refill=True),
        Spec(10, "due_soon_booked", "cp", 31, pump=pr20, dose=300, conc=2000, implanted_ago=year + 200,
             due=(8, 11), book_refill=True, flag_discrepancy=-2.4, tip="T7"),
        # --- refill due within days, nothing booked
        Spec(11, "due_soon_unbooked", "cp", 27, risks=("comm",), consent=False, pump=sm20, dose=250, conc=1000,
             implanted_ago=4 * year, due=(3, 5)),
        Spec(12, "due_soon_unbooked", "ms", 63, pump=sm40, dose=500, conc=2000, implanted_ago=year + 300,
             due=(8, 10), channel=Patient.Channel.SMS),
        # --- overdue: due-by passed, alarm in a few days, nothing booked (the urgent case)
        Spec(13, "overdue_unbooked", "sci", 38, sci_level="T4", risks=("sci_high", "prev"), pump=sm20, dose=600,
             conc=2000, implanted_ago=5 * year, history_days=2 * year, due=(-4, -1), tip="T6",
             channel=Patient.Channel.SMS, dose_changes=True),
        # --- no-show last week
        Spec(14, "no_show", "stroke", 68, pump=sm20, dose=200, conc=1000, implanted_ago=2 * year, due=(2, 5),
             extra={"no_show_ago": 5}),
        # --- batteries
        Spec(15, "near_battery_end", "ms", 66, pump=sm20, dose=450, conc=2000, implanted_ago=6 * year + 180,
             history_days=year, due=(24, 30), book_refill=True, extra={"replacement_in": 36}),
        Spec(16, "near_battery_end", "hsp", 58, pump=sm40, dose=650, conc=2000, implanted_ago=6 * year + 130,
             due=(40, 55), flag_discrepancy=2.7),
        Spec(17, "eri", "sci", 51, sci_level="T10", pump=sm20, dose=350, conc=1000, implanted_ago=5 * year + 270,
             due=(30, 40), extra={"eri_at_last_visit": True, "replacement_in": 22}),
        # --- explanted (infection), and replaced at battery end
        Spec(18, "explanted", "bi", 42, pump=sm20, dose=300, conc=1000, implanted_ago=year + 60, last_visit_ago=75,
             extra={"explanted_ago": 55, "explant_reason": "Pump pocket infection: pump removed, oral baclofen"
                    " restarted; re-implant to be considered in 6 months."}),
        Spec(19, "replaced", "ms", 60, pump=sm40, dose=550, conc=2000, implanted_ago=118, due=(35, 50),
             book_refill=True,
             extra={"old_pump": sm20, "old_implanted_ago": 7 * year - 90, "old_dose": 480, "old_conc": 2000}),
        # --- other pump models
        # constant flow: the dose is the labelled flow x the concentration (0.5 mL/day x 1000 mcg/mL)
        Spec(20, "codman_constant_flow", "sci", 55, sci_level="T12", pump=codman, dose=500, conc=1000,
             implanted_ago=9 * year, due=(15, 20), book_refill=True, titrate=False, extra={"flow": "0.5"}),
        Spec(21, "prometra", "ms", 49, pump=pr40, dose=700, conc=2000, implanted_ago=3 * year, history_days=2 * year,
             due=(20, 26), book_refill=True),
        Spec(22, "prometra", "hsp", 45, pump=pr20, dose=350, conc=1000, implanted_ago=year + 30, due=(12, 16),
             book_refill=True, dose_changes=True),
        # --- left the clinic
        Spec(23, "transferred", "cp", 35, pump=sm20, dose=180, conc=500, implanted_ago=3 * year,
             last_visit_ago=110,
             extra={"status": Patient.Status.TRANSFERRED,
                    "note": "Care transferred to the regional neurorehabilitation centre after moving house."}),
        Spec(24, "deceased", "ms", 74, pump=sm40, dose=600, conc=2000, implanted_ago=4 * year,
             last_visit_ago=70,
             extra={"status": Patient.Status.DECEASED, "note": "Died in hospital (pneumonia), unrelated to ITB."}),
        # --- steady patients: a calendar of refills over the coming weeks
        Spec(25, "steady", "ms", 53, pump=sm40, dose=500, conc=2000, implanted_ago=2 * year + 30, due=(14, 17),
             book_refill=True),
        Spec(26, "steady", "sci", 36, sci_level="C6", risks=("sci_high",), pump=sm20, dose=420, conc=2000,
             implanted_ago=year + 250, due=(16, 19), book_refill=True, tip="C7", flag_discrepancy=2.3),
        Spec(27, "steady", "ms", 48, pump=sm20, dose=380, conc=2000, implanted_ago=2 * year + 200,
             history_days=2 * year, due=(11, 13), book_refill=True, user="patient2", channel=Patient.Channel.SMS),
        Spec(28, "steady", "cp", 22, risks=("comm",), pump=sm20, dose=150, conc=500, implanted_ago=year + 120,
             due=(18, 22), book_refill=True, tip="T7", extra={"review_in": 2}),
        Spec(29, "steady", "hsp", 57, pump=sm40, dose=450, conc=1000, implanted_ago=2 * year + 60, due=(21, 24),
             book_refill=True),
        Spec(30, "steady", "stroke", 70, pump=sm20, dose=240, conc=1000, implanted_ago=year + 180, due=(22, 27),
             book_refill=True, extra={"review_in": 4}),
        Spec(31, "steady", "ms", 59, pump=pr40, dose=520, conc=1000, implanted_ago=2 * year + 10,
             due=(25, 28), book_refill=True),
        Spec(32, "steady", "sci", 41, sci_level="T9", pump=sm40, dose=800, conc=2000, implanted_ago=3 * year + 90,
             history_days=year + 100, due=(27, 31), book_refill=True, dose_changes=True),
        Spec(33, "steady", "bi", 34, pump=sm20, dose=320, conc=2000, implanted_ago=year + 40, due=(29, 33),
             book_refill=True, extra={"review_in": 10}),
        Spec(34, "steady", "ms", 62, pump=sm20, dose=550, conc=2000, implanted_ago=4 * year + 20,
             due=(31, 35), book_refill=True, extra={"review_in": 1}),
        Spec(35, "steady", "cp", 28, pump=pr20, dose=220, conc=1000, implanted_ago=year + 100, due=(33, 38),
             book_refill=True, tip="T6"),
        Spec(36, "steady", "sci", 46, sci_level="L1", pump=sm40, dose=600, conc=2000, implanted_ago=2 * year + 150,
             due=(44, 50), extra={"review_in": 11}),
        Spec(37, "steady", "stroke", 65, pump=sm20, dose=180, conc=1000, implanted_ago=year + 20, due=(55, 62),
             extra={"review_in": 15}),
        Spec(38, "steady", "ms", 50, pump=sm40, dose=480, conc=2000, implanted_ago=year + 280, due=(64, 70),
             dose_changes=True, extra={"review_in": 16}),
        Spec(39, "steady", "hsp", 39, pump=sm20, dose=300, conc=1000, implanted_ago=2 * year + 220,
             due=(20, 23), book_refill=True, extra={"review_in": 12}),
        Spec(40, "steady", "sci", 30, sci_level="T5", risks=("sci_high",), pump=sm40, dose=750, conc=2000,
             implanted_ago=year + 160, due=(12, 15), book_refill=True, tip="T6", extra={"review_in": 5}),
    ]  # fmt: skip


def _q(value: float | Decimal, places: str = "0.1") -> Decimal:
    return Decimal(str(value)).quantize(Decimal(places), rounding=ROUND_HALF_UP)


def _round10(value: float) -> Decimal:
    return Decimal(round(value / 10.0) * 10)


def _weekday_on_or_before(day: dt.date) -> dt.date:
    while day.weekday() >= 5:
        day -= dt.timedelta(days=1)
    return day


def _weekday_on_or_after(day: dt.date) -> dt.date:
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


@dataclass(frozen=True)
class PlannedVisit:
    day: dt.date
    dose: Decimal  # set at this refill
    conc: int
    change: tuple[dt.date, Decimal] | None = None  # a dose change by phone before the next refill


class _ClinicBuilder:
    def __init__(self, *, today: dt.date, nurse, clinician, patient_users: dict):
        self.today = today
        self.nurse = nurse
        self.clinician = clinician
        self.patient_users = patient_users
        self.tz = timezone.get_current_timezone()
        self.clinic = ClinicSettings.load()
        # Seeding happens "this morning": bookings for the future are made now, before clinic opens.
        self.now = self.at(today, dt.time(7, 30))
        self.used_slots: dict[dt.date, set[dt.time]] = {}
        self.max_intervals: dict[tuple[int, int], int | None] = {}
        # The clinic's own closed days and its country's public holidays (as booking refuses them).
        self.closed_days = set(ClosedDay.objects.values_list("date", flat=True)) | set(
            public_holidays(
                start=dt.date(today.year - 15, 1, 1),
                end=dt.date(today.year + 3, 12, 31),
                country=self.clinic.holiday_country,
                subdivision=self.clinic.holiday_subdivision,
            )
        )
        self.pump_models = {(m.name, str(int(m.reservoir_ml))): m for m in PumpModel.objects.all()}
        self.drugs = {
            int(d.concentration_mcg_per_ml): d
            for d in Drug.objects.filter(screening_only=False, compounded=False, is_active=True).order_by("-id")
        }

    # --- time -------------------------------------------------------------------------
    def at(self, day: dt.date, time: dt.time) -> dt.datetime:
        return dt.datetime.combine(day, time, tzinfo=self.tz)

    def ago(self, days: int) -> dt.date:
        return self.today - dt.timedelta(days=days)

    def slot(self, day: dt.date, rng: random.Random) -> dt.datetime:
        used = self.used_slots.get(day)
        if used is None:
            used = {
                timezone.localtime(s).time()
                for s in Appointment.objects.filter(
                    starts_at__gte=self.at(day, dt.time.min),
                    starts_at__lt=self.at(day + dt.timedelta(days=1), dt.time.min),
                ).values_list("starts_at", flat=True)
            }
            self.used_slots[day] = used
        free = [t for t in SLOTS if t not in used] or SLOTS
        chosen = rng.choice(free)
        used.add(chosen)
        return self.at(day, chosen)

    def open_day(self, day: dt.date, *, step: int) -> dt.date:
        """The nearest day the clinic is open, moving by `step` days (±1)."""
        while day.weekday() in (self.clinic.closed_weekdays or []) or day in self.closed_days:
            day += dt.timedelta(days=step)
        return day

    # --- patients and trials ------------------------------------------------------------
    def patient(self, spec: Spec, rng: random.Random) -> Patient:
        given, family = GIVEN_NAMES[spec.n - 1], FAMILY_NAMES[(spec.n * 7) % len(FAMILY_NAMES)]
        origin, diagnosis, detail = DIAGNOSES[spec.diagnosis]
        born = self.today - dt.timedelta(days=spec.age * 365 + rng.randint(20, 340))
        referred = spec.referred_ago or (spec.implanted_ago + rng.randint(90, 200))
        return patient_create(
            data={
                "mrn": f"{MRN_PREFIX}{spec.n:04d}",
                "given_name": given,
                "family_name": family,
                "date_of_birth": born,
                "spasticity_origin": origin,
                "diagnosis": diagnosis,
                "diagnosis_detail": detail + (f" ({spec.sci_level})" if spec.sci_level else ""),
                "sci_level": spec.sci_level,
                "risk_high_sci": "sci_high" in spec.risks,
                "risk_communication_difficulty": "comm" in spec.risks,
                "risk_previous_withdrawal": "prev" in spec.risks,
                # example.org and Ofcom's drama range (020 7946 0xxx): nothing here can reach a person.
                "email": f"{given}.{family}{spec.n}@example.org".lower(),
                "phone": f"+442079460{spec.n:03d}",
                "reminder_consent": spec.consent,
                "reminder_channel": spec.channel,
                "referred_on": self.ago(referred),
                "notes": "Previous baclofen withdrawal after an empty reservoir." if "prev" in spec.risks else "",
            }
        )

    def trial(self, spec: Spec, patient: Patient, rng: random.Random) -> ScreeningTrial:
        started = _weekday_on_or_before(self.ago(spec.trial_ago))
        trial = trial_start(
            patient=patient,
            clinician=self.clinician,
            started_on=started,
            positivity_rule=ScreeningTrial.Rule.MAS_LOWER_LIMB_MEAN_1,
            goals="Easier transfers and personal care; fewer painful spasms at night.",
        )
        groups = LOWER_LIMB + (UPPER_LIMB if spec.diagnosis in ("cp", "bi", "stroke") else [])
        baseline = {g: rng.choice([3, 4, 4, 5]) for g in groups}  # indexes into MAS_SCALE: 2, 3, 3, 4
        penn_baseline = rng.choice([3, 3, 4])
        for day_index, (bolus, effect) in enumerate(spec.trial):
            given_at = self.at(started + dt.timedelta(days=day_index), dt.time(9, 30))
            step = trial_step_add(
                trial=trial,
                given_at=given_at,
                dose_mcg=Decimal(bolus),
                volume_ml=_q(bolus / 50, "0.01"),  # screening ampoules: 50 mcg/mL
                given_by=self.clinician,
                notes=f"{bolus} mcg by lumbar puncture, L3/4.",
            )
            for hours, share in EFFECT_CURVE.items():
                drop = round(share * effect * 1.2)
                trial_assessment_add(
                    trial=trial,
                    step=step,
                    hours_after=Decimal(hours),
                    assessed_at=given_at + dt.timedelta(hours=hours) - dt.timedelta(minutes=15 if hours == 0 else 0),
                    assessed_by=self.clinician,
                    ashworth={g: MAS_SCALE[max(0, score - drop)] for g, score in baseline.items()},
                    penn_score=max(0, penn_baseline - round(share * effect)),
                    adverse_effects="Mild drowsiness" if bolus >= 100 and hours in (2, 4) else "",
                    notes="Baseline before the bolus" if hours == 0 else "",
                )
        if spec.verdict == "positive":
            bolus = next(b for b, effect in spec.trial if effect >= 2)
            return trial_record_verdict(
                trial=trial,
                verdict=ScreeningTrial.Verdict.POSITIVE,
                positivity_rule=ScreeningTrial.Rule.MAS_LOWER_LIMB_MEAN_1,
                by=self.clinician,
                effective_bolus_mcg=Decimal(bolus),
                effect_hours=Decimal(spec.effect_hours),
                verdict_notes=f"Lower-limb Ashworth fell by more than one point at {bolus} mcg; walking aid use eased.",
            )
        return trial_record_verdict(
            trial=trial,
            verdict=ScreeningTrial.Verdict.NEGATIVE,
            positivity_rule=ScreeningTrial.Rule.MAS_LOWER_LIMB_MEAN_1,
            by=self.clinician,
            verdict_notes="No meaningful change up to 100 mcg: not a candidate for a pump.",
        )

    # --- appointments -------------------------------------------------------------------
    def book(
        self,
        *,
        patient: Patient,
        kind: str,
        day: dt.date,
        now: dt.datetime,
        rng: random.Random,
        implant: Implant | None = None,
        notes: str = "",
    ) -> Appointment:
        step = -1 if day < self.today else 1
        day = self.open_day(day, step=step)
        booked_by, reason = self.nurse, ""
        for _ in range(10):
            try:
                return appointment_book(
                    patient=patient,
                    kind=kind,
                    starts_at=self.slot(day, rng),
                    booked_by=booked_by,
                    implant=implant,
                    outside_window_reason=reason,
                    duration_minutes=90 if kind == Appointment.Kind.REPLACEMENT else 30,
                    notes=notes,
                    now=now,
                )
            except ValidationError as exc:
                message = " ".join(exc.message_dict.get("starts_at", [])) if hasattr(exc, "error_dict") else ""
                if "clinician may override" in message and not reason:
                    # As a clinic would: a clinician signs off a refill outside the safe window.
                    booked_by = self.clinician
                    reason = (
                        "Brought forward to fit the patient's transport."
                        if "before the safe window" in message
                        else "No clinic day before the due-by date: alarm date checked, still safe."
                    )
                elif "is full" in message:
                    day = self.open_day(day + dt.timedelta(days=step), step=step)
                else:
                    raise
        raise ValidationError({"starts_at": f"No free refill slot near {day} for the demo."})

    # --- pumps and refills --------------------------------------------------------------
    def forecast(self, *, model: PumpModel, visit: "PlannedVisit") -> dt.date:
        """The due-by date a planned refill leads to: the same pure function the services use."""
        drug = self.drugs[visit.conc]
        key = (drug.pk, model.pk)
        if key not in self.max_intervals:
            self.max_intervals[key] = max_interval_days_get(drug=drug, implant=Implant(pump_model=model))
        return pump_forecast(
            events=self.planned_events(model=model, visit=visit, max_interval_days=self.max_intervals[key]),
            tz=timezone.get_current_timezone(),
            safety_margin_days=self.clinic.safety_margin_days,
        ).due_by

    def planned_events(self, *, model: PumpModel, visit: "PlannedVisit", max_interval_days: int | None = None):
        """A planned refill (and the dose change after it) as forecast events, at the demo's times."""
        at = self.at(visit.day, dt.time(0, 0))
        events = [
            Fill(
                at=at,
                volume_ml=Decimal(model.reservoir_ml),
                concentration_mcg_per_ml=self.drugs[visit.conc].concentration_mcg_per_ml,
                alarm_threshold_ml=model.alarm_threshold_ml,
                max_interval_days=max_interval_days,
            ),
            Dose(at=at, daily_dose_mcg=visit.dose),
        ]
        if visit.change:
            events.append(Dose(at=self.at(visit.change[0], dt.time(11, 0)), daily_dose_mcg=visit.change[1]))
        return events

    def last_visit_for_due(self, *, model: PumpModel, due: tuple[int, int], dose: Decimal, conc: int) -> dt.date:
        """The latest clinic day whose refill puts the due-by date inside `due` (days from today)."""
        low, high = self.today + dt.timedelta(days=due[0]), self.today + dt.timedelta(days=due[1])
        probe = PlannedVisit(day=self.today, dose=dose, conc=conc)
        day = high - (self.forecast(model=model, visit=probe) - self.today)
        for _ in range(14):
            probe = PlannedVisit(day=day, dose=dose, conc=conc)
            if day.weekday() < 5 and low <= self.forecast(model=model, visit=probe) <= high:
                break
            day -= dt.timedelta(days=1)
        return min(day, self.ago(1))

    def plan(
        self, *, spec: Spec, model: PumpModel, last: dt.date, final_dose: Decimal, earliest: dt.date, rng
    ) -> list["PlannedVisit"]:
        """Refills planned backwards from the last one, each a few days before the previous fill's due-by.

        Planning backwards is what lets every refill sit inside the safe window of the fill
        before it and still land the last one where the demo needs it (due soon, overdue…).
        """
        plan = [PlannedVisit(day=last, dose=final_dose, conc=spec.conc)]
        floor = max(Decimal(90), _round10(float(final_dose) * 0.7))
        while True:
            following = plan[0]
            running = following.dose
            if spec.titrate and rng.random() < 0.4:
                running = max(floor, _round10(float(running) / rng.uniform(1.05, 1.15)))
            lead = rng.randint(3, 9)
            dose, change_after = running, None
            if spec.dose_changes and rng.random() < 0.5:
                # A clinician raised the dose by phone part-way through this interval.
                before = max(floor, _round10(float(running) / 1.1))
                if before < running:
                    dose, change_after = before, dt.timedelta(days=rng.randint(14, 30))

            def planned(day: dt.date, dose=dose, running=running, change_after=change_after) -> PlannedVisit:
                change = (day + change_after, running) if change_after else None
                return PlannedVisit(day=day, dose=dose, conc=spec.conc, change=change)

            # A fill's due-by is the same number of days after it whatever its date: solve for the day.
            days_to_due = self.forecast(model=model, visit=planned(following.day)) - following.day
            day = _weekday_on_or_before(following.day + dt.timedelta(days=lead) - days_to_due)
            previous = planned(day)
            too_short = day > following.day - dt.timedelta(days=14) or (
                previous.change is not None and previous.change[0] > following.day - dt.timedelta(days=7)
            )
            if too_short or day < earliest:
                return plan
            plan.insert(0, previous)

    def refill(
        self,
        *,
        implant: Implant,
        day: dt.date,
        rng: random.Random,
        dose: Decimal,
        conc: int,
        appointment: Appointment | None,
        expected: Decimal | None,
        previous_dose: Decimal,
        offset_ml: float | None = None,
        battery: str | None = None,
        notes: str = "",
    ) -> RefillVisit:
        model = implant.pump_model
        changed = dose != previous_dose
        if expected is None:
            actual = _q(rng.uniform(1.5, 4.0))
        else:
            noise = offset_ml if offset_ml is not None else rng.gauss(0, 0.45)
            actual = min(max(Decimal("0"), _q(float(expected) + noise)), Decimal(model.reservoir_ml))
        performed_at = appointment.starts_at + dt.timedelta(minutes=10) if appointment else self.at(day, dt.time(15, 0))
        if battery is None:
            battery = RefillVisit.BatteryStatus.OK if model.has_battery else RefillVisit.BatteryStatus.NOT_APPLICABLE
        return refill_visit_record(
            implant=implant,
            performed_at=performed_at,
            performed_by=self.nurse,
            prescriber=self.clinician if changed else None,
            titration_confirmed=changed
            and self.needs_confirmation(patient=implant.patient, dose=dose, previous=previous_dose, on=day),
            actual_residual_ml=actual,
            volume_added_ml=Decimal(model.reservoir_ml),
            drug=self.drugs[conc],
            drug_lot=f"{'LB' if conc != 1000 else 'GB'}{rng.randint(10000, 99999)}",
            daily_dose_after_mcg=dose,
            battery_status=battery,
            appointment=appointment,
            notes=notes or ("Dose titrated at this visit." if changed else ""),
        )

    def expected_residual(
        self, *, model: PumpModel, previous: "tuple[dt.date, PlannedVisit] | None", on: dt.date
    ) -> Decimal | None:
        """What the forecast says is left (as the refill service computes it), to add the aspiration's noise to."""
        if previous is None:
            return None
        _day, planned = previous
        return reservoir_volume_on(
            events=self.planned_events(model=model, visit=planned), tz=timezone.get_current_timezone(), on=on
        ).quantize(Decimal("0.01"))

    def visit_booking(
        self, *, implant: Implant, day: dt.date, booked_at: dt.datetime, rng: random.Random
    ) -> tuple[Appointment | None, dt.date]:
        """The refill appointment a past visit completes: booked at the previous visit.

        Visits older than BOOKED_HISTORY_DAYS are recorded without one (as if the clinic's diary
        was kept elsewhere back then): it keeps the seed fast without changing any forecast.
        """
        if day < self.today - dt.timedelta(days=BOOKED_HISTORY_DAYS):
            return None, self.open_day(day, step=-1)
        appointment = self.book(
            patient=implant.patient, kind=Appointment.Kind.REFILL, day=day, now=booked_at, rng=rng, implant=implant
        )
        return appointment, timezone.localdate(appointment.starts_at)

    def carry_out(
        self,
        *,
        spec: Spec,
        implant: Implant,
        plan: list["PlannedVisit"],
        rng: random.Random,
        first_is_implant: bool,
        last_battery: str | None = None,
    ) -> dt.datetime:
        """Record the planned refills in order; returns when the last visit ended (next booking made then).

        With `first_is_implant` the first planned fill is the one in theatre, already on the
        implant (`register`): the refills start with the second.
        """
        booked_at = None
        flag_at = min(2, len(plan) - 1) if spec.flag_discrepancy and len(plan) > 1 else None
        running = plan[0].dose  # the dose in force: the implant's starting prescription
        previous: tuple[dt.date, PlannedVisit] | None = None
        implant = Implant.objects.select_related("pump_model", "patient").get(pk=implant.pk)
        for index, planned in enumerate(plan):
            if index == 0 and first_is_implant:
                self.phone_dose_change(implant=implant, planned=planned)
                running = planned.change[1] if planned.change else planned.dose
                previous = (planned.day, planned)
                booked_at = self.at(planned.day, dt.time(16, 0))  # the next refill booked after theatre
                continue
            appointment, day = None, planned.day
            if booked_at is not None:
                appointment, day = self.visit_booking(implant=implant, day=planned.day, booked_at=booked_at, rng=rng)
            last = index == len(plan) - 1
            note = ""
            if index == 0:
                note = "First refill recorded in this system."
            elif index == flag_at:
                note = "Residual well off the forecast: pump log and catheter to be reviewed."
            elif last and last_battery == RefillVisit.BatteryStatus.ERI:
                note = "Pump reports ERI: replacement to be booked."
            visit = self.refill(
                implant=implant,
                day=day,
                rng=rng,
                dose=planned.dose,
                conc=planned.conc,
                appointment=appointment,
                expected=self.expected_residual(model=implant.pump_model, previous=previous, on=day),
                previous_dose=running,
                offset_ml=spec.flag_discrepancy if index == flag_at else None,
                battery=last_battery if last else None,
                notes=note,
            )
            self.phone_dose_change(implant=implant, planned=planned)
            running = planned.change[1] if planned.change else planned.dose
            previous = (day, planned)
            booked_at = visit.performed_at + dt.timedelta(minutes=20)
        return booked_at

    def phone_dose_change(self, *, implant: Implant, planned: "PlannedVisit") -> None:
        """The dose change by phone a planned fill is followed by, if any (by the clinician)."""
        if planned.change is None:
            return
        day, dose = planned.change
        dose_change_record(
            implant=implant,
            daily_dose_mcg=dose,
            effective_at=self.at(day, dt.time(11, 0)),
            prescribed_by=self.clinician,
            titration_confirmed=self.needs_confirmation(
                patient=implant.patient, dose=dose, previous=planned.dose, on=day
            ),
            reason="More spasms at night reported by phone: dose raised by 10%.",
        )

    def needs_confirmation(self, *, patient: Patient, dose: Decimal, previous: Decimal | None, on: dt.date) -> bool:
        """The clinic's rule: outside the patient's usual range or beyond the titration limits, the
        prescribing clinician confirms the dose (as the demo's clinician does)."""
        clinic = self.clinic
        return bool(
            dose_needs_confirmation(
                daily_dose_mcg=Decimal(dose),
                previous_daily_dose_mcg=None if previous is None else Decimal(previous),
                spasticity_origin=patient.spasticity_origin,
                is_child=is_child(date_of_birth=patient.date_of_birth, on=on),
                usual_ranges=clinic.usual_dose_ranges or {},
                max_increase_pct=clinic.titration_max_increase_pct,
                max_increase_cerebral_pct=clinic.titration_max_increase_cerebral_pct,
                max_decrease_pct=clinic.titration_max_decrease_pct,
            )
        )

    def implant_fields(
        self,
        *,
        spec: Spec,
        pump: tuple[str, str],
        implanted_on: dt.date,
        dose: Decimal,
        conc: int,
        serial: str,
        with_fill: bool,
    ) -> dict:
        """The registration of a pump: with its fill in theatre when the demo shows its whole history."""
        model = self.pump_models[pump]
        fields = {
            "pump_model": model,
            "serial_number": serial,
            "implanted_on": implanted_on,
            "surgeon": SURGEONS[spec.n % len(SURGEONS)],
            "hospital": HOSPITALS[spec.n % len(HOSPITALS)],
            "catheter_tip_level": spec.tip,
            "catheter_model": "8709SC" if model.manufacturer == "Medtronic" else "Standard intrathecal catheter",
            "starting_daily_dose_mcg": Decimal(dose),
        }
        if model.is_constant_flow:
            fields["flow_ml_per_day"] = Decimal(spec.extra.get("flow", model.default_flow_ml_per_day))
        if with_fill:
            # Full in theatre, the model's alarm volume; the starting dose runs from the fill.
            fields.update(
                fill_drug=self.drugs[conc],
                fill_volume_ml=Decimal(model.reservoir_ml),
                fill_drug_lot=f"TH{spec.n:03d}{implanted_on:%y%m}",
            )
        else:
            fields.update(
                concentration_mcg_per_ml=Decimal(conc), dose_effective_at=self.at(implanted_on, dt.time(12, 0))
            )
        return fields

    def register(self, *, patient: Patient, **fields) -> Implant:
        return implant_register_with_fill(patient=patient, recorded_by=self.clinician, **self.implant_fields(**fields))

    def serial(self, spec: Spec, pump: tuple[str, str], suffix: int = 0) -> str:
        prefix = {"SynchroMed II": "NGP", "Prometra II": "PRM", "Codman 3000": "C3K"}[pump[0]]
        return f"{prefix}{210000 + spec.n * 37 + suffix * 5000:07d}"

    def pump_patient(self, spec: Spec, patient: Patient, rng: random.Random) -> None:
        model = self.pump_models[spec.pump]
        final_dose = Decimal(spec.dose)
        if spec.stage == "implanted_last_week":
            final_dose = trial_get_summary(trial_id=patient.trials.get().pk).suggested_starting_dose_mcg
        nominal_implant = _weekday_on_or_before(self.ago(spec.implanted_ago))
        if spec.due is not None:
            last = self.last_visit_for_due(model=model, due=spec.due, dose=final_dose, conc=spec.conc)
        elif spec.last_visit_ago is not None:
            last = _weekday_on_or_before(self.ago(spec.last_visit_ago))
        else:
            last = nominal_implant
        # Recent pumps show their whole history from the fill in theatre (the implant date moves to
        # the first planned fill); older ones show the last `history_days` of refills.
        from_implant = spec.implanted_ago <= spec.history_days
        earliest = nominal_implant if from_implant else last - dt.timedelta(days=spec.history_days)
        plan = self.plan(spec=spec, model=model, last=last, final_dose=final_dose, earliest=earliest, rng=rng)
        implanted_on = plan[0].day if from_implant else nominal_implant
        new_pump = {
            "spec": spec,
            "pump": spec.pump,
            "implanted_on": implanted_on,
            "dose": plan[0].dose,
            "conc": spec.conc,
            "serial": self.serial(spec, spec.pump),
            "with_fill": from_implant,
        }
        if "old_pump" in spec.extra:
            old = self.replaced_pump(spec, patient, rng, new_implanted_on=implanted_on)
            implant = implant_replace(
                implant=old,
                explanted_on=implanted_on,
                reason="Elective replacement: battery at the end of its service life; new pump implanted the same day.",
                recorded_by=self.clinician,
                **self.implant_fields(**new_pump),
            )
        else:
            implant = self.register(patient=patient, **new_pump)
        booked_at = self.carry_out(
            spec=spec,
            implant=implant,
            plan=plan,
            rng=rng,
            first_is_implant=from_implant,
            last_battery=RefillVisit.BatteryStatus.ERI if spec.extra.get("eri_at_last_visit") else None,
        )
        implant = Implant.objects.select_related("pump_model", "patient").get(pk=implant.pk)
        self.after_history(spec, patient, implant, rng, booked_at)

    def replaced_pump(self, spec: Spec, patient: Patient, rng: random.Random, *, new_implanted_on: dt.date) -> Implant:
        """The pump before the replacement, with its recent refills (replaced by `implant_replace`)."""
        pump = spec.extra["old_pump"]
        model = self.pump_models[pump]
        old_spec = Spec(n=spec.n, stage="replaced", diagnosis=spec.diagnosis, age=spec.age, conc=spec.extra["old_conc"])
        last = _weekday_on_or_before(new_implanted_on - dt.timedelta(days=rng.randint(20, 40)))
        plan = self.plan(
            spec=old_spec,
            model=model,
            last=last,
            final_dose=Decimal(spec.extra["old_dose"]),
            earliest=last - dt.timedelta(days=spec.history_days),
            rng=rng,
        )
        old = self.register(
            spec=spec,
            patient=patient,
            pump=pump,
            implanted_on=_weekday_on_or_before(self.ago(spec.extra["old_implanted_ago"])),
            dose=plan[0].dose,
            conc=old_spec.conc,
            serial=self.serial(spec, pump, suffix=1),
            with_fill=False,
        )
        self.carry_out(spec=old_spec, implant=old, plan=plan, rng=rng, first_is_implant=False)
        return old

    def after_history(
        self, spec: Spec, patient: Patient, implant: Implant, rng: random.Random, booked_at: dt.datetime
    ) -> None:
        extra = spec.extra
        if "no_show_ago" in extra:
            day = _weekday_on_or_before(self.ago(extra["no_show_ago"]))
            missed = self.book(
                patient=patient, kind=Appointment.Kind.REFILL, day=day, now=booked_at, rng=rng, implant=implant
            )
            appointment_mark_no_show(appointment=missed, now=self.now)
        if spec.book_refill:
            # Booked at the last visit, a few days before the due-by date (never today or earlier).
            window = refill_window_get(implant=implant, clinic=self.clinic)
            target = max(self.today + dt.timedelta(days=1), window.due_by - dt.timedelta(days=rng.randint(1, 6)))
            day = _weekday_on_or_before(target)
            self.book(
                patient=patient,
                kind=Appointment.Kind.REFILL,
                day=day if day > self.today else _weekday_on_or_after(target),
                now=booked_at,
                rng=rng,
                implant=implant,
            )
        if "replacement_in" in extra:
            self.book(
                patient=patient,
                kind=Appointment.Kind.REPLACEMENT,
                day=self.today + dt.timedelta(days=extra["replacement_in"]),
                now=self.now,
                rng=rng,
                implant=implant,
                notes="Pump replacement, day case; refill the new pump in theatre.",
            )
        if "explanted_ago" in extra:
            implant_explant_record(
                implant=implant,
                explanted_on=_weekday_on_or_before(self.ago(extra["explanted_ago"])),
                reason=extra["explant_reason"],
                by=self.clinician,
            )
        if "status" in extra:
            patient_update(patient=patient, data={"status": extra["status"], "notes": extra["note"]})

    def build(self, spec: Spec) -> Patient:
        rng = random.Random(f"itb-demo-{spec.n}")
        patient = self.patient(spec, rng)
        if spec.trial:
            self.trial(spec, patient, rng)
        if spec.pump:
            self.pump_patient(spec, patient, rng)
        extra = spec.extra
        if "trial_appointment_in" in extra:
            self.book(
                patient=patient,
                kind=Appointment.Kind.TRIAL,
                day=self.today + dt.timedelta(days=extra["trial_appointment_in"]),
                now=self.now,
                rng=rng,
                notes="Screening bolus, day unit: 50 mcg, assessments to 8 h.",
            )
        if "review_in" in extra and patient.status == Patient.Status.ACTIVE:
            self.book(
                patient=patient,
                kind=Appointment.Kind.REVIEW,
                day=self.today + dt.timedelta(days=extra["review_in"]),
                now=self.now,
                rng=rng,
                notes="Annual ITB review with goals and Ashworth." if spec.pump else "Plan the implant.",
            )
        return patient

    def fill_calendar(self, *, days: int = 15, per_day: int = 2) -> int:
        """Reviews on the quieter clinic days ahead, so the diary looks like a working clinic's."""
        rng = random.Random("itb-demo-calendar")
        candidates = list(
            Patient.objects.filter(
                mrn__startswith=MRN_PREFIX,
                status=Patient.Status.ACTIVE,
                implants__explanted_on__isnull=True,
                implants__entered_in_error=False,
            )
            .exclude(appointments__kind=Appointment.Kind.REVIEW, appointments__status=Appointment.Status.BOOKED)
            .order_by("mrn")
        )
        booked, day = 0, self.today
        for _ in range(days):
            day = self.open_day(_weekday_on_or_after(day + dt.timedelta(days=1)), step=1)
            start, end = self.at(day, dt.time.min), self.at(day + dt.timedelta(days=1), dt.time.min)
            missing = per_day - Appointment.objects.filter(starts_at__gte=start, starts_at__lt=end).count()
            for _ in range(max(0, missing)):
                if not candidates:
                    return booked
                patient = candidates.pop(rng.randrange(len(candidates)))
                self.book(
                    patient=patient,
                    kind=Appointment.Kind.REVIEW,
                    day=day,
                    now=self.now,
                    rng=rng,
                    notes="Annual ITB review with goals and Ashworth.",
                )
                booked += 1
        return booked

    def link_user(self, spec: Spec, user) -> None:
        patient = Patient.objects.get(mrn=f"{MRN_PREFIX}{spec.n:04d}")
        if patient.user_id is not None or Patient.objects.filter(user=user).exists():
            return
        data = {"user": user, "reminder_consent": True}
        if user.email:
            data["email"] = user.email
        patient_update(patient=patient, data=data)


def _user(users: dict, key: str, role: Role | None = None):
    """The demo user under `key` (given, or by username); staff fall back to any user of the role."""
    User = get_user_model()
    user = users.get(key) or User.objects.filter(username=key).first()
    if user is None and role is not None:
        user = User.objects.filter(groups__name=role.value, is_active=True).order_by("pk").first()
    return user


def seed_clinic(*, today: dt.date, users: dict | None = None) -> dict[str, int]:
    """Build the demo clinic (idempotent, keyed on MRN) and return the demo's counts per kind."""
    users = users or {}
    nurse = _user(users, "nurse", Role.NURSE)
    clinician = _user(users, "clinician", Role.CLINICIAN)
    if nurse is None or clinician is None:
        raise ValueError("seed_clinic needs a nurse and a clinician user: create the demo users first.")
    patient_users = {key: _user(users, key) for key in ("patient1", "patient2")}
    builder = _ClinicBuilder(today=today, nurse=nurse, clinician=clinician, patient_users=patient_users)
    existing = set(Patient.objects.filter(mrn__startswith=MRN_PREFIX).values_list("mrn", flat=True))
    created = 0
    specs = _specs()
    for spec in specs:
        if f"{MRN_PREFIX}{spec.n:04d}" in existing:
            continue
        with transaction.atomic():
            builder.build(spec)
        created += 1
    if created:
        # Only when the clinic was just built: a re-run on a later day must not add appointments.
        with transaction.atomic():
            builder.fill_calendar()
    for spec in specs:
        user = patient_users.get(spec.user) if spec.user else None
        if user is not None:
            with transaction.atomic():
                builder.link_user(spec, user)
    with transaction.atomic():
        _field_safety_notice(clinician=clinician)
    return {**demo_counts(), "patients_created": created}


DEMO_NOTICE = "DEMO-FA-0001"


def _field_safety_notice(*, clinician) -> None:
    """A field-safety notice over the demo's SynchroMed II 40 mL pumps still implanted, one action recorded.

    Idempotent: flagging again under the same reference adds nothing (refills.field_safety).
    """
    model = PumpModel.objects.filter(name="SynchroMed II", reservoir_ml=40).first()
    demo = Patient.objects.filter(mrn__startswith=MRN_PREFIX)
    criteria = RecallCriteria(pump_model=model, status="active")
    if model is None or not recall_search(criteria=criteria, visible=demo, now=timezone.now()).exists():
        return
    result = field_safety_flag_recall(
        criteria=criteria,
        title="Motor stall advisory (demo)",
        reference=DEMO_NOTICE,
        manufacturer_text=(
            "The manufacturer advises interrogating each pump at its next refill and reading the motor stall log. "
            "Tell every patient the signs of withdrawal and when to ring the clinic."
        ),
        by=clinician,
        visible=demo,
        now=timezone.now(),
    )
    if result.flagged:
        first = result.notice.flags.order_by("id").first()
        if first is not None:
            field_safety_action_record(
                flag=first,
                action_taken="Pump interrogated at the refill: no motor stall logged. Patient told the signs.",
                by=clinician,
                now=timezone.now(),
            )


def demo_counts() -> dict[str, int]:
    patients = Patient.objects.filter(mrn__startswith=MRN_PREFIX)
    implants = Implant.objects.filter(patient__in=patients)
    visits = RefillVisit.objects.filter(implant__in=implants)
    appointments = Appointment.objects.filter(patient__in=patients)
    trials = ScreeningTrial.objects.filter(patient__in=patients)
    return {
        "patients": patients.count(),
        "trials": trials.count(),
        "trial_steps": TrialStep.objects.filter(trial__in=trials).count(),
        "trial_assessments": TrialAssessment.objects.filter(trial__in=trials).count(),
        "implants": implants.count(),
        "implants_active": implants.filter(explanted_on__isnull=True).count(),
        "dose_prescriptions": DosePrescription.objects.filter(implant__in=implants).count(),
        "refill_visits": visits.count(),
        "discrepancies_flagged": visits.filter(discrepancy_flagged=True).count(),
        "appointments": appointments.count(),
        **{
            f"appointments_{status}": appointments.filter(status=status).count()
            for status in (Appointment.Status.BOOKED, Appointment.Status.COMPLETED, Appointment.Status.NO_SHOW)
        },
    }


def stages() -> dict[str, list[str]]:
    """MRNs per stage, for the command's summary and the tests."""
    result: dict[str, list[str]] = {}
    for spec in _specs():
        result.setdefault(spec.stage, []).append(f"{MRN_PREFIX}{spec.n:04d}")
    return result


__all__ = ["MRN_PREFIX", "demo_counts", "seed_clinic", "stages"]
