"""The project's URLs plus one bare Django JSON view, for benchmarks/pages.py (never routed in the app).

The bare view answers what `GET /api/patients/<id>/` answers for a staff reader — the same row,
the same scope and permission check, the same access-log row — without DRF, behind the same
middleware, so the benchmark measures what DRF itself costs.
"""

from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.urls import path

from audit.services import audit_record_access
from itbclinic.urls import urlpatterns as project_urlpatterns
from patients.selectors import patient_list_visible_to

FIELDS = ("id", "mrn", "given_name", "family_name", "date_of_birth", "status", "spasticity_origin", "diagnosis")


@login_required
def bare_patient_detail(request, pk: int) -> JsonResponse:
    if not request.user.has_perm("patients.view_patient"):
        raise Http404
    patient = patient_list_visible_to(user=request.user).filter(pk=pk).first()
    if patient is None:
        raise Http404
    audit_record_access(user=request.user, patient=patient, action="view", request=request, detail=f"patient {pk}")
    return JsonResponse({name: str(getattr(patient, name)) for name in FIELDS})


urlpatterns = [*project_urlpatterns, path("bench/bare-patient/<int:pk>/", bare_patient_detail)]
