"""The portal's world (tests/portal/world.py): two patients and staff, on its frozen moment."""

import pytest

from tests.portal.world import FROZEN_NOW, make_world


@pytest.fixture
def frozen(clock):
    return clock(FROZEN_NOW)


@pytest.fixture
def world(db, frozen):
    return make_world()
