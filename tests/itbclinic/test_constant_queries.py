"""Every page and API route costs the same number of queries in a small and in a larger clinic.

The routes come from the URL resolver through the security matrix (`tests/security/test_url_matrix.py`
discovers every pattern and knows who may GET it and with which of patient B's objects): a new
page or API route is measured here as soon as it is registered there, so none can be missed.
Each route is read by the first role allowed to GET it (clinician, nurse, clinic admin, the
patient who owns the record, anyone), in the world of two patients, then again after ten more
patients with every kind of record (implant, dose, refill, appointment, change request, alert,
trial, carer, calendar feed) joined the clinic. API list routes also stay within 12 queries a
page (issue 12: the access log is one bulk insert, related rows are prefetched).
"""

import datetime as dt

import pytest
import time_machine
from django.db import connection, transaction
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework.throttling import SimpleRateThrottle

from tests.portal.world import FROZEN_NOW, make_side, make_world
from tests.security.test_url_matrix import ALL_ROUTES, OK, Found, _url, _user_for, classify

FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
READER_PREFERENCE = ("clinician", "nurse", "clinic_admin", "owner", "anonymous")
API_LIST_MAX_QUERIES = 12
GROWTH = 10

# Routes not measured, each with its reason. Keep it short: everything else is held constant.
EXCLUDED = {
    # Django's own admin: its change lists count and paginate (100 a page) and its pages are
    # Django's, not the clinic's; only the clinic admin reads them.
    "admin:*": "Django admin (its own pagination; clinic admin only)",
    # Not a page: the schema generator's cost depends on the code, not the data.
    "api-schema": "generated OpenAPI document (no rows)",
    "api-docs": "Swagger UI shell (no rows)",
}


def _excluded(found: Found) -> bool:
    return found.key in EXCLUDED or (found.key.startswith("admin:") or found.pattern.startswith("admin/"))


def _reader(found: Found, world) -> str | None:
    route = classify(found, world)
    if route is None or "GET" not in route.methods:
        return None
    cells = route.methods["GET"]
    return next((role for role in READER_PREFERENCE if cells.get(role) == frozenset({OK})), None)


def _measure(world, routes) -> dict[str, tuple[int, int, int]]:
    """(queries, status, bytes) of each route's GET, each in a savepoint that is rolled back."""
    clients: dict[str, Client] = {}
    figures = {}
    for found, role in routes:
        client = clients.get(role)
        if client is None:
            client = clients[role] = Client()
            user = _user_for(role, world)
            if user is not None:
                client.force_login(user)
        url = _url(found, classify(found, world), world)
        with transaction.atomic():
            with CaptureQueriesContext(connection) as queries:
                response = client.get(url)
            transaction.set_rollback(True)
        executed = [q for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
        figures[found.key] = (len(executed), response.status_code, len(response.content))
    return figures


def _grow(world, n: int) -> None:
    for i in range(n):
        make_side(
            mrn=f"MRN-G{i:03d}",
            given=f"Gina{i}",
            family=f"Grow{i}",
            appointment_at=FROZEN_NOW + dt.timedelta(days=20 + i % 5, hours=i % 6),
            nurse=world.nurse,
        )


@pytest.mark.django_db
def test_every_page_and_api_route_costs_the_same_queries_in_a_larger_clinic(monkeypatch):
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": None, "user": None})
    with time_machine.travel(FROZEN_NOW, tick=False), override_settings(PASSWORD_HASHERS=FAST_HASHERS):
        world = make_world()
        routes = [(f, role) for f in ALL_ROUTES if not _excluded(f) and (role := _reader(f, world)) is not None]
        small = _measure(world, routes)
        _grow(world, GROWTH)
        larger = _measure(world, routes)

    served = {key for key, (_, status, _) in small.items() if status == 200}
    # Most routes are pages a reader GETs: a matrix that stops naming readers would empty this test.
    assert len(served) >= 40, sorted(small.items())
    changed = {key: (small[key][0], larger[key][0]) for key in served if small[key][0] != larger[key][0]}
    assert not changed, f"queries (2 patients, {2 + GROWTH} patients) per route: {changed}"
    api_lists = {key: larger[key][0] for key in served if key.startswith("api:") and key.endswith("-list")}
    assert api_lists and all(n <= API_LIST_MAX_QUERIES for n in api_lists.values()), api_lists
    print("\n".join(f"{key}: {small[key][0]} queries" for key in sorted(served)))


def test_the_exclusions_name_routes_that_exist():
    keys = {f.key for f in ALL_ROUTES}
    assert all(key in keys or key.endswith("*") for key in EXCLUDED), set(EXCLUDED) - keys
