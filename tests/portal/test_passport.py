"""The emergency pump passport in the portal: shown on the phone, printable, the reprint prompt."""

import datetime as dt
import html as html_lib
import re
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from audit.models import AccessLog
from refills.passport import passport_get
from refills.services import dose_change_record

from .world import FROZEN_NOW

pytestmark = pytest.mark.django_db


def _passport_url(side) -> str:
    return reverse("portal:passport", kwargs={"patient_id": side.patient.pk})


def _home_url(side) -> str:
    return reverse("portal:patient_home", kwargs={"patient_id": side.patient.pk})


def test_the_patient_sees_the_passport_with_the_same_text_as_staff_print(client, world):
    client.force_login(world.a.user)

    response = client.get(_passport_url(world.a))

    assert response.status_code == 200
    page = response.content.decode()
    block = page.split('<dl class="passport-lines">', 1)[1].split("</dl>", 1)[0]
    shown = [
        (html_lib.unescape(k), html_lib.unescape(v)) for k, v in re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", block)
    ]
    expected = passport_get(
        patient=world.a.patient, implant=world.a.implant, now=FROZEN_NOW, booked_refill=world.a.appointment
    )
    assert shown == expected.lines
    assert dict(shown)["Dose in force"] == "400 mcg/day (simple continuous)"
    assert 'data-testid="passport-qr"' in page and "<svg" in page
    assert "data-print" in page  # the patient prints it from the phone
    log = AccessLog.objects.filter(patient=world.a.patient, action="export").get()
    assert (log.user, log.detail, log.resource) == (world.a.user, "pump passport", "portal:passport")


def test_a_carer_sees_the_passport_and_patient_a_never_sees_bs(client, world):
    client.force_login(world.a.carer)
    assert client.get(_passport_url(world.a)).status_code == 200
    client.force_login(world.a.user)
    assert client.get(_passport_url(world.b)).status_code == 404


def test_home_links_the_passport_and_prompts_a_reprint_after_a_dose_change(client, world):
    client.force_login(world.a.user)
    home = client.get(_home_url(world.a)).content.decode()
    assert _passport_url(world.a) in home
    # the prescription in force (from the implant) was never on a printed passport
    assert 'data-testid="passport-reprint"' in home

    client.get(_passport_url(world.a))
    assert 'data-testid="passport-reprint"' not in client.get(_home_url(world.a)).content.decode()

    later = FROZEN_NOW + dt.timedelta(minutes=10)  # within the idle timeout
    with time_machine.travel(later, tick=False):
        dose_change_record(
            implant=world.a.implant,
            daily_dose_mcg=Decimal("440"),
            effective_at=later - dt.timedelta(minutes=5),
            prescribed_by=world.clinician,
            reason="Rise",
            titration_confirmed=True,
            now=later,
        )
        home = client.get(_home_url(world.a)).content.decode()
    assert "The dose or concentration was set on 1 March 2025, after your pump passport was last printed" in home
    # patient B's prompt is B's own: A's print did nothing to it
    client.force_login(world.b.user)
    assert 'data-testid="passport-reprint"' in client.get(_home_url(world.b)).content.decode()
