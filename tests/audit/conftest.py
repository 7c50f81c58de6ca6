"""The portal's world (tests/portal/world.py), on its frozen moment: the same two fixtures as tests/portal."""

import pytest

from tests.portal.world import FROZEN_NOW, make_world


@pytest.fixture
def frozen(clock):
    return clock(FROZEN_NOW)


@pytest.fixture
def world(db, frozen):
    return make_world()
