"""The access log: append-only, with who/which patient/what/when/where, searchable by clinic admins."""

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import RequestFactory, override_settings
from django.urls import reverse

from audit.mixins import patient_of
from audit.models import AccessLog, AccessLogIsAppendOnly
from audit.services import audit_record_access, client_address

pytestmark = pytest.mark.django_db


def _row(world, **kwargs):
    request = RequestFactory().get("/somewhere", REMOTE_ADDR="198.51.100.4")
    return audit_record_access(
        user=world.nurse, patient=world.a.patient, action=AccessLog.Action.VIEW, request=request, **kwargs
    )


def test_record_access_stores_who_what_when_where(world, frozen):
    row = _row(world, detail="refill visit 3")
    assert (row.user, row.username, row.patient, row.action, row.detail, row.method, row.remote_addr, row.at) == (
        world.nurse,
        "nurse.nina",
        world.a.patient,
        "view",
        "refill visit 3",
        "GET",
        "198.51.100.4",
        frozen,
    )
    assert row.resource == "unknown"  # a RequestFactory request was never resolved


def test_unknown_action_is_refused(world):
    with pytest.raises(ValueError):
        audit_record_access(user=world.nurse, patient=world.a.patient, action="peek", request=None)
    assert AccessLog.objects.count() == 0


def test_rows_cannot_be_updated_or_deleted(world):
    row = _row(world)
    row.detail = "tampered"
    with pytest.raises(AccessLogIsAppendOnly):
        row.save()
    with pytest.raises(AccessLogIsAppendOnly):
        row.delete()
    with pytest.raises(AccessLogIsAppendOnly):
        AccessLog.objects.filter(pk=row.pk).update(detail="tampered")
    with pytest.raises(AccessLogIsAppendOnly):
        AccessLog.objects.all().delete()
    assert AccessLog.objects.get(pk=row.pk).detail == ""


def test_database_refuses_raw_updates(world):
    row = _row(world)
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_accesslog SET detail = 'tampered' WHERE id = %s", [row.pk])
    assert AccessLog.objects.get(pk=row.pk).detail == ""


def test_database_refuses_raw_deletes_on_postgresql(world):
    if connection.vendor != "postgresql":
        pytest.skip("the DELETE trigger exists on PostgreSQL only (SQLite's flush deletes rows)")
    row = _row(world)
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_accesslog WHERE id = %s", [row.pk])
    assert AccessLog.objects.filter(pk=row.pk).exists()


@pytest.mark.parametrize(
    "trusted,remote,forwarded,expected",
    [
        (0, "10.0.0.1", "203.0.113.9", "10.0.0.1"),  # header ignored without a trusted proxy
        (1, "10.0.0.1", "203.0.113.9", "203.0.113.9"),
        (1, "10.0.0.1", "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # a spoofed first hop is ignored
        (2, "10.0.0.1", "203.0.113.9, 10.0.0.2", "203.0.113.9"),
        (1, "10.0.0.1", "", "10.0.0.1"),
        (0, "not-an-ip", "", None),
    ],
)
def test_client_address(trusted, remote, forwarded, expected):
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    with override_settings(TRUSTED_PROXY_COUNT=trusted):
        assert client_address(request=request) == expected


def test_patient_of_follows_links_to_the_patient(world):
    assert patient_of(world.a.patient) == world.a.patient
    assert patient_of(world.a.implant) == world.a.patient
    assert patient_of(world.a.refill) == world.a.patient
    assert patient_of(world.a.appointment) == world.a.patient
    assert patient_of(world.a.change_request) == world.a.patient
    assert patient_of(world.nurse) is None


def test_clinic_admin_searches_by_patient_and_by_user_read_only(client, world):
    _row(world)
    audit_record_access(user=world.clinician, patient=world.b.patient, action="view", request=None)
    client.force_login(world.clinic_admin)
    url = reverse("admin:audit_accesslog_changelist")
    by_patient = client.get(url, {"q": "MRN-B"})
    by_user = client.get(url, {"q": "nurse.nina"})
    assert by_patient.status_code == 200
    assert list(by_patient.context["cl"].result_list.values_list("patient__mrn", flat=True)) == ["MRN-B"]
    assert list(by_user.context["cl"].result_list.values_list("username", flat=True)) == ["nurse.nina"]
    row = AccessLog.objects.first()
    assert client.get(reverse("admin:audit_accesslog_add")).status_code == 403
    assert client.post(reverse("admin:audit_accesslog_delete", args=[row.pk]), {"post": "yes"}).status_code == 403
    change = client.post(reverse("admin:audit_accesslog_change", args=[row.pk]), {"detail": "tampered"})
    assert change.status_code == 403
    assert AccessLog.objects.count() == 2 and AccessLog.objects.filter(detail="tampered").count() == 0


@pytest.mark.parametrize("who", ["nurse", "clinician"])
def test_other_staff_cannot_read_the_access_log(client, world, who):
    client.force_login(getattr(world, who))
    response = client.get(reverse("admin:audit_accesslog_changelist"))
    assert response.status_code == 302  # not admin staff: sent to the admin login
