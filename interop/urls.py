"""Staff URLs of onboarding; mounted under the "staff" namespace by itbclinic/staff_urls.py."""

from django.urls import path

from . import views

urlpatterns = [
    path("import/", views.clinic_import_upload, name="clinic_import_upload"),
    path("import/template.<str:kind>", views.clinic_import_template, name="clinic_import_template"),
    path("import/<int:import_id>/", views.clinic_import_detail, name="clinic_import_detail"),
]
