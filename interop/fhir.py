"""A patient's pump record as FHIR R4 resources, built and validated with fhir.resources' R4B models.

The mapping is documented in docs/fhir.md. Only valid records are exported (an entry marked
entered in error is left out, as FHIR's `entered-in-error` status would hide it anyway). Codes:
SNOMED CT for the intrathecal route (72607000), RxNorm for baclofen (1292), UCUM for every
quantity (`ug/d`, `mL`, `ug/mL`), HL7's own code systems for categories and statuses, and
ITB Clinic's local code systems (`LOCAL`) where no standard code says what the record is (the
pump and catheter types, the procedures, the residual volumes, the Penn and Ashworth scores, the
withdrawal-risk flags).

`patient_everything` reads one patient's record in a fixed number of queries;
`clinic_resources` streams the whole clinic for the bulk export.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, TypeVar

from django.db.models import Prefetch, QuerySet
from django.utils import timezone
from fhir.resources.R4B.appointment import Appointment as FhirAppointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.deviceusestatement import DeviceUseStatement
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.procedure import Procedure
from fhir.resources.R4B.resource import Resource

from audit.models import AccessLog
from patients.models import AshworthScore, Patient, ScreeningTrial, TrialAssessment, TrialStep
from pumps.models import DosePrescription, Implant
from refills.models import Appointment, RefillVisit

LOCAL = "urn:itbclinic:fhir:CodeSystem:"
MRN_SYSTEM = "urn:itbclinic:fhir:NamingSystem:mrn"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
US_CORE_IMPLANTABLE_DEVICE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-implantable-device"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"

INTRATHECAL_ROUTE = {"coding": [{"system": SNOMED, "code": "72607000", "display": "Intrathecal route"}]}
BACLOFEN = {"system": RXNORM, "code": "1292", "display": "baclofen"}

APPOINTMENT_STATUS = {
    Appointment.Status.BOOKED: "booked",
    Appointment.Status.COMPLETED: "fulfilled",
    Appointment.Status.CANCELLED: "cancelled",
    Appointment.Status.NO_SHOW: "noshow",
}
RISK_FLAGS = (
    ("risk_high_sci", "high-sci", "Spinal cord injury at T6 or above: autonomic dysreflexia risk in withdrawal"),
    ("risk_communication_difficulty", "communication-difficulty", "Cannot easily report withdrawal symptoms"),
    ("risk_previous_withdrawal", "previous-withdrawal", "Has had baclofen withdrawal before"),
)


R = TypeVar("R", bound=Resource)


def _build(model: type[R], **fields: Any) -> R:
    """A resource validated by its fhir.resources model (nested elements given as plain data)."""
    return model.model_validate(fields)


def _local(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": LOCAL + system, "code": code, "display": display}], "text": display}


def _ml(value: Decimal) -> dict[str, Any]:
    return {"value": value, "unit": "mL", "system": UCUM, "code": "mL"}


def _mcg(value: Decimal) -> dict[str, Any]:
    return {"value": value, "unit": "ug", "system": UCUM, "code": "ug"}


def _instant(value: dt.datetime) -> str:
    return timezone.localtime(value).isoformat()


def _ref(resource_type: str, resource_id: str) -> dict[str, str]:
    return {"reference": f"{resource_type}/{resource_id}"}


def _medication(concentration: Decimal, name: str = "Baclofen intrathecal") -> dict[str, Any]:
    return {"coding": [BACLOFEN], "text": f"{name} {concentration.normalize():f} mcg/mL"}


@dataclass
class PatientRecord:
    """Everything of one patient that the export maps, read in a fixed number of queries."""

    patient: Patient
    implants: list[Implant]
    prescriptions: list[DosePrescription]
    visits: list[RefillVisit]
    appointments: list[Appointment]
    trials: list[ScreeningTrial]
    resources: list[Resource] = field(default_factory=list)


def _records(patients: QuerySet[Patient]) -> Iterator[PatientRecord]:
    valid_implants = Implant.objects.valid().select_related("pump_model", "fill_drug").order_by("implanted_on", "pk")
    trials = ScreeningTrial.objects.valid().order_by("started_on", "pk")
    patients = patients.prefetch_related(
        Prefetch("implants", queryset=valid_implants, to_attr="valid_implants"),
        Prefetch(
            "valid_implants__prescriptions",
            queryset=DosePrescription.objects.valid().order_by("effective_at", "pk"),
            to_attr="valid_prescriptions",
        ),
        Prefetch(
            "valid_implants__refill_visits",
            queryset=RefillVisit.objects.valid().select_related("drug").order_by("performed_at", "pk"),
            to_attr="valid_visits",
        ),
        Prefetch(
            "appointments",
            queryset=Appointment.objects.valid().order_by("starts_at", "pk"),
            to_attr="valid_appointments",
        ),
        Prefetch("trials", queryset=trials, to_attr="valid_trials"),
        Prefetch(
            "valid_trials__steps", queryset=TrialStep.objects.valid().order_by("given_at", "pk"), to_attr="valid_steps"
        ),
        Prefetch(
            "valid_trials__assessments",
            queryset=TrialAssessment.objects.valid().prefetch_related(
                Prefetch("ashworth_scores", queryset=AshworthScore.objects.order_by("pk"))
            ),
            to_attr="valid_assessments",
        ),
    )
    for patient in patients:
        implants = list(patient.valid_implants)
        yield PatientRecord(
            patient=patient,
            implants=implants,
            prescriptions=[p for implant in implants for p in implant.valid_prescriptions],  # type: ignore[attr-defined]
            visits=[v for implant in implants for v in implant.valid_visits],  # type: ignore[attr-defined]
            appointments=list(patient.valid_appointments),
            trials=list(patient.valid_trials),
        )


def _patient(patient: Patient) -> FhirPatient:
    telecom = []
    if patient.phone:
        telecom.append({"system": "phone", "value": str(patient.phone), "use": "mobile"})
    if patient.email:
        telecom.append({"system": "email", "value": patient.email})
    lines = [line for line in (patient.address_line1, patient.address_line2) if line]
    address = []
    if lines or patient.address_town or patient.address_postcode:
        address.append(
            {
                "use": "home",
                "line": lines or None,
                "city": patient.address_town or None,
                "postalCode": patient.address_postcode or None,
            }
        )
    return _build(
        FhirPatient,
        id=str(patient.pk),
        identifier=[{"use": "usual", "system": MRN_SYSTEM, "value": patient.mrn}],
        active=patient.status == Patient.Status.ACTIVE,
        name=[{"use": "official", "family": patient.family_name, "given": [patient.given_name]}],
        birthDate=patient.date_of_birth,
        deceasedBoolean=True if patient.status == Patient.Status.DECEASED else None,
        telecom=telecom or None,
        address=address or None,
    )


def _pump_resources(record: PatientRecord) -> Iterator[Resource]:
    subject = _ref("Patient", str(record.patient.pk))
    for number, implant in enumerate(record.implants):
        model = implant.pump_model
        active = implant.explanted_on is None
        pump_id, catheter_id = f"pump-{implant.pk}", f"catheter-{implant.pk}"
        yield _build(
            Device,
            id=pump_id,
            meta={"profile": [US_CORE_IMPLANTABLE_DEVICE]},
            status="active" if active else "inactive",
            serialNumber=implant.serial_number,
            manufacturer=model.manufacturer,
            deviceName=[{"name": f"{model.name} {model.reservoir_ml.normalize():f} mL", "type": "model-name"}],
            modelNumber=model.name,
            type=_local("device-type", "itb-pump", "Implanted intrathecal drug infusion pump"),
            patient=subject,
            note=[{"text": implant.mri_notes}] if implant.mri_notes else None,
        )
        yield _build(
            Device,
            id=catheter_id,
            status="active" if active else "inactive",
            deviceName=[{"name": implant.catheter_model, "type": "model-name"}] if implant.catheter_model else None,
            type=_local("device-type", "intrathecal-catheter", "Intrathecal catheter"),
            patient=subject,
            parent=_ref("Device", pump_id),
            note=[{"text": f"Catheter tip at {implant.catheter_tip_level}"}],
        )
        period = {"start": implant.implanted_on, "end": implant.explanted_on}
        yield _build(
            DeviceUseStatement,
            id=f"implant-{implant.pk}",
            status="active" if active else "completed",
            subject=subject,
            device=_ref("Device", pump_id),
            timingPeriod={key: value for key, value in period.items() if value},
            recordedOn=_instant(implant.created_at) if getattr(implant, "created_at", None) else None,
        )
        previous = record.implants[number - 1] if number else None
        replaced = previous is not None and previous.explanted_on == implant.implanted_on
        yield _build(
            Procedure,
            id=f"implant-{implant.pk}",
            status="completed",
            code=(
                _local("procedure", "pump-replacement", "Replacement of intrathecal baclofen pump")
                if replaced
                else _local("procedure", "pump-implant", "Implantation of intrathecal baclofen pump")
            ),
            subject=subject,
            performedDateTime=implant.implanted_on,
            focalDevice=[{"manipulated": _ref("Device", pump_id)}],
            note=[{"text": f"Surgeon {implant.surgeon}, {implant.hospital}"}],
        )
        if implant.explanted_on:
            yield _build(
                Procedure,
                id=f"explant-{implant.pk}",
                status="completed",
                code=_local("procedure", "pump-explant", "Removal of intrathecal baclofen pump"),
                subject=subject,
                performedDateTime=implant.explanted_on,
                focalDevice=[{"manipulated": _ref("Device", pump_id)}],
                reasonCode=[{"text": implant.explant_reason}] if implant.explant_reason else None,
            )
        if implant.fill_volume_ml and implant.fill_drug is not None:
            yield _build(
                MedicationAdministration,
                id=f"fill-implant-{implant.pk}",
                status="completed",
                medicationCodeableConcept=_medication(
                    implant.fill_drug.concentration_mcg_per_ml, implant.fill_drug.name
                ),
                subject=subject,
                effectiveDateTime=implant.implanted_on,
                device=[_ref("Device", pump_id)],
                dosage={
                    "text": "Pump reservoir filled in theatre",
                    "route": INTRATHECAL_ROUTE,
                    "dose": _ml(implant.fill_volume_ml),
                },
            )


def _care_resources(record: PatientRecord) -> Iterator[Resource]:
    subject = _ref("Patient", str(record.patient.pk))
    by_implant: dict[int, list[DosePrescription]] = {}
    for prescription in record.prescriptions:
        by_implant.setdefault(prescription.implant_id, []).append(prescription)
    now = timezone.now()
    for prescriptions in by_implant.values():
        for number, prescription in enumerate(prescriptions):
            following = prescriptions[number + 1] if number + 1 < len(prescriptions) else None
            ended = following is not None and following.effective_at <= now
            period = {"start": _instant(prescription.effective_at)}
            if following is not None:
                period["end"] = _instant(following.effective_at)
            yield _build(
                MedicationStatement,
                id=f"dose-{prescription.pk}",
                status="completed" if ended else ("intended" if prescription.effective_at > now else "active"),
                medicationCodeableConcept=_medication(prescription.concentration_mcg_per_ml),
                subject=subject,
                effectivePeriod=period,
                dateAsserted=_instant(prescription.effective_at),
                dosage=[
                    {
                        "text": prescription.get_dosing_mode_display(),
                        "route": INTRATHECAL_ROUTE,
                        "doseAndRate": [
                            {
                                "rateQuantity": {
                                    "value": prescription.daily_dose_mcg,
                                    "unit": "ug/d",
                                    "system": UCUM,
                                    "code": "ug/d",
                                }
                            }
                        ],
                    }
                ],
                note=[{"text": prescription.reason}] if prescription.reason else None,
            )
    for visit in record.visits:
        pump = _ref("Device", f"pump-{visit.implant_id}")
        yield _build(
            Procedure,
            id=f"refill-{visit.pk}",
            status="completed",
            code=_local("procedure", "pump-refill", "Refill of intrathecal baclofen pump"),
            subject=subject,
            performedDateTime=_instant(visit.performed_at),
            focalDevice=[{"manipulated": pump}],
        )
        yield _build(
            MedicationAdministration,
            id=f"fill-refill-{visit.pk}",
            status="completed",
            medicationCodeableConcept=_medication(visit.concentration_mcg_per_ml, visit.drug.name),
            subject=subject,
            effectiveDateTime=_instant(visit.performed_at),
            device=[pump],
            partOf=[_ref("Procedure", f"refill-{visit.pk}")],
            note=[{"text": f"Lot {visit.drug_lot}"}],
            dosage={"text": "Pump reservoir refilled", "route": INTRATHECAL_ROUTE, "dose": _ml(visit.volume_added_ml)},
        )
        if visit.bridge_bolus_mcg:
            yield _build(
                MedicationAdministration,
                id=f"bolus-refill-{visit.pk}",
                status="completed",
                medicationCodeableConcept=_medication(visit.concentration_mcg_per_ml, visit.drug.name),
                subject=subject,
                effectiveDateTime=_instant(visit.performed_at),
                device=[pump],
                partOf=[_ref("Procedure", f"refill-{visit.pk}")],
                dosage={"text": "Bridge bolus", "route": INTRATHECAL_ROUTE, "dose": _mcg(visit.bridge_bolus_mcg)},
            )
        for code, display, value in (
            ("expected-residual-volume", "Expected residual volume", visit.expected_residual_ml),
            ("aspirated-residual-volume", "Aspirated residual volume", visit.actual_residual_ml),
        ):
            if value is None:
                continue
            yield _build(
                Observation,
                id=f"{code.split('-')[0]}-residual-{visit.pk}",
                status="final",
                category=[{"coding": [{"system": OBSERVATION_CATEGORY, "code": "procedure"}]}],
                code=_local("observation", code, display),
                subject=subject,
                effectiveDateTime=_instant(visit.performed_at),
                valueQuantity=_ml(value),
                device=pump,
                partOf=[_ref("Procedure", f"refill-{visit.pk}")],
            )
    for trial in record.trials:
        for step in trial.valid_steps:  # type: ignore[attr-defined]
            yield _build(
                MedicationAdministration,
                id=f"trial-step-{step.pk}",
                status="completed",
                medicationCodeableConcept={"coding": [BACLOFEN], "text": "Baclofen (screening)"},
                subject=subject,
                effectiveDateTime=_instant(step.given_at),
                dosage={"text": step.get_route_display(), "route": INTRATHECAL_ROUTE, "dose": _mcg(step.dose_mcg)},
            )
        for assessment in trial.valid_assessments:  # type: ignore[attr-defined]
            if assessment.penn_score is not None:
                yield _build(
                    Observation,
                    id=f"penn-{assessment.pk}",
                    status="final",
                    category=[{"coding": [{"system": OBSERVATION_CATEGORY, "code": "exam"}]}],
                    code=_local("observation", "penn-spasm-frequency", "Penn spasm frequency score"),
                    subject=subject,
                    effectiveDateTime=_instant(assessment.assessed_at),
                    valueInteger=assessment.penn_score,
                )
            for score in assessment.ashworth_scores.all():
                yield _build(
                    Observation,
                    id=f"ashworth-{score.pk}",
                    status="final",
                    category=[{"coding": [{"system": OBSERVATION_CATEGORY, "code": "exam"}]}],
                    code=_local("observation", "modified-ashworth", "Modified Ashworth scale"),
                    subject=subject,
                    effectiveDateTime=_instant(assessment.assessed_at),
                    bodySite={"text": score.get_muscle_group_display()},
                    valueCodeableConcept=_local("modified-ashworth", score.score, f"MAS {score.score}"),
                )
    for appointment in record.appointments:
        end = appointment.starts_at + dt.timedelta(minutes=appointment.duration_minutes)
        yield _build(
            FhirAppointment,
            id=str(appointment.pk),
            status=APPOINTMENT_STATUS[Appointment.Status(appointment.status)],
            serviceType=[_local("appointment-kind", appointment.kind, appointment.get_kind_display())],
            start=_instant(appointment.starts_at),
            end=_instant(end),
            minutesDuration=appointment.duration_minutes,
            cancelationReason={"text": appointment.cancel_reason} if appointment.cancel_reason else None,
            participant=[{"actor": subject, "status": "accepted"}],
        )
    for attribute, code, display in RISK_FLAGS:
        if getattr(record.patient, attribute):
            yield _build(
                Flag,
                id=f"{code}-{record.patient.pk}",
                status="active",
                category=[{"coding": [{"system": FLAG_CATEGORY, "code": "clinical"}]}],
                code=_local("withdrawal-risk", code, display),
                subject=subject,
            )


def record_resources(record: PatientRecord) -> list[Resource]:
    return [_patient(record.patient), *_pump_resources(record), *_care_resources(record)]


def patient_everything(*, patient_id: int, base_url: str) -> Bundle:
    """`Patient/<id>/$everything`: a searchset Bundle of the patient's whole pump record."""
    record = next(_records(Patient.objects.filter(pk=patient_id)))
    resources = record_resources(record)
    return Bundle.model_validate(
        {
            "type": "searchset",
            "total": len(resources),
            "timestamp": timezone.localtime(),
            "entry": [
                {
                    "fullUrl": f"{base_url.rstrip('/')}/{resource.get_resource_type()}/{resource.id}",
                    "resource": resource,
                    "search": {"mode": "match" if resource.get_resource_type() == "Patient" else "include"},
                }
                for resource in resources
            ],
        }
    )


