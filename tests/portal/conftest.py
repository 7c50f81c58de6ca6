import pytest
import time_machine
from django.core.cache import cache

from tests.portal.world import FROZEN_NOW, make_world


@pytest.fixture(autouse=True)
def _clear_cache():
    # Rate limits and DRF throttles count in the cache: each test starts from zero.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    # Argon2 costs ~0.3 s per user here; these tests are about access, not hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def frozen():
    with time_machine.travel(FROZEN_NOW, tick=False):
        yield FROZEN_NOW


@pytest.fixture
def world(db, frozen):
    return make_world()
