"""A pump and a drug print one way everywhere (core.formatting): "20 mL", never "20.0 mL"."""

import pytest

from tests import factories

pytestmark = pytest.mark.django_db

PUMP = "Medtronic SynchroMed II 20 mL"


def test_a_pump_reads_the_same_in_its_name_and_in_the_api(world, client_for):
    implant = world.a.implant

    due = client_for("nurse").call("GET", "/api/due-for-refill/").json()["results"]
    mine = client_for("patient").call("GET", f"/api/implants/{implant.pk}/").json()

    assert str(implant.pump_model) == PUMP
    assert str(implant) == f"{PUMP} #{implant.serial_number}"
    assert {row["pump_model_name"] for row in due} == {PUMP}
    assert mine["pump_model_name"] == PUMP


def test_a_drug_reads_its_concentration_without_trailing_zeros():
    drug = factories.drug("2000")

    assert str(drug) == f"{drug.name} 2000 mcg/mL"
