"""Every page of the demo clinic, as each role, reads in plain clinic words (issue 11, items 8 and 9).

The demo clinic is seeded once for the module (rolled back at the end); each role then walks
every page it can reach (tests/pagewalk.py: the URL resolver's patterns with the demo's rows as
arguments, then every same-site link), and every form found is also submitted empty once so its
errors are read too. A page fails on a source tag ("[S37]"), a database constraint's name, a raw
choice value alone in a cell ("sms"), "1 refills", a zero-padded day ("05 Mar"), a duplicate id,
no <html lang> or <title>, or a help text no input points at (aria-describedby).
"""

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client
from django.urls import reverse

from patients.selectors import patient_list_visible_to
from tests import pagewalk

ROLES = ["nurse", "clinician", "admin", "patient1", "patient2"]

# About a minute a role on the 2-core machine: the demo clinic seeded once, hundreds of pages read.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def demo_clinic(django_db_setup, django_db_blocker):
    from django.core.management import call_command

    with django_db_blocker.unblock(), transaction.atomic():
        call_command("seed_demo", "--force", stdout=open("/dev/null", "w"))  # noqa: SIM115
        yield
        transaction.set_rollback(True)


def _client_get(client: Client):
    def get(url: str) -> tuple[int, str, str]:
        response = client.get(url, follow=True)
        body = response.content.decode() if "html" in response.get("Content-Type", "") else ""
        return response.status_code, response.get("Content-Type", ""), body

    return get


def _empty_submissions(client: Client, visits: list[pagewalk.Visit]) -> list[pagewalk.Visit]:
    """Each distinct POST form with fields, sent with every field blank: the page with its errors."""
    result = []
    for url, form in pagewalk.forms_to_submit_blank(visits):
        action = form.action or url.split("?")[0]
        data = {**form.hidden, **{name: "" for name in form.fields}}
        response = client.post(action, data)
        if response.status_code in (200, 400, 409, 422) and "html" in response.get("Content-Type", ""):
            result.append(
                pagewalk.Visit(
                    f"POST {action}", 200, action, pagewalk.read_page(f"POST {action}", response.content.decode())
                )
            )
    return result


@pytest.mark.parametrize("username", ROLES)
def test_every_page_reads_in_plain_clinic_words(demo_clinic, db, username):
    user = get_user_model().objects.get(username=username)
    client = Client()
    client.force_login(user)
    arguments = pagewalk.demo_arguments(visible_patients=patient_list_visible_to(user=user))
    starts = ["/", *pagewalk.start_urls(arguments)]
    if username == "admin":
        starts.append(reverse("admin:index"))

    visits = pagewalk.walk(_client_get(client), starts)
    read = [v for v in visits if v.page is not None and v.status == 200]
    read += _empty_submissions(client, visits)

    constraints, raw_values = pagewalk.constraint_names(), pagewalk.raw_choice_values()
    problems = {}
    for visit in read:
        ours = not visit.url.startswith(("/admin/", "POST /admin/"))
        found = pagewalk.problems_of(visit.page, constraints=constraints, raw_values=raw_values, portal_or_staff=ours)
        if found:
            problems[visit.url] = found
    errors = {v.url: v.status for v in visits if v.status >= 500}
    assert not errors, errors
    assert not problems, "\n".join(f"{url}: {'; '.join(p)}" for url, p in problems.items())
    # the walk reached the role's pages, not only a login page
    routes = {v.route.split("|")[0] for v in read}
    expected = {
        "nurse": {"staff:worklist", "staff:calendar", "staff:patient_detail", "staff:appointment_book"},
        "clinician": {"staff:worklist", "staff:trial_detail", "staff:dose_change"},
        "admin": {"admin:index", "admin:refills_clinicsettings_change"},
        "patient1": {"portal:patient_home", "portal:reminder_preferences"},
        "patient2": {"portal:patient_home"},
    }[username]
    assert expected <= routes, sorted(routes)
