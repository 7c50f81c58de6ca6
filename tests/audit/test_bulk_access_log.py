"""A list page writes its access log in one insert, one row per distinct patient disclosed."""

import pytest
from django.test import RequestFactory

from audit.models import AccessLog
from audit.services import audit_record_accesses
from tests import factories

pytestmark = pytest.mark.django_db


def test_a_list_of_any_size_is_logged_in_one_insert(nurse, django_assert_num_queries):
    patients = [factories.PatientFactory() for _ in range(5)]
    request = RequestFactory().get("/api/patients/", REMOTE_ADDR="10.0.0.7")
    request.user = nurse
    # when a page shows patients 0-4, patient 1 twice (two of their rows)
    with django_assert_num_queries(1):
        entries = audit_record_accesses(
            user=nurse, patients=[*patients[:2], patients[1], *patients[2:], None], action="view", request=request
        )
    # then one row per patient, in the order shown, with who, how and from where
    assert [e.patient_id for e in entries] == [p.pk for p in patients]
    rows = AccessLog.objects.order_by("id")
    assert [r.patient_id for r in rows] == [p.pk for p in patients]
    assert {(r.user_id, r.username, r.action, r.method, r.remote_addr) for r in rows} == {
        (nurse.pk, nurse.username, "view", "GET", "10.0.0.7")
    }


def test_nothing_is_written_for_an_empty_page_and_a_bad_action_is_refused(nurse, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert audit_record_accesses(user=nurse, patients=[], action="view", request=None) == []
    with pytest.raises(ValueError, match="action must be one of"):
        audit_record_accesses(user=nurse, patients=[factories.PatientFactory()], action="delete", request=None)
    assert not AccessLog.objects.exists()
