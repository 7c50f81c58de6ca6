"""REST API of patients and screening trials (steps, assessments with Ashworth scores, verdict).

Views validate the shape of the input and call one service or selector; the rules live there.
"""

from decimal import Decimal

from django.db.models import Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from core.api import (
    ClinicalDateField,
    ClinicalDateTimeField,
    EnteredInErrorSerializer,
    ListRetrieveMixin,
    MarkEnteredInErrorMixin,
    MarkEnteredInErrorSerializer,
    ScopedPrimaryKeyRelatedField,
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictDecimalField,
    StrictEmailField,
    StrictIntegerField,
    StrictModelSerializer,
    parse_id,
    text,
)
from core.records import clinical_record_mark_entered_in_error

from .api_base import PatientRecordViewSet, scope_by_patients
from .filters import PatientFilter, TrialFilter
from .models import VERTEBRAL_LEVELS, AshworthScore, Patient, ScreeningTrial, TrialAssessment, TrialStep
from .selectors import patient_list_visible_to, trial_get_summary
from .services import (
    patient_create,
    patient_update,
    trial_assessment_add,
    trial_record_verdict,
    trial_start,
    trial_step_add,
)


def visible_patients(request):
    return patient_list_visible_to(user=request.user)


def patient_field(**kwargs) -> ScopedPrimaryKeyRelatedField:
    return ScopedPrimaryKeyRelatedField(model=Patient, scope=visible_patients, **kwargs)


# ---------------------------------------------------------------------------
# Patients
# ---------------------------------------------------------------------------
class PatientOwnSerializer(StrictModelSerializer):
    """What a patient reads of their own record: identity and how the clinic reaches them.

    Not the staff's notes, the withdrawal-risk flags, the diagnosis coding or the record's
    bookkeeping: the portal shows people what they need, the clinic keeps the rest.
    """

    # Blank when not given: plain strings in the schema, not an email format or a choice.
    email = StrictCharField(read_only=True)

    class Meta:
        model = Patient
        fields = [
            "id",
            "mrn",
            "given_name",
            "family_name",
            "date_of_birth",
            "email",
            "phone",
            "reminder_consent",
            "reminder_channel",
        ]
        read_only_fields = fields


class PatientSerializer(PatientOwnSerializer):
    """A patient's record as staff read it; the fields after the patient's own are staff-only."""

    sci_level = StrictChoiceField(choices=VERTEBRAL_LEVELS, allow_blank=True, read_only=True)
    has_withdrawal_risk_flag = StrictBooleanField(read_only=True)
    has_portal_account = serializers.SerializerMethodField()

    class Meta(PatientOwnSerializer.Meta):
        staff_only_fields = [
            "spasticity_origin",
            "diagnosis",
            "diagnosis_detail",
            "sci_level",
            "risk_high_sci",
            "risk_communication_difficulty",
            "risk_previous_withdrawal",
            "has_withdrawal_risk_flag",
            "status",
            "referred_on",
            "notes",
            "has_portal_account",
            "created_at",
            "updated_at",
        ]
        fields = [*PatientOwnSerializer.Meta.fields, *staff_only_fields]
        read_only_fields = fields

    def get_has_portal_account(self, patient: Patient) -> bool:
        return patient.user_id is not None


class PatientWriteSerializer(serializers.Serializer):
    """The fields staff may set. Linking a portal account is not one of them (invitations do it)."""

    mrn = StrictCharField(max_length=32)
    given_name = StrictCharField(max_length=100)
    family_name = StrictCharField(max_length=100)
    date_of_birth = ClinicalDateField()
    spasticity_origin = StrictChoiceField(choices=Patient.Origin.choices)
    diagnosis = StrictChoiceField(choices=Patient.Diagnosis.choices)
    diagnosis_detail = text(max_length=200)
    sci_level = StrictChoiceField(choices=VERTEBRAL_LEVELS, required=False, allow_blank=True, default="")
    risk_high_sci = StrictBooleanField(required=False, default=False)
    risk_communication_difficulty = StrictBooleanField(required=False, default=False)
    risk_previous_withdrawal = StrictBooleanField(required=False, default=False)
    email = StrictEmailField(max_length=254, required=False, allow_blank=True, default="")
    phone = text(max_length=32, help_text="International format (E.164), e.g. +447700900123")
    reminder_consent = StrictBooleanField(required=False, default=False)
    reminder_channel = StrictChoiceField(choices=Patient.Channel.choices, required=False, default=Patient.Channel.EMAIL)
    status = StrictChoiceField(choices=Patient.Status.choices, required=False, default=Patient.Status.ACTIVE)
    referred_on = ClinicalDateField(required=False, allow_null=True, default=None)
    notes = text()


