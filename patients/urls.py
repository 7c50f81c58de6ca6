"""Staff URLs for patients and trials; mounted under the "staff" namespace by itbclinic/staff_urls.py."""

from django.urls import path

from . import views

urlpatterns = [
    path("patients/", views.patient_list, name="patient_list"),
    path("patients/new/", views.patient_create, name="patient_create"),
    path("patients/<int:patient_id>/trials/new/", views.trial_start, name="trial_start"),
    path("trials/<int:trial_id>/", views.trial_detail, name="trial_detail"),
    path("trials/<int:trial_id>/steps/", views.trial_step_add, name="trial_step_add"),
    path("trials/<int:trial_id>/assessments/", views.trial_assessment_add, name="trial_assessment_add"),
    path("trials/<int:trial_id>/verdict/", views.trial_verdict, name="trial_verdict"),
]
