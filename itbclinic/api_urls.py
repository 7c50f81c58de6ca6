"""Routes of the REST API under /api/ (the schema and its docs are in itbclinic/urls.py)."""

from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from core.api import api_not_found
from interop.api import PatientEverythingView
from patients.api import PatientViewSet, TrialViewSet
from refills.api import (
    AlertViewSet,
    AppointmentViewSet,
    DosePrescriptionViewSet,
    DrugCareViewSet,
    DrugPumpIntervalCareViewSet,
    DueForRefillView,
    ImplantCareViewSet,
    PumpModelCareViewSet,
    RefillForecastView,
    RefillVisitViewSet,
)

router = SimpleRouter()
router.register("patients", PatientViewSet, basename="patient")
router.register("trials", TrialViewSet, basename="trial")
router.register("pump-models", PumpModelCareViewSet, basename="pump-model")
router.register("drugs", DrugCareViewSet, basename="drug")
router.register("drug-pump-intervals", DrugPumpIntervalCareViewSet, basename="drug-pump-interval")
router.register("implants", ImplantCareViewSet, basename="implant")
router.register("dose-prescriptions", DosePrescriptionViewSet, basename="dose-prescription")
router.register("refill-visits", RefillVisitViewSet, basename="refill-visit")
router.register("appointments", AppointmentViewSet, basename="appointment")
router.register("alerts", AlertViewSet, basename="alert")

app_name = "api"
urlpatterns = [
    *router.urls,
    path("refill-forecast/", RefillForecastView.as_view(), name="refill-forecast"),
    path("due-for-refill/", DueForRefillView.as_view(), name="due-for-refill"),
    path("fhir/Patient/<int:pk>/$everything", PatientEverythingView.as_view(), name="fhir-patient-everything"),
    # Anything else under /api/ answers a JSON 404, not the site's HTML page.
    re_path(r"^.*$", api_not_found, name="not-found"),
]
