"""Pages a person meets outside the daily flows (issue 11, item 9): the API docs under the content
security policy, the 403 and password pages with the site's navigation; screenshots in
var/screenshots/."""

from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from .conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


def test_the_api_docs_load_under_the_content_security_policy(ui, live_server, nurse):
    # `ui` fails the test on any CSP violation or JS error in the console
    login(ui, live_server, nurse)
    ui.goto(live_server.url + "/api/docs/")

    # the whole API's schema is generated for this page: seconds on a busy machine
    expect(ui.locator(".swagger-ui .info .title")).to_contain_text("ITB Clinic API", timeout=60_000)
    expect(ui.locator(".opblock-tag").first).to_be_visible(timeout=30_000)
    assert ui.title() == "API docs · ITB Clinic"
    assert ui.locator("html").get_attribute("lang") == "en-gb"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    ui.screenshot(path=str(SCREENSHOTS / "api-docs.png"))


def test_the_403_and_password_pages_have_the_sites_navigation(ui, live_server, nurse):
    login(ui, live_server, nurse)

    response = ui.goto(live_server.url + "/portal/")  # the portal is for patients and carers

    assert response.status == 403
    expect(ui.get_by_role("heading", name="This page is not open to you")).to_be_visible()
    expect(ui.get_by_role("navigation", name="Main").get_by_role("link", name="Worklist")).to_be_visible()
    assert ui.title() == "Not allowed · ITB Clinic"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    ui.screenshot(path=str(SCREENSHOTS / "403.png"))
    ui.get_by_role("link", name="Password").click()
    expect(ui.get_by_role("heading", name="Change your password")).to_be_visible()
    expect(ui.get_by_role("navigation", name="Main").get_by_role("link", name="Calendar")).to_be_visible()
    # the password rules are announced with the field they belong to
    described = ui.get_by_label("New password", exact=True).get_attribute("aria-describedby")
    assert described and ui.locator(f"#{described.split()[0]}").inner_text().strip()
    ui.screenshot(path=str(SCREENSHOTS / "password-change.png"))