def clinic_resources(*, patients: QuerySet[Patient] | None = None, chunk: int = 200) -> Iterator[tuple[int, Resource]]:
    """Every patient's resources, as (patient id, resource), `chunk` patients at a time."""
    queryset = (patients if patients is not None else Patient.objects.valid()).order_by("pk")
    ids = list(queryset.values_list("pk", flat=True))
    for start in range(0, len(ids), chunk):
        for record in _records(Patient.objects.filter(pk__in=ids[start : start + chunk]).order_by("pk")):
            for resource in record_resources(record):
                yield record.patient.pk, resource


def resource_types(resources: Iterable[Resource]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for resource in resources:
        counts[resource.get_resource_type()] = counts.get(resource.get_resource_type(), 0) + 1
    return counts


def clinic_export_ndjson(*, directory: Path, patients: QuerySet[Patient] | None = None) -> dict[str, int]:
    """FHIR Bulk Data style export: one `<ResourceType>.ndjson` file per type in `directory`.

    Each exported patient gets one access-log row ("export"); returns the resource counts by type.
    """
    directory.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    exported: list[int] = []
    files: dict[str, IO[str]] = {}
    try:
        for patient_id, resource in clinic_resources(patients=patients):
            kind = resource.get_resource_type()
            if kind not in files:
                files[kind] = (directory / f"{kind}.ndjson").open("w", encoding="utf-8")
            files[kind].write(resource.model_dump_json(exclude_none=True) + "\n")
            counts[kind] = counts.get(kind, 0) + 1
            if kind == "Patient":
                exported.append(patient_id)
    finally:
        for handle in files.values():
            handle.close()
    AccessLog.objects.bulk_create(
        AccessLog(
            patient_id=patient_id,
            action=AccessLog.Action.EXPORT,
            resource="interop.export_fhir",
            detail="FHIR bulk export",
        )
        for patient_id in exported
    )
    return counts
