from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import views

# The admin's page titles and header name the clinic's app, not Django.
admin.site.site_header = "ITB Clinic admin"
admin.site.site_title = "ITB Clinic admin"
admin.site.index_title = "Clinic settings, catalogues and accounts"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("itbclinic.accounts.urls")),
    path("admin/", admin.site.urls),
    path("staff/", include("itbclinic.staff_urls")),
    path("portal/", include("portal.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script from a URL (…?script): the CSP forbids inline scripts.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", title="API docs · ITB Clinic"),
        name="api-docs",
    ),
    path("api/", include("itbclinic.api_urls")),
]
