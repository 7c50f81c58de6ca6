"""Staff URLs for implants; mounted under the "staff" namespace by itbclinic/staff_urls.py."""

from django.urls import path

from . import views

urlpatterns = [
    path("implants/<int:implant_id>/eri/", views.implant_eri, name="implant_eri"),
]
