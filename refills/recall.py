"""
Recall and field-safety search (issue 14, item 2): every pump, active or explanted, that a
manufacturer's notice may concern, with its patient and the patient's next appointment.

One query for the page (plus its count): the drug and lot criteria are EXISTS subqueries over the
refills (and the fill in theatre, kept on the implant), the next appointment a scalar subquery.
The serial range compares strings: for serials of the same length and format (as one model's
are) that is their numeric order; a range across serials of different lengths is not meaningful.
"""

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery

from core.formatting import format_day
from patients.models import Patient
from pumps.models import Drug, Implant, PumpModel

from .models import Appointment, RefillVisit

PAGE_CAP = 200


@dataclass(frozen=True)
class RecallCriteria:
    pump_model: PumpModel | None = None
    serial_from: str = ""
    serial_to: str = ""
    catheter_model: str = ""
    implanted_from: dt.date | None = None
    implanted_to: dt.date | None = None
    drug: Drug | None = None
    drug_lot: str = ""
    # The refill kit's lot (recorded at each refill; the fill in theatre has no kit).
    kit_lot: str = ""
    # "" for every pump, "active" for those still implanted, "past" for explanted ones.
    status: str = ""


def _fill_and_refill(criteria: RecallCriteria) -> Q:
    """The pump received that drug product (and lot) at its fill in theatre or at any valid refill."""
    visit = Q()
    fill = Q()
    if criteria.drug is not None:
        visit &= Q(drug=criteria.drug)
        fill &= Q(fill_drug=criteria.drug)
    if criteria.drug_lot:
        visit &= Q(drug_lot__iexact=criteria.drug_lot.strip())
        fill &= Q(fill_drug_lot__iexact=criteria.drug_lot.strip())
    refilled = RefillVisit.objects.valid().filter(visit, implant=OuterRef("pk"))
    return Q(Exists(refilled)) | fill


STATUS_WORDS = {"active": "still implanted", "past": "explanted"}


def recall_criteria_describe(criteria: RecallCriteria) -> str:
    """The criteria in words, as a notice keeps them: "Pump model SynchroMed II 20 mL; serials NGP1000 to NGP1999"."""
    parts = []
    if criteria.pump_model is not None:
        parts.append(f"pump model {criteria.pump_model}")
    if criteria.serial_from and criteria.serial_to:
        parts.append(f"serials {criteria.serial_from.strip()} to {criteria.serial_to.strip()}")
    elif criteria.serial_from:
        parts.append(f"serials from {criteria.serial_from.strip()}")
    elif criteria.serial_to:
        parts.append(f"serials up to {criteria.serial_to.strip()}")
    if criteria.catheter_model:
        parts.append(f"catheter {criteria.catheter_model.strip()}")
    if criteria.implanted_from and criteria.implanted_to:
        parts.append(f"implanted {format_day(criteria.implanted_from)} to {format_day(criteria.implanted_to)}")
    elif criteria.implanted_from:
        parts.append(f"implanted from {format_day(criteria.implanted_from)}")
    elif criteria.implanted_to:
        parts.append(f"implanted up to {format_day(criteria.implanted_to)}")
    if criteria.drug is not None:
        parts.append(f"drug {criteria.drug}")
    if criteria.drug_lot:
        parts.append(f"drug lot {criteria.drug_lot.strip()}")
    if criteria.kit_lot:
        parts.append(f"refill kit lot {criteria.kit_lot.strip()}")
    if criteria.status in STATUS_WORDS:
        parts.append(f"pumps {STATUS_WORDS[criteria.status]}")
    text = "; ".join(parts) or "no criteria"
    return text[0].upper() + text[1:]


def recall_search(
    *, criteria: RecallCriteria, visible: QuerySet[Patient], now: dt.datetime
) -> QuerySet[Any]:  # Implants with next_appointment_at / next_appointment_kind
    """Pumps matching every given criterion, each annotated with its patient's next booked appointment."""
    qs = Implant.objects.valid().filter(patient__in=visible)
    if criteria.pump_model is not None:
        qs = qs.filter(pump_model=criteria.pump_model)
    if criteria.serial_from:
        qs = qs.filter(serial_number__gte=criteria.serial_from.strip())
    if criteria.serial_to:
        qs = qs.filter(serial_number__lte=criteria.serial_to.strip())
    if criteria.catheter_model:
        qs = qs.filter(catheter_model__iexact=criteria.catheter_model.strip())
    if criteria.implanted_from:
        qs = qs.filter(implanted_on__gte=criteria.implanted_from)
    if criteria.implanted_to:
        qs = qs.filter(implanted_on__lte=criteria.implanted_to)
    if criteria.status == "active":
        qs = qs.filter(explanted_on__isnull=True)
    elif criteria.status == "past":
        qs = qs.filter(explanted_on__isnull=False)
    if criteria.drug is not None or criteria.drug_lot:
        qs = qs.filter(_fill_and_refill(criteria))
    if criteria.kit_lot:
        kits = RefillVisit.objects.valid().filter(kit_lot__iexact=criteria.kit_lot.strip(), implant=OuterRef("pk"))
        qs = qs.filter(Exists(kits))
    upcoming = (
        Appointment.objects.valid()
        .filter(patient=OuterRef("patient"), status=Appointment.Status.BOOKED, starts_at__gte=now)
        .order_by("starts_at")
    )
    return (
        qs.select_related("patient", "pump_model")
        .annotate(
            next_appointment_at=Subquery(upcoming.values("starts_at")[:1]),
            next_appointment_kind=Subquery(upcoming.values("kind")[:1]),
        )
        .order_by("pump_model__name", "serial_number", "id")
    )
