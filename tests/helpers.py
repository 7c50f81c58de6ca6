"""One helper per clinical action, through the services (STYLE.md 22)."""

import datetime as dt
import itertools
from decimal import Decimal

from pumps.models import Implant
from refills.services import implant_register_with_fill, refill_visit_record
from tests import factories

_serials = itertools.count(1)

# A refill's safety checklist with every item done, and the lots (the drug lot's expiry, the kit):
# what the refill form and the API ask of every visit.
SAFETY_CHECKLIST_ALL_DONE = {
    "check_pump_site": "done",
    "check_needle_placement": "done",
    "check_aspiration": "done",
    "check_alarm_settings": "done",
    "check_symptom_screen": "done",
    "post_fill_check": "passed",
}
REFILL_LOTS = {"drug_lot_expires_on": "2027-06-30", "kit_lot": "KIT-55"}


def implant_register_filled(
    *,
    patient=None,
    recorded_by=None,
    pump: tuple[str, str] = ("SynchroMed II", "20"),
    implanted_on: dt.date = dt.date(2024, 4, 2),
    dose: str | None = "400",
    concentration: str = "2000",
    volume: str | None = None,
    alarm: str | None = None,
    now: dt.datetime | None = None,
    **fields,
) -> Implant:
    """A pump registered with its fill in theatre, so its forecast starts at the implant.

    Defaults follow docs/domain.md's worked example: a full 20 mL SynchroMed II at 2000 mcg/mL and
    400 mcg/day. `volume` defaults to the reservoir; `dose=None` on a constant-flow pump (the
    dose is flow × concentration). Other `fields` go to `implant_register_with_fill`.
    """
    model = factories.pump_model(*pump)
    defaults = {
        "serial_number": f"FILL{next(_serials):06d}",
        "surgeon": "Ms A. Surgeon",
        "hospital": "City Hospital",
        "catheter_model": "8781",
        "catheter_tip_level": "T10",
    }
    return implant_register_with_fill(
        patient=patient or factories.PatientFactory(),
        recorded_by=recorded_by or factories.ClinicianFactory(),
        pump_model=model,
        implanted_on=implanted_on,
        fill_drug=factories.drug(concentration),
        fill_volume_ml=Decimal(volume) if volume is not None else model.reservoir_ml,
        fill_drug_lot="LOT-THEATRE",
        fill_alarm_threshold_ml=Decimal(alarm) if alarm is not None else None,
        starting_daily_dose_mcg=Decimal(dose) if dose is not None else None,
        now=now,
        **{**defaults, **fields},
    )


def refill_record(
    *,
    implant: Implant,
    by,
    at: dt.datetime,
    residual: str = "2.0",
    added: str = "20",
    dose: str | None = "400",
    concentration: str = "2000",
    **fields,
):
    """A refill through the service, by `by` (a nurse or clinician), at `at`.

    Defaults follow the worked example (20 mL of 2000 mcg/mL at 400 mcg/day); `dose=None` on a
    constant-flow pump (flow × concentration). Other `fields` (prescriber, titration_confirmed,
    appointment, post-fill check…) go to `refill_visit_record`.
    """
    return refill_visit_record(
        implant=implant,
        performed_at=at,
        performed_by=by,
        actual_residual_ml=Decimal(residual),
        volume_added_ml=Decimal(added),
        drug=factories.drug(concentration),
        drug_lot=fields.pop("drug_lot", "LOT-R1"),
        daily_dose_after_mcg=None if dose is None else Decimal(dose),
        **fields,
    )
