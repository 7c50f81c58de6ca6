"""`core.db.exists_each`: one query answers `exists()` for each queryset, in order."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.db import exists_each
from patients.models import Patient
from tests import factories

pytestmark = pytest.mark.django_db


def test_each_answer_is_its_querysets_exists_in_one_query():
    factories.PatientFactory(family_name="Hopper", reminder_consent=True)
    factories.PatientFactory(family_name="Turing", reminder_consent=False)
    querysets = [
        Patient.objects.filter(family_name="Hopper"),
        Patient.objects.filter(family_name="Lovelace"),
        Patient.objects.filter(reminder_consent=False).order_by("-family_name"),  # its ordering is dropped
    ]
    with CaptureQueriesContext(connection) as queries:
        answers = exists_each(*querysets)
    assert answers == [qs.exists() for qs in querysets] == [True, False, True]
    assert len(queries.captured_queries) == 1
    assert exists_each() == []
