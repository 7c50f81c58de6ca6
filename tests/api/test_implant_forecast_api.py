"""Every implant in the API carries its forecast, and why it has none (staff; read-only)."""

import datetime as dt

import pytest

from pumps.models import Implant

pytestmark = pytest.mark.django_db

FORECAST_FIELDS = ("forecast_due_by", "forecast_alarm_on", "forecast_empty_on", "forecast_problem")


def no_forecast(implant, *, problem: str) -> None:
    Implant.objects.filter(pk=implant.pk).update(
        forecast_due_by=None, forecast_alarm_on=None, forecast_empty_on=None, forecast_problem=problem
    )


def test_a_pump_with_a_forecast_has_its_dates_and_no_problem(world, client_for):
    implant = world.a.implant

    body = client_for("nurse").call("GET", f"/api/implants/{implant.pk}/").json()

    assert {name: body[name] for name in (*FORECAST_FIELDS, "forecast_problem_display")} == {
        "forecast_due_by": implant.forecast_due_by.isoformat(),
        "forecast_alarm_on": implant.forecast_alarm_on.isoformat(),
        "forecast_empty_on": implant.forecast_empty_on.isoformat(),
        "forecast_problem": "",
        "forecast_problem_display": "",
    }


@pytest.mark.parametrize(
    "problem,display",
    [
        ("fill_not_recorded", "Fill not recorded"),
        ("reservoir_emptied", "Reservoir emptied"),
        ("cannot_compute", "Cannot compute"),
    ],
)
def test_a_pump_without_a_forecast_says_why_in_the_list_and_the_detail(world, client_for, problem, display):
    no_forecast(world.b.implant, problem=problem)
    client = client_for("clinician")

    detail = client.call("GET", f"/api/implants/{world.b.implant.pk}/").json()
    listed = next(r for r in client.call("GET", "/api/implants/").json()["results"] if r["id"] == world.b.implant.pk)

    for body in (detail, listed):
        assert {name: body[name] for name in FORECAST_FIELDS} == {
            "forecast_due_by": None,
            "forecast_alarm_on": None,
            "forecast_empty_on": None,
            "forecast_problem": problem,
        }
        assert body["forecast_problem_display"] == display


def test_the_forecast_fields_are_staff_only_and_read_only(world, client_for):
    implant = world.a.implant
    mine = client_for("patient").call("GET", f"/api/implants/{implant.pk}/").json()
    patch = client_for("clinician").call(
        "PATCH", f"/api/implants/{implant.pk}/", {"forecast_problem": "cannot_compute", "forecast_due_by": "2030-01-01"}
    )

    assert "forecast_problem" not in mine
    assert "forecast_problem_display" not in mine
    assert patch.status_code == 405
    implant.refresh_from_db()
    assert (implant.forecast_problem, implant.forecast_due_by) == ("", dt.date(2025, 4, 1))


def test_due_for_refill_rows_carry_the_forecast_problem(world, client_for):
    rows = client_for("nurse").call("GET", "/api/due-for-refill/").json()["results"]

    assert {(r["implant"], r["forecast_problem"], r["forecast_problem_display"]) for r in rows} == {
        (world.a.implant.pk, "", ""),
        (world.b.implant.pk, "", ""),
    }


def test_the_schema_documents_the_forecast_fields_as_read_only():
    from tests.api.routes import api_schema

    components = api_schema()["components"]["schemas"]
    implant = components["Implant"]["properties"]

    for name in (*FORECAST_FIELDS, "forecast_problem_display"):
        assert implant[name]["readOnly"] is True, name
    assert "forecast_problem_display" in components["DueForRefill"]["properties"]
