from tests.portal.conftest import _clear_cache, _fast_hasher, frozen, world  # noqa: F401
