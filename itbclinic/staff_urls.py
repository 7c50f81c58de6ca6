"""The staff web app (nurses and clinicians): one "staff" namespace over the three apps' pages."""

from django.urls import include, path

app_name = "staff"

urlpatterns = [
    path("", include("refills.urls")),
    path("", include("patients.urls")),
    path("", include("pumps.urls")),
    path("", include("interop.urls")),
]
