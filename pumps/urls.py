"""Staff URLs for implants; mounted under the "staff" namespace by itbclinic/staff_urls.py."""

from django.urls import path

from . import views

urlpatterns = [
    path("patients/<int:patient_id>/implant/new/", views.implant_register, name="implant_register"),
    path("implants/<int:implant_id>/eri/", views.implant_eri, name="implant_eri"),
    path("implants/<int:implant_id>/explant/", views.implant_explant, name="implant_explant"),
]