class PatientViewSet(ListRetrieveMixin, MarkEnteredInErrorMixin, PatientRecordViewSet):
    """Patients: staff read all and nurses/clinicians write; a patient reads only their own record."""

    permission_model = Patient
    serializer_class = PatientSerializer
    patient_serializer_class = PatientOwnSerializer
    filterset_class = PatientFilter
    ordering_fields = ["family_name", "given_name", "mrn", "date_of_birth", "created_at"]
    ordering = ["family_name", "given_name", "id"]
    audit_patient_path = "self"

    def scope_queryset(self, queryset):
        return visible_patients(self.request)

    @extend_schema(request=PatientWriteSerializer, responses={201: PatientSerializer})
    def create(self, request):
        data = self.validated(PatientWriteSerializer)
        return self.output(patient_create(data=data), status_code=status.HTTP_201_CREATED)

    @extend_schema(request=PatientWriteSerializer, responses={200: PatientSerializer})
    def partial_update(self, request, pk=None):
        patient = self.get_object()
        # Only the fields sent are changed: defaults must not overwrite what was not sent.
        data = {k: v for k, v in self.validated(PatientWriteSerializer, partial=True).items() if k in request.data}
        return self.output(patient_update(patient=patient, data=data))


# ---------------------------------------------------------------------------
# Screening trials
# ---------------------------------------------------------------------------
class TrialStepSerializer(StrictModelSerializer):
    class Meta:
        model = TrialStep
        fields = [
            "id",
            "trial",
            "given_at",
            "dose_mcg",
            "volume_ml",
            "route",
            "infusion_rate_mcg_per_day",
            "given_by",
            "notes",
        ]
        read_only_fields = fields


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"type": "string", "enum": AshworthScore.Score.values},
        "description": 'Modified Ashworth score per muscle group, e.g. {"hip_adductors_l": "1+"}.',
    }
)
class AshworthField(serializers.DictField):
    """`{muscle_group: score}`, the shape `trial_assessment_add` takes and the API returns."""

    child = StrictChoiceField(choices=AshworthScore.Score.choices)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        unknown = sorted(set(value) - set(AshworthScore.MuscleGroup.values))
        if unknown:
            raise serializers.ValidationError(
                f"Unknown muscle group(s): {', '.join(map(repr, unknown))[:300]}. "
                f"Use: {', '.join(AshworthScore.MuscleGroup.values)}."
            )
        return value

    def to_representation(self, value):
        return {score.muscle_group: score.score for score in value.all()}


class TrialAssessmentSerializer(StrictModelSerializer):
    ashworth = AshworthField(source="ashworth_scores", read_only=True)

    class Meta:
        model = TrialAssessment
        fields = [
            "id",
            "trial",
            "step",
            "hours_after",
            "assessed_at",
            "penn_score",
            "ashworth",
            "range_of_motion_notes",
            "adverse_effects",
            "notes",
            "assessed_by",
        ]
        read_only_fields = fields


