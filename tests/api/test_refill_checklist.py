"""The refill visit's safety checklist and lots through the API: the same rules as the form."""

import pytest

from refills.models import RefillVisit
from tests.helpers import REFILL_LOTS, SAFETY_CHECKLIST_ALL_DONE

pytestmark = pytest.mark.django_db


def _body(world, **overrides) -> dict:
    body = {
        "implant": world.a.implant.pk,
        "performed_at": "2025-03-03T09:30:00Z",
        "actual_residual_ml": "8.70",
        "volume_added_ml": "20",
        "drug": world.drug.pk,
        "drug_lot": "LOT-API",
        "daily_dose_after_mcg": "400",
        **SAFETY_CHECKLIST_ALL_DONE,
        **REFILL_LOTS,
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


def _visits(world) -> int:
    return RefillVisit.objects.filter(implant=world.a.implant, drug_lot="LOT-API").count()


def test_all_done_is_recorded_and_read_back(world, client_for):
    response = client_for("nurse").call("POST", "/api/refill-visits/", _body(world))

    assert response.status_code == 201, response.json()
    data = response.json()
    assert {key: data[key] for key in SAFETY_CHECKLIST_ALL_DONE} == SAFETY_CHECKLIST_ALL_DONE
    assert (data["drug_lot_expires_on"], data["kit_lot"], data["check_pump_site_reason"]) == (
        "2027-06-30",
        "KIT-55",
        "",
    )


@pytest.mark.parametrize(
    "item",
    ["check_pump_site", "check_needle_placement", "check_aspiration", "check_alarm_settings", "check_symptom_screen"],
)
def test_a_skipped_item_without_a_reason_is_a_400_naming_its_reason(world, client_for, item):
    response = client_for("nurse").call("POST", "/api/refill-visits/", _body(world, **{item: "not_done"}))

    assert response.status_code == 400
    assert list(response.json()) == [f"{item}_reason"]
    assert _visits(world) == 0


def test_a_skipped_item_with_a_reason_is_accepted(world, client_for):
    body = _body(
        world, check_needle_placement="not_done", check_needle_placement_reason="Scarred site; X-ray next week"
    )

    response = client_for("nurse").call("POST", "/api/refill-visits/", body)

    assert response.status_code == 201, response.json()
    visit = RefillVisit.objects.get(pk=response.json()["id"])
    assert (visit.check_needle_placement, visit.check_needle_placement_reason) == (
        "not_done",
        "Scarred site; X-ray next week",
    )


def test_a_post_fill_check_not_done_without_a_reason_is_a_400(world, client_for):
    response = client_for("nurse").call("POST", "/api/refill-visits/", _body(world, post_fill_check="not_done"))

    assert response.status_code == 400
    assert list(response.json()) == ["post_fill_check_reason"]


@pytest.mark.parametrize("missing", ["check_symptom_screen", "drug_lot_expires_on", "kit_lot"])
def test_the_checklist_and_lots_are_required(world, client_for, missing):
    response = client_for("nurse").call("POST", "/api/refill-visits/", _body(world, **{missing: None}))

    assert response.status_code == 400
    assert list(response.json()) == [missing]
    assert _visits(world) == 0


def test_an_answer_other_than_done_or_not_done_is_a_400(world, client_for):
    response = client_for("nurse").call("POST", "/api/refill-visits/", _body(world, check_aspiration="maybe"))

    assert response.status_code == 400
    assert list(response.json()) == ["check_aspiration"]


def test_an_expired_lot_is_a_400_naming_the_expiry(world, client_for):
    response = client_for("nurse").call("POST", "/api/refill-visits/", _body(world, drug_lot_expires_on="2025-03-02"))

    assert response.status_code == 400
    assert response.json() == {
        "drug_lot_expires_on": [
            "Lot LOT-API expired on 02 Mar 2025, before the refill on 03 Mar 2025: "
            "never fill the pump with expired drug."
        ]
    }
    assert _visits(world) == 0