class TrialSerializer(StrictModelSerializer):
    steps = TrialStepSerializer(many=True, read_only=True, source="valid_steps")
    assessments = TrialAssessmentSerializer(many=True, read_only=True, source="valid_assessments")

    class Meta:
        model = ScreeningTrial
        fields = [
            "id",
            "patient",
            "kind",
            "started_on",
            "clinician",
            "goals",
            "verdict",
            "positivity_rule",
            "verdict_notes",
            "effective_bolus_mcg",
            "effect_hours",
            "notes",
            "steps",
            "assessments",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class TrialStartSerializer(serializers.Serializer):
    patient = patient_field()
    started_on = ClinicalDateField()
    kind = StrictChoiceField(choices=ScreeningTrial.Kind.choices, default=ScreeningTrial.Kind.BOLUS)
    positivity_rule = StrictChoiceField(choices=ScreeningTrial.Rule.choices, default=ScreeningTrial.Rule.CLINICIAN)
    goals = text()


class TrialStepAddSerializer(serializers.Serializer):
    given_at = ClinicalDateTimeField()
    dose_mcg = StrictDecimalField(max_digits=8, decimal_places=2, min_value=Decimal("0.01"))
    volume_ml = StrictDecimalField(max_digits=6, decimal_places=2, min_value=Decimal("0.01"))
    route = StrictChoiceField(choices=TrialStep.Route.choices, default=TrialStep.Route.LP_BOLUS)
    infusion_rate_mcg_per_day = StrictDecimalField(
        max_digits=8, decimal_places=2, min_value=Decimal("0.01"), required=False, allow_null=True, default=None
    )
    notes = text()


class TrialAssessmentAddSerializer(serializers.Serializer):
    assessed_at = ClinicalDateTimeField()
    hours_after = StrictDecimalField(
        max_digits=5, decimal_places=2, min_value=Decimal("0"), help_text="0 for the baseline; about 1, 2, 4, 6, 8."
    )
    ashworth = AshworthField(required=False, default=dict)
    step = StrictIntegerField(required=False, allow_null=True, default=None, help_text="A step of this trial.")
    penn_score = StrictIntegerField(min_value=0, max_value=4, required=False, allow_null=True, default=None)
    range_of_motion_notes = text()
    adverse_effects = text()
    notes = text()

    def validate_step(self, value):
        if value is None:
            return None
        step = self.context["trial"].steps.valid().filter(pk=parse_id(value)).first() if parse_id(value) else None
        if step is None:
            raise serializers.ValidationError("No such step in this trial.")
        return step


class TrialVerdictSerializer(serializers.Serializer):
    verdict = StrictChoiceField(choices=ScreeningTrial.Verdict.choices)
    positivity_rule = StrictChoiceField(choices=ScreeningTrial.Rule.choices)
    effective_bolus_mcg = StrictDecimalField(
        max_digits=8, decimal_places=2, min_value=Decimal("0.01"), required=False, allow_null=True, default=None
    )
    effect_hours = StrictDecimalField(
        max_digits=5, decimal_places=2, min_value=Decimal("0.01"), required=False, allow_null=True, default=None
    )
    verdict_notes = text()


class AssessmentChangeSerializer(serializers.Serializer):
    assessment = StrictIntegerField(source="assessment.pk")
    hours_after = StrictDecimalField(source="assessment.hours_after", max_digits=5, decimal_places=2)
    mas = serializers.DictField(child=StrictCharField())
    mas_mean_change = StrictDecimalField(max_digits=6, decimal_places=3, allow_null=True)
    penn_change = StrictIntegerField(allow_null=True)


class TrialSummarySerializer(serializers.Serializer):
    trial = StrictIntegerField(source="trial.pk")
    verdict = StrictCharField(source="trial.verdict")
    baseline = StrictIntegerField(source="baseline.pk", allow_null=True)
    changes = AssessmentChangeSerializer(many=True)
    best_mas_change = StrictDecimalField(max_digits=6, decimal_places=3, allow_null=True)
    suggested_starting_dose_mcg = StrictDecimalField(
        max_digits=10,
        decimal_places=2,
        allow_null=True,
        help_text=(
            '2× the effective bolus per 24 h, 1× when the effect lasted more than 8 h (docs/domain.md "Screening").'
        ),
    )


_STEP_ID = OpenApiParameter("step_id", OpenApiTypes.INT, OpenApiParameter.PATH)
_ASSESSMENT_ID = OpenApiParameter("assessment_id", OpenApiTypes.INT, OpenApiParameter.PATH)


class TrialViewSet(ListRetrieveMixin, MarkEnteredInErrorMixin, PatientRecordViewSet):
    """Screening trials with their steps and assessments: clinicians record, nurses read."""

    permission_model = ScreeningTrial
    serializer_class = TrialSerializer
    filterset_class = TrialFilter
    ordering_fields = ["started_on", "created_at"]
    ordering = ["-started_on", "-id"]
    audit_patient_path = "patient"
    action_permissions = {
        "summary": ["patients.view_screeningtrial"],
        "verdict": ["patients.change_screeningtrial"],
        "steps": {"GET": ["patients.view_trialstep"], "POST": ["patients.add_trialstep"]},
        "assessments": {"GET": ["patients.view_trialassessment"], "POST": ["patients.add_trialassessment"]},
        "step_mark_entered_in_error": ["patients.change_trialstep"],
        "assessment_mark_entered_in_error": ["patients.change_trialassessment"],
    }

    def base_queryset(self):
        return (
            ScreeningTrial.objects.valid()
            .select_related("patient")
            .prefetch_related(
                Prefetch("steps", queryset=TrialStep.objects.valid(), to_attr="valid_steps"),
                Prefetch(
                    "assessments",
                    queryset=TrialAssessment.objects.valid().prefetch_related("ashworth_scores"),
                    to_attr="valid_assessments",
                ),
            )
        )

    def scope_queryset(self, queryset):
        return scope_by_patients(queryset, self.request, path="patient")

    @extend_schema(request=TrialStartSerializer, responses={201: TrialSerializer})
    def create(self, request):
        data = self.validated(TrialStartSerializer)
        trial = trial_start(clinician=request.user, **data)
        return self.output(self.get_queryset().get(pk=trial.pk), status_code=status.HTTP_201_CREATED)

    @extend_schema(request=TrialVerdictSerializer, responses={200: TrialSerializer})
    @action(detail=True, methods=["post"])
    def verdict(self, request, pk=None):
        trial = self.get_object()
        data = self.validated(TrialVerdictSerializer)
        trial_record_verdict(trial=trial, by=request.user, **data)
        return self.output(self.get_queryset().get(pk=trial.pk))

    @extend_schema(responses={200: TrialSummarySerializer})
    @action(detail=True, methods=["get"])
    def summary(self, request, pk=None):
        trial = self.get_object()
        self.audit_patient_access(patients=[trial.patient], detail=f"trial summary {trial.pk}")
        return Response(TrialSummarySerializer(trial_get_summary(trial_id=trial.pk)).data)

    @extend_schema(methods=["GET"], request=None, responses={200: TrialStepSerializer(many=True)})
    @extend_schema(methods=["POST"], request=TrialStepAddSerializer, responses={201: TrialStepSerializer})
    @action(detail=True, methods=["get", "post"], pagination_class=None, filterset_class=None)
    def steps(self, request, pk=None):
        trial = self.get_object()
        if request.method == "GET":
            self.audit_patient_access(patients=[trial.patient], detail=f"trial steps {trial.pk}")
            return Response(TrialStepSerializer(trial.valid_steps, many=True).data)
        step = trial_step_add(trial=trial, given_by=request.user, **self.validated(TrialStepAddSerializer))
        return Response(TrialStepSerializer(step).data, status=status.HTTP_201_CREATED)

    @extend_schema(methods=["GET"], request=None, responses={200: TrialAssessmentSerializer(many=True)})
    @extend_schema(methods=["POST"], request=TrialAssessmentAddSerializer, responses={201: TrialAssessmentSerializer})
    @action(detail=True, methods=["get", "post"], pagination_class=None, filterset_class=None)
    def assessments(self, request, pk=None):
        trial = self.get_object()
        if request.method == "GET":
            self.audit_patient_access(patients=[trial.patient], detail=f"trial assessments {trial.pk}")
            return Response(TrialAssessmentSerializer(trial.valid_assessments, many=True).data)
        data = self.validated(TrialAssessmentAddSerializer, trial=trial)
        assessment = trial_assessment_add(trial=trial, assessed_by=request.user, **data)
        assessment = TrialAssessment.objects.prefetch_related("ashworth_scores").get(pk=assessment.pk)
        return Response(TrialAssessmentSerializer(assessment).data, status=status.HTTP_201_CREATED)

    def _child(self, related, child_id):
        trial = self.get_object()
        child = getattr(trial, related).valid().filter(pk=parse_id(child_id)).first() if parse_id(child_id) else None
        if child is None:
            raise exceptions.NotFound()
        return child

    @extend_schema(
        parameters=[_STEP_ID], request=MarkEnteredInErrorSerializer, responses={200: EnteredInErrorSerializer}
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=r"steps/(?P<step_id>[^/.]+)/mark-entered-in-error",
        filterset_class=None,
    )
    def step_mark_entered_in_error(self, request, pk=None, step_id=None):
        step = self._child("steps", step_id)
        data = self.validated(MarkEnteredInErrorSerializer)
        clinical_record_mark_entered_in_error(record=step, by=request.user, reason=data["reason"])
        step.refresh_from_db()
        return Response(EnteredInErrorSerializer(step).data)

    @extend_schema(
        parameters=[_ASSESSMENT_ID], request=MarkEnteredInErrorSerializer, responses={200: EnteredInErrorSerializer}
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=r"assessments/(?P<assessment_id>[^/.]+)/mark-entered-in-error",
        filterset_class=None,
    )
    def assessment_mark_entered_in_error(self, request, pk=None, assessment_id=None):
        assessment = self._child("assessments", assessment_id)
        data = self.validated(MarkEnteredInErrorSerializer)
        clinical_record_mark_entered_in_error(record=assessment, by=request.user, reason=data["reason"])
        assessment.refresh_from_db()
        return Response(EnteredInErrorSerializer(assessment).data)
