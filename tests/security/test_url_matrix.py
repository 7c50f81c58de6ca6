"""
The access matrix: every URL pattern of the project × role × method, every cell asserted.

How it works
- `discover_routes()` walks `get_resolver().url_patterns` recursively: every page, admin route,
  API route and portal route, as other developers add them.
- Each route must be classified in `ROUTES` (by "namespace:name") or by a family rule in
  `FAMILIES` (the Django admin). An unclassified route FAILS the suite with a message that says
  which route and how to classify it.
- The world (tests/portal/world.py) has patients A and B. Routes that take an object are called
  with **patient B's object**: patient A ("patient"), and a carer linked only to A ("carer"),
  must get 404 on patient routes, and be denied (403 or a redirect to a login page, never 200)
  on staff routes; B ("owner") must get in where the portal lets them.
- Each cell runs in a savepoint that is rolled back, as a logged-in client, from its own address
  (so per-address rate limits of one role do not bleed into another). Each role logs in once per
  module, with the world: its session row outlives every cell's rollback, and a client whose
  cookie a cell changed (a logout, a rotated key) gets that session back before the next cell.

To classify a new route, add one line to ROUTES, e.g.
    "staff:implant_detail": staff(of(implant_id="implant"), read=STAFF_READERS),
    "api:appointment-detail": api_object(of(pk="appointment"), owner_reads=True, writers=("nurse", "clinician")),
Run `URL_MATRIX_PROBE=1 pytest tests/security/test_url_matrix.py -k <name> -s` to print what the
route answers now, per role and method, before you write its expectation.
"""

import datetime as dt
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import time_machine
from django.db import transaction
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from interop.columns import COLUMNS
from interop.models import ClinicImport
from portal.models import PortalInvitation, hash_token
from tests.factories import ClinicAdminFactory, UserFactory
from tests.portal.world import FROZEN_NOW, World, make_world

FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# "superuser": a technical account (is_superuser, is_staff) with no role. Its intended rights:
# the public and logged-in-only pages and the Django admin (Django's superuser there), and
# nothing clinical: every staff page, API route and portal page refuses it, because those check
# the role and the permissions a role grants, never the superuser flag (core/permissions.py).
# "clinic_admin_superuser": a clinic admin who is also a superuser gets exactly the clinic admin's
# answers everywhere (the cells are copied from clinic_admin): no role gains through the flag.
ROLES = (
    "anonymous",
    "patient",
    "carer",
    "owner",
    "nurse",
    "clinician",
    "clinic_admin",
    "superuser",
    "clinic_admin_superuser",
)
PATIENT_SIDE = ("patient", "carer", "owner")
STAFF = ("nurse", "clinician", "clinic_admin")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

# Outcome classes of one response.
OK = "ok"  # 2xx, a redirect that is not to a login page, or a 4xx that means "reached the form" (400/409/422)
DENIED = "denied"  # 401/403, or a redirect to a login page
HIDDEN = "404"
NO_METHOD = "405"
UNAVAILABLE = "503"  # only the health probe may say so (e.g. no broker in a test run)
ERROR = "5xx"
REFUSED = frozenset({DENIED, HIDDEN, NO_METHOD})
LOGIN_PATHS = ("/accounts/login/", "/admin/login/")

STAFF_READERS = ("nurse", "clinician")


def outcome_of(response) -> str:
    status = response.status_code
    if status == 404:
        return HIDDEN
    if status == 405:
        return NO_METHOD
    if status in (401, 403):
        return DENIED
    if status == 503:
        return UNAVAILABLE
    if status >= 500:
        return ERROR
    location = response.get("Location", "").split("?")[0]
    if 300 <= status < 400 and (location.endswith(LOGIN_PATHS) or location == "/admin/"):
        # The admin bounces an unknown or non-staff user to its index, which asks for a login.
        return DENIED
    return OK


# ---------------------------------------------------------------------------
# Route specifications
# ---------------------------------------------------------------------------
Cells = dict[str, frozenset[str]]  # role -> acceptable outcomes


def _cells(default: frozenset[str], **by_role) -> Cells:
    cells = {role: default for role in ROLES}
    for role, outcomes in by_role.items():
        cells[role] = frozenset(outcomes) if not isinstance(outcomes, str) else frozenset({outcomes})
    cells["clinic_admin_superuser"] = cells["clinic_admin"]  # always: the flag adds nothing
    return cells


def roles_ok(allowed, *, others=frozenset({DENIED}), **extra) -> Cells:
    """`allowed` roles get OK, everyone else `others`; `extra` overrides single roles."""
    return _cells(frozenset(others), **{**{r: OK for r in allowed}, **extra})


@dataclass(frozen=True)
class Route:
    """Expected outcomes per method and role; methods not listed must be refused (403/404/405/login)."""

    methods: dict[str, Cells]
    kwargs: Callable[[World], dict] | None = None
    refused: Cells = field(default_factory=lambda: _cells(REFUSED))


def of(**params: str) -> Callable[[World], dict]:
    """URL kwargs from patient B's objects: of(patient_id="patient", appointment_id="appointment")."""

    def build(world: World) -> dict:
        return {name: getattr(world.b, attr).pk for name, attr in params.items()}

    return build


def public(*methods: str, kwargs=None) -> Route:
    return Route({m: roles_ok(ROLES) for m in methods}, kwargs=kwargs)


def logged_in(*methods: str, kwargs=None) -> Route:
    everyone = tuple(r for r in ROLES if r != "anonymous")
    return Route({m: roles_ok(everyone) for m in methods}, kwargs=kwargs)


def portal(kwargs=None, *, methods=("GET",)) -> Route:
    """A portal page of patient B: B gets in; A and A's carer get 404; staff get 403; anonymous to login."""
    cells = roles_ok(("owner",), patient=HIDDEN, carer=HIDDEN) if kwargs else roles_ok(PATIENT_SIDE)
    return Route({m: cells for m in methods}, kwargs=kwargs)


def staff(kwargs=None, *, read=STAFF_READERS, write=(), write_methods=("POST",)) -> Route:
    """A staff page: `read` roles may GET, `write` roles may POST; patients are denied (never 200, never 404).

    `read=None` for an action that answers only POST (GET is then refused for everyone: 403/405).
    """
    methods = {} if read is None else {"GET": roles_ok(read)}
    for method in write_methods if write else ():
        methods[method] = roles_ok(write)
    return Route(methods, kwargs=kwargs)


def api_object(kwargs=None, *, readers=STAFF_READERS, owner_reads=False, writers=(), write_methods=("PATCH",)) -> Route:
    """A DRF route of one object of patient B.

    Another patient (and a carer of A) gets exactly 404 when patients may read such objects
    (BOLA); every other refusal may be 403, 404 or 405. Patients never write.
    """
    hidden = {"patient": HIDDEN, "carer": HIDDEN} if owner_reads else {}
    read = roles_ok(readers + (("owner",) if owner_reads else ()), others=REFUSED, anonymous=DENIED, **hidden)
    methods = {"GET": read}
    for method in write_methods if writers else ():
        methods[method] = roles_ok(writers, others=REFUSED, anonymous=DENIED)
    return Route(methods, kwargs=kwargs)


def api_list(*, readers=STAFF_READERS, patients_read=False, writers=()) -> Route:
    """A DRF list route; a patient's list is scoped to their own rows (tests/api asserts the rows)."""
    methods = {"GET": roles_ok(readers + (PATIENT_SIDE if patients_read else ()), others=REFUSED, anonymous=DENIED)}
    if writers:
        methods["POST"] = roles_ok(writers, others=REFUSED, anonymous=DENIED)
    return Route(methods)


def api_action(kwargs=None, *, writers, readers=(), method="POST") -> Route:
    """A DRF action on patient B's object (cancel, move, ERI...): patients never get through."""
    methods = {method: roles_ok(writers, others=REFUSED, anonymous=DENIED)}
    if readers:
        methods["GET"] = roles_ok(readers, others=REFUSED, anonymous=DENIED)
    return Route(methods, kwargs=kwargs)


def catalogue(model: str) -> Callable[[World], dict]:
    """The first row of a catalogue (pump models, drugs): not patient data."""

    def build(world: World) -> dict:
        from django.apps import apps

        return {"pk": apps.get_model(model).objects.order_by("pk").first().pk}

    return build


def b_invitation(world: World):
    """An open invitation of patient B (the world has none: tests of invitations count them)."""
    return PortalInvitation.objects.filter(patient=world.b.patient).first() or PortalInvitation.objects.create(
        patient=world.b.patient,
        user=world.b.user,
        email=world.b.user.email or "b@example.org",
        invited_by=world.nurse,
        invited_at=FROZEN_NOW,
        expires_at=FROZEN_NOW + dt.timedelta(hours=72),
        token_hash=hash_token("matrix-invitation-of-b"),
    )


def b_extra(**params: str) -> Callable[[World], dict]:
    """URL kwargs from patient B's extra objects (trial step, assessment, prescription)."""
    return lambda w: {name: w.b.extra[attr].pk for name, attr in params.items()}


# Every named route of the project. Keep it sorted by owner; one line per route.
def _clinic_import(world: World) -> dict:
    """A checked onboarding file with a header and no rows (confirming it imports nothing)."""
    checked, _ = ClinicImport.objects.get_or_create(
        filename="empty.csv",
        defaults={
            "content": ",".join(column.header for column in COLUMNS).encode() + b"\n",
            "sha256": "0" * 64,
            "uploaded_by": world.clinic_admin,
            "uploaded_at": timezone.now(),
        },
    )
    return {"import_id": checked.pk}


def _field_safety_flag_of_b(world: World):
    """A field-safety notice flagging patient A's and B's pumps; B's flag (the world has none)."""
    from refills.models import FieldSafetyFlag, FieldSafetyNotice

    notice, _ = FieldSafetyNotice.objects.get_or_create(
        reference="MATRIX-FSN",
        defaults={
            "title": "Matrix notice",
            "manufacturer_text": "Interrogate the pump.",
            "criteria": "Serials MRN-A to MRN-B",
            "issued_by": world.clinician,
            "issued_at": FROZEN_NOW,
        },
    )
    for side in (world.a, world.b):
        FieldSafetyFlag.objects.get_or_create(notice=notice, implant=side.implant, defaults={"patient": side.patient})
    return FieldSafetyFlag.objects.get(notice=notice, implant=world.b.implant)


ROUTES: dict[str, Route] = {
    # --- wiring (itbclinic/) ---
    # The landing page sends each role on (a clinic admin to the admin index).
    "home": Route({m: roles_ok(ROLES[1:], clinic_admin=frozenset({OK, DENIED})) for m in METHODS}),
    "healthz": Route({"GET": _cells(frozenset({OK, UNAVAILABLE}))}),
    "api-schema": public("GET"),
    "api-docs": public("GET"),
    # --- accounts (itbclinic/accounts/urls.py) ---
    "login": public("GET", "POST", "PUT"),
    # Logging out (even when not logged in) lands on the login page: a "redirect to login" for all.
    "logout": Route({"POST": _cells(frozenset({DENIED}))}),
    "password_change": logged_in("GET", "POST", "PUT"),
    "password_change_done": logged_in("GET"),
    "password_reset": public("GET", "POST", "PUT"),
    "password_reset_done": public("GET"),
    # A bogus token renders "this link has expired" whatever the method (dispatch answers first).
    "password_reset_confirm": public(*METHODS, kwargs=lambda w: {"uidb64": "MQ", "token": "bad-token"}),
    "password_reset_complete": public("GET"),
    # --- patient portal (portal/urls.py) ---
    "portal:home": portal(),
    "portal:patient_home": portal(of(patient_id="patient")),
    "portal:appointment_ics": portal(of(patient_id="patient", appointment_id="appointment")),
    "portal:change_request": portal(of(patient_id="patient", appointment_id="appointment"), methods=("GET", "POST")),
    "portal:change_request_withdraw": portal(of(patient_id="patient", request_id="change_request"), methods=("POST",)),
    "portal:reminder_preferences": portal(of(patient_id="patient"), methods=("GET", "POST")),
    "portal:passport": portal(of(patient_id="patient")),
    "portal:calendar_settings": portal(of(patient_id="patient"), methods=("GET", "POST")),
    # The token is the key (a phone's calendar has no session): B's token works for anyone.
    "portal:calendar_feed": public("GET", kwargs=lambda w: {"token": w.b.feed_token}),
    "portal:invite": staff(of(patient_id="patient"), read=("nurse",), write=("nurse",)),
    # Staff-facing portal access of patient B: nurses confirm (GET) then act (POST).
    "portal:invitation_revoke": staff(
        lambda w: {"patient_id": w.b.patient.pk, "invitation_id": b_invitation(w).pk}, read=("nurse",), write=("nurse",)
    ),
    "portal:carer_link_revoke": staff(
        lambda w: {"patient_id": w.b.patient.pk, "link_id": w.b.carer_link.pk}, read=("nurse",), write=("nurse",)
    ),
    "portal:account_email_change": staff(of(patient_id="patient"), read=("nurse",), write=("nurse",)),
    # A token that opens no invitation: the same "this link no longer works" page (404) for everyone.
    "portal:invitation_accept": Route(
        {m: _cells(frozenset({HIDDEN})) for m in ("GET", "POST")}, kwargs=lambda w: {"token": "bad-token"}
    ),
    # --- staff web app (itbclinic/staff_urls.py; issue 5). Who may do what: issue 3 "Who may do what" ---
    "staff:worklist": staff(),
    "staff:calendar": staff(),
    # Booking from a day of the calendar (the patient chosen on the form): whoever may book.
    "staff:calendar_book": staff(write=STAFF_READERS),
    "staff:patient_list": staff(read=("nurse", "clinician", "clinic_admin")),
    "staff:patient_create": staff(write=STAFF_READERS),
    "staff:patient_detail": staff(),
    # Contact card and address: every staff role; status (ends reminders): clinicians and the clinic admin.
    "staff:patient_contact_edit": staff(
        of(patient_id="patient"),
        read=("nurse", "clinician", "clinic_admin"),
        write=("nurse", "clinician", "clinic_admin"),
    ),
    "staff:patient_status_edit": staff(
        of(patient_id="patient"), read=("clinician", "clinic_admin"), write=("clinician", "clinic_admin")
    ),
    "staff:wallet_card": staff(),
    "staff:appointment_book": staff(write=STAFF_READERS),
    "staff:appointment_move": staff(write=STAFF_READERS),
    "staff:appointment_cancel": staff(write=STAFF_READERS),
    "staff:appointment_no_show": staff(read=None, write=STAFF_READERS),
    "staff:appointment_attended": staff(read=None, write=STAFF_READERS),
    "staff:change_request_decline": staff(read=None, write=STAFF_READERS),
    # Nurses record refill visits; the live forecast serves their form.
    "staff:refill_visit_record": staff(read=("nurse",), write=("nurse",)),
    "staff:refill_forecast": staff(read=None, write=("nurse",)),
    "staff:refill_visit_done": staff(),
    "staff:refill_visit_print": staff(),
    # Clinicians record trials, implants, explants and dose prescriptions.
    "staff:dose_change": staff(read=("clinician",), write=("clinician",)),
    "staff:trial_start": staff(read=("clinician",), write=("clinician",)),
    "staff:trial_detail": staff(),
    "staff:trial_step_add": staff(read=None, write=("clinician",)),
    "staff:trial_assessment_add": staff(read=None, write=("clinician",)),
    "staff:trial_verdict": staff(read=None, write=("clinician",)),
    "staff:implant_register": staff(read=("clinician",), write=("clinician",)),
    "staff:implant_eri": staff(read=("clinician",), write=("clinician",)),
    "staff:implant_explant": staff(read=("clinician",), write=("clinician",)),
    "staff:implant_replace": staff(read=("clinician",), write=("clinician",)),
    "staff:implant_fill": staff(read=("clinician",), write=("clinician",)),
    "staff:reservoir_empty": staff(read=("nurse", "clinician"), write=("nurse", "clinician")),
    # Corrections (issue 11): the role that records it corrects it.
    "staff:refill_visit_correct": staff(of(visit_id="refill"), read=("nurse",), write=("nurse",)),
    "staff:dose_correct": staff(b_extra(prescription_id="prescription"), read=("clinician",), write=("clinician",)),
    "staff:implant_correct": staff(of(implant_id="implant"), read=("clinician",), write=("clinician",)),
    "staff:implant_eri_correct": staff(of(implant_id="implant"), read=("clinician",), write=("clinician",)),
    "staff:alert_resolve": staff(read=None, write=STAFF_READERS),
    "staff:alert_acknowledge": staff(read=None, write=STAFF_READERS),
    # The programme pages (issue 14): clinic-wide figures for every staff role; patient lists inside
    # them for nurses and clinicians only (tests/refills/test_quality.py).
    "staff:quality_dashboard": staff(read=("nurse", "clinician", "clinic_admin")),
    "staff:quality_csv": staff(lambda w: {"table": "monthly"}, read=("nurse", "clinician", "clinic_admin")),
    "staff:recall_search": staff(),
    "staff:recall_csv": staff(),
    # Field-safety notices (issue 14, item 2): clinicians flag, send and record the action; nurses see.
    "staff:recall_flag": staff(read=None, write=("clinician",)),
    "staff:field_safety_list": staff(),
    "staff:field_safety_notice": staff(lambda w: {"notice_id": _field_safety_flag_of_b(w).notice_id}),
    "staff:field_safety_csv": staff(lambda w: {"notice_id": _field_safety_flag_of_b(w).notice_id}),
    "staff:field_safety_send": staff(
        lambda w: {"notice_id": _field_safety_flag_of_b(w).notice_id}, read=None, write=("clinician",)
    ),
    "staff:field_safety_action": staff(
        lambda w: {"flag_id": _field_safety_flag_of_b(w).pk}, read=("clinician",), write=("clinician",)
    ),
    "staff:clinic_import_upload": staff(read=("clinic_admin",), write=("clinic_admin",)),
    "staff:clinic_import_template": staff(lambda w: {"kind": "csv"}, read=("clinic_admin",)),
    "staff:clinic_import_detail": staff(_clinic_import, read=("clinic_admin",), write=("clinic_admin",)),
    # --- REST API (core/api/ and each app's api.py) ---
    "api:not-found": Route({m: _cells(frozenset({HIDDEN})) for m in METHODS}),
    "api:patient-list": api_list(
        readers=("nurse", "clinician", "clinic_admin"), patients_read=True, writers=STAFF_READERS
    ),
    "api:patient-detail": api_object(
        of(pk="patient"), readers=("nurse", "clinician", "clinic_admin"), owner_reads=True, writers=STAFF_READERS
    ),
    "api:patient-mark-entered-in-error": api_action(of(pk="patient"), writers=STAFF_READERS),
    "api:trial-list": api_list(writers=("clinician",)),
    # Read-only details: changes go through the actions below (PATCH/PUT answer 405).
    "api:trial-detail": api_object(of(pk="trial")),
    "api:trial-summary": api_object(of(pk="trial")),
    "api:trial-steps": api_action(of(pk="trial"), readers=STAFF_READERS, writers=("clinician",)),
    "api:trial-assessments": api_action(of(pk="trial"), readers=STAFF_READERS, writers=("clinician",)),
    "api:trial-verdict": api_action(of(pk="trial"), writers=("clinician",)),
    "api:trial-mark-entered-in-error": api_action(of(pk="trial"), writers=("clinician",)),
    "api:trial-step-mark-entered-in-error": api_action(
        lambda w: {"pk": w.b.trial.pk, "step_id": w.b.extra["step"].pk}, writers=("clinician",)
    ),
    "api:trial-assessment-mark-entered-in-error": api_action(
        lambda w: {"pk": w.b.trial.pk, "assessment_id": w.b.extra["assessment"].pk}, writers=("clinician",)
    ),
    "api:pump-model-list": api_list(readers=("nurse", "clinician", "clinic_admin"), writers=("clinic_admin",)),
    "api:pump-model-detail": api_object(
        catalogue("pumps.PumpModel"), readers=("nurse", "clinician", "clinic_admin"), writers=("clinic_admin",)
    ),
    "api:drug-list": api_list(readers=("nurse", "clinician", "clinic_admin"), writers=("clinic_admin",)),
    "api:drug-detail": api_object(
        catalogue("pumps.Drug"), readers=("nurse", "clinician", "clinic_admin"), writers=("clinic_admin",)
    ),
    "api:drug-pump-interval-list": api_list(readers=("nurse", "clinician", "clinic_admin"), writers=("clinic_admin",)),
    "api:drug-pump-interval-detail": api_object(
        catalogue("pumps.DrugPumpInterval"), readers=("nurse", "clinician", "clinic_admin"), writers=("clinic_admin",)
    ),
    "api:implant-list": api_list(
        readers=("nurse", "clinician", "clinic_admin"), patients_read=True, writers=("clinician",)
    ),
    "api:implant-detail": api_object(
        of(pk="implant"), readers=("nurse", "clinician", "clinic_admin"), owner_reads=True
    ),
    "api:implant-eri": api_action(of(pk="implant"), writers=("clinician",)),
    "api:implant-explant": api_action(of(pk="implant"), writers=("clinician",)),
    "api:implant-replace": api_action(of(pk="implant"), writers=("clinician",)),
    "api:implant-empty": api_action(of(pk="implant"), writers=("nurse", "clinician")),
    "api:implant-mark-entered-in-error": api_action(of(pk="implant"), writers=("clinician",)),
    "api:dose-prescription-list": api_list(patients_read=True, writers=("clinician",)),
    "api:dose-prescription-detail": api_object(b_extra(pk="prescription"), owner_reads=True),
    "api:dose-prescription-mark-entered-in-error": api_action(b_extra(pk="prescription"), writers=("clinician",)),
    "api:refill-visit-list": api_list(patients_read=True, writers=("nurse",)),
    "api:refill-visit-detail": api_object(of(pk="refill"), owner_reads=True),
    "api:refill-visit-mark-entered-in-error": api_action(of(pk="refill"), writers=("nurse",)),
    "api:appointment-list": api_list(patients_read=True, writers=STAFF_READERS),
    "api:appointment-detail": api_object(of(pk="appointment"), owner_reads=True),
    "api:appointment-cancel": api_action(of(pk="appointment"), writers=STAFF_READERS),
    "api:appointment-move": api_action(of(pk="appointment"), writers=STAFF_READERS),
    "api:appointment-no-show": api_action(of(pk="appointment"), writers=STAFF_READERS),
    "api:appointment-mark-entered-in-error": api_action(of(pk="appointment"), writers=STAFF_READERS),
    "api:refill-forecast": staff(read=None, write=STAFF_READERS),
    "api:due-for-refill": staff(),
    "api:alert-list": api_list(readers=("nurse", "clinician", "clinic_admin")),
    "api:fhir-patient-everything": staff(of(pk="patient"), read=("nurse", "clinician", "clinic_admin")),
}


# ---------------------------------------------------------------------------
# Families: routes classified by a rule rather than one by one
# ---------------------------------------------------------------------------
def _admin_route(name: str, world: World, pattern: str) -> Route:
    """The Django admin: only is_staff users (here the clinic admin) get past its login.

    Everyone else is denied on every admin route and method (a redirect to the admin login).
    For the clinic admin, Django's model permissions decide: the cell asserts an access-control
    answer (200/302, 403, 404 or 405) and never a server error; the access log's own admin is
    asserted read-only in tests/audit.
    """
    if name == "admin:login":
        # Anyone may see the admin login; a logged-in clinic admin or superuser is sent on to the index.
        inside = frozenset({OK, DENIED})
        return Route(
            {m: _cells(frozenset({OK}), clinic_admin=inside, superuser=inside) for m in ("GET", "POST", "PUT")}
        )
    if name == "admin:logout":
        # POST logs out and lands on the login page; other methods are refused.
        return Route({}, refused=_cells(frozenset({DENIED, NO_METHOD})))
    # The superuser is the admin's own technical account: Django's model permissions do not bind it
    # there (tests/itbclinic/accounts/test_superuser.py asserts what it opens).
    answers = frozenset({OK, DENIED, HIDDEN, NO_METHOD})
    cells = _cells(frozenset({DENIED}), clinic_admin=answers, superuser=answers)
    return Route({m: cells for m in METHODS}, kwargs=_admin_kwargs(pattern))


ADMIN_OBJECTS = {
    "patients/patient/": "patient",
    "patients/screeningtrial/": "trial",
    "pumps/implant/": "implant",
    "refills/refillvisit/": "refill",
    "refills/appointment/": "appointment",
    "refills/appointmentchangerequest/": "change_request",
    "refills/alert/": "alert",
    "portal/carerlink/": "carer_link",
    "accounts/user/": "user",
}


def _admin_kwargs(pattern: str) -> Callable[[World], dict]:
    """Patient B's row where the admin page is about a patient-linked model; otherwise id 1."""
    attr = next((a for prefix, a in ADMIN_OBJECTS.items() if pattern.startswith("admin/" + prefix)), None)

    def build(world: World) -> dict:
        object_id = getattr(world.b, attr).pk if attr else 1
        return {
            "object_id": object_id,
            "id": object_id,
            "app_label": "patients",
            "content_type_id": 1,
            "history_id": 1,
            "url": "no-such-page/",
        }

    return build


FAMILIES: list[tuple[Callable[[str, str], bool], Callable[[str, World, str], Route]]] = [
    (lambda key, pattern: key.startswith("admin:") or pattern.startswith("admin/"), _admin_route),
]


# ---------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Found:
    key: str  # "namespace:name", or the pattern for unnamed routes
    pattern: str
    params: tuple[str, ...]
    named: bool
    positional: int = 0  # unnamed regex groups (django-simple-history's admin routes)


def discover_routes() -> list[Found]:
    found: list[Found] = []

    def walk(patterns, prefix: str, namespace: str | None):
        for p in patterns:
            if isinstance(p, URLResolver):
                ns = namespace
                if p.namespace:
                    ns = f"{namespace}:{p.namespace}" if namespace else p.namespace
                walk(p.url_patterns, prefix + str(p.pattern), ns)
            elif isinstance(p, URLPattern):
                pattern = prefix + str(p.pattern)
                key = (f"{namespace}:{p.name}" if namespace else p.name) if p.name else pattern
                regex = p.pattern.regex
                params = tuple(sorted(regex.groupindex))
                found.append(Found(key, pattern, params, bool(p.name), regex.groups - len(regex.groupindex)))

    walk(get_resolver().url_patterns, "", None)
    return found


def classify(found: Found, world: World | None) -> Route | None:
    if found.key in ROUTES:
        return ROUTES[found.key]
    for matches, build in FAMILIES:
        if matches(found.key, found.pattern):
            return build(found.key, world, found.pattern) if world is not None else Route({})
    return None


def how_to_classify(found: Found) -> str:
    unknown = [p for p in found.params if p not in PARAM_OBJECTS and p != "format"]
    params = ", ".join(f'{p}="<world.b attribute: patient/implant/refill/appointment/trial...>"' for p in unknown)
    example = f'staff(of({params}), read=("nurse", "clinician"))' if unknown else 'staff(read=("nurse", "clinician"))'
    return (
        f"Route {found.key!r} ({found.pattern}) is not classified in tests/security/test_url_matrix.py.\n"
        f"  Add to ROUTES:  {found.key!r}: {example},\n"
        f"  or portal(...)/api_object(...)/api_list(...)/public(...)/logged_in(...) - see the module docstring.\n"
        f"  Probe it first: URL_MATRIX_PROBE=1 pytest tests/security/test_url_matrix.py -k '{found.key}' -s"
    )


ALL_ROUTES = discover_routes()


# URL parameters whose object is obvious from the name: a route that takes only these needs no
# `kwargs=` in its classification (they are patient B's objects).
PARAM_OBJECTS = {
    "patient_id": "patient",
    "appointment_id": "appointment",
    "visit_id": "refill",
    "refill_id": "refill",
    "refill_visit_id": "refill",
    "implant_id": "implant",
    "trial_id": "trial",
    "alert_id": "alert",
    "change_request_id": "change_request",
    "request_id": "change_request",
}


def _url(found: Found, route: Route, world: World) -> str:
    kwargs = route.kwargs(world) if route.kwargs else {}
    for param in found.params:
        if param not in kwargs and param in PARAM_OBJECTS:
            kwargs[param] = getattr(world.b, PARAM_OBJECTS[param]).pk
    if "format" in found.params:
        kwargs.setdefault("format", "json")  # DRF's format-suffix twin of a route
    missing = set(found.params) - set(kwargs)
    assert not missing, f"{found.key}: the classification gives no value for {sorted(missing)}"
    values = {k: str(kwargs[k]) for k in found.params}
    if found.named and found.positional and not found.params:
        first = str(kwargs.get("object_id", 1))
        return reverse(found.key, args=[first, *["1"] * (found.positional - 1)])
    if found.named:
        return reverse(found.key, kwargs=values)
    return "/" + _fill(found.pattern, values)


def _fill(pattern: str, values: dict[str, str]) -> str:
    """An unnamed route's URL: its converters and groups replaced by the values."""
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], pattern)
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: values[m.group(1)], path)
    return path.replace("^", "").replace("$", "")


def _user_for(role: str, world: World):
    return {
        "anonymous": None,
        "patient": world.a.user,
        "carer": world.a.carer,
        "owner": world.b.user,
        "nurse": world.nurse,
        "clinician": world.clinician,
        "clinic_admin": world.clinic_admin,
        # Made by matrix_world (other users of the world, e.g. the constant-query test, skip them).
        "superuser": getattr(world, "superuser", None),
        "clinic_admin_superuser": getattr(world, "clinic_admin_superuser", None),
    }[role]


class RoleClients:
    """One client per role, each from its own address, on its role's session of the module.

    A cell that logged the client out or rotated its key was rolled back: the role's session row
    is intact, so the client is simply given its cookie again.
    """

    def __init__(self, world: World, sessions: dict[str, str]):
        self.world = world
        self.sessions = sessions
        self.clients: dict[str, Client] = {}

    def get(self, role: str) -> Client:
        client = self.clients.get(role)
        if client is None:
            client = self.clients[role] = Client(REMOTE_ADDR=f"127.0.0.{10 + ROLES.index(role)}")
        session = self.sessions.get(role)
        current = client.cookies.get("sessionid")
        if session is not None and (current is None or current.value != session):
            client.cookies["sessionid"] = session
        return client


def _log_in_every_role(world: World) -> dict[str, str]:
    """Each role's session key, made once (force_login costs a session row and a last_login write)."""
    sessions = {}
    for role in ROLES:
        user = _user_for(role, world)
        if user is not None:
            client = Client()
            client.force_login(user)
            sessions[role] = client.cookies["sessionid"].value
    return sessions


def _request(clients: RoleClients, role: str, method: str, url: str):
    client = clients.get(role)
    with transaction.atomic():
        try:
            response = client.generic(method, url, data=b"", content_type="application/x-www-form-urlencoded")
            result = outcome_of(response), response.status_code, response.get("Location", "")
        except Exception as exc:  # a crash is a cell result, reported with its cause
            result = ERROR, 500, repr(exc)[:200]
        transaction.set_rollback(True)
    return result


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------
def test_every_route_is_classified():
    missing = [f for f in ALL_ROUTES if classify(f, None) is None]
    assert not missing, "\n\n".join(how_to_classify(f) for f in missing)


def test_matrix_has_no_stale_entries(capsys):
    # Informational: an entry for a route that no longer exists is printed, not failed, because
    # routes are being renamed while several developers work on them.
    keys = {f.key for f in ALL_ROUTES}
    stale = sorted(set(ROUTES) - keys)
    if stale:
        print(f"URL matrix: classified but not found (renamed?): {stale}")


@pytest.fixture(scope="module")
def matrix_world(django_db_setup, django_db_blocker):
    """One world for the whole module, and each role's session: every cell runs in a savepoint that is rolled back."""
    with django_db_blocker.unblock(), transaction.atomic():
        with time_machine.travel(FROZEN_NOW, tick=False), override_settings(PASSWORD_HASHERS=FAST_HASHERS):
            world = make_world()
            world.superuser = UserFactory(username="root", is_staff=True, is_superuser=True)
            world.clinic_admin_superuser = ClinicAdminFactory(username="admin.root", is_staff=True, is_superuser=True)
            sessions = _log_in_every_role(world)
        yield world, sessions
        transaction.set_rollback(True)


@pytest.mark.django_db
@pytest.mark.parametrize("found", ALL_ROUTES, ids=[f"{f.key}|{f.pattern}" for f in ALL_ROUTES])
def test_route_matrix(found: Found, matrix_world, frozen, record_property):
    world, sessions = matrix_world
    probe = os.environ.get("URL_MATRIX_PROBE") == "1"
    route = classify(found, world)
    if route is None and probe:
        route = Route({}, refused=_cells(frozenset()))  # print what it answers, then fail below
    if route is None:
        pytest.fail(how_to_classify(found))
    url = _url(found, route, world)
    failures, cells = [], 0
    clients = RoleClients(world, sessions)
    for method in METHODS:
        expected_by_role = route.methods.get(method, route.refused)
        for role in ROLES:
            outcome, status, where = _request(clients, role, method, url)
            cells += 1
            if probe:
                print(f"{found.key:45} {method:6} {role:13} {status} {outcome} {where}")
            if outcome not in expected_by_role[role]:
                failures.append(
                    f"{method} {url} as {role}: got {status} ({outcome}{' → ' + where if where else ''}), "
                    f"expected {sorted(expected_by_role[role])}"
                )
    record_property("cells", cells)
    assert not failures, f"{found.key} ({found.pattern}):\n  " + "\n  ".join(failures)


def test_print_matrix_size(capsys):
    cells = len(ALL_ROUTES) * len(ROLES) * len(METHODS)
    object_routes = sum(1 for f in ALL_ROUTES if f.params)
    with capsys.disabled():
        print(
            f"\nURL access matrix: {len(ALL_ROUTES)} routes ({object_routes} taking an object) × "
            f"{len(ROLES)} roles × {len(METHODS)} methods = {cells} cells"
        )


# ---------------------------------------------------------------------------
# Audit: every page or export that shows patient B's record writes an access-log row for B
# ---------------------------------------------------------------------------
# route → the roles whose successful GET must be logged. Add your record pages here.
AUDITED_GETS: dict[str, tuple[str, ...]] = {
    "portal:patient_home": ("owner",),
    "portal:appointment_ics": ("owner",),
    "portal:change_request": ("owner",),
    "portal:reminder_preferences": ("owner",),
    "portal:passport": ("owner",),
    "portal:calendar_feed": ("anonymous",),  # read with B's token: logged as B's feed owner
    "portal:invite": ("nurse",),
    "staff:patient_detail": STAFF_READERS,
    "staff:wallet_card": STAFF_READERS,
    "staff:trial_detail": STAFF_READERS,
    "staff:refill_visit_done": STAFF_READERS,
    "staff:refill_visit_print": STAFF_READERS,
    "staff:field_safety_notice": STAFF_READERS,
    "staff:field_safety_csv": STAFF_READERS,
    "staff:field_safety_action": ("clinician",),
    "api:patient-detail": ("nurse", "clinician", "owner"),
    "api:implant-detail": ("nurse", "clinician", "owner"),
    "api:refill-visit-detail": ("nurse", "clinician", "owner"),
    "api:appointment-detail": ("nurse", "clinician", "owner"),
    "api:dose-prescription-detail": ("nurse", "clinician", "owner"),
    "api:trial-detail": STAFF_READERS,
    # The clinic admin opening a patient in the Django admin (audit.mixins.AuditedModelAdminMixin).
    "admin:patients_patient_change": ("clinic_admin",),
}
AUDIT_CASES = [
    (f, role) for f in ALL_ROUTES if f.key in AUDITED_GETS and "format" not in f.params for role in AUDITED_GETS[f.key]
]


@pytest.mark.django_db
@pytest.mark.parametrize("found,role", AUDIT_CASES, ids=[f"{f.key}|{role}" for f, role in AUDIT_CASES])
def test_record_pages_write_the_access_log(found: Found, role: str, matrix_world, frozen):
    from audit.models import AccessLog

    world, sessions = matrix_world
    url = _url(found, classify(found, world), world)
    client = RoleClients(world, sessions).get(role)
    with transaction.atomic():
        before = AccessLog.objects.filter(patient=world.b.patient).count()
        response = client.get(url)
        rows = list(AccessLog.objects.filter(patient=world.b.patient).order_by("id")[before:])
        transaction.set_rollback(True)
    assert response.status_code == 200, f"GET {url} as {role}: {response.status_code}"
    assert rows, f"GET {url} as {role} showed patient B's record but wrote no access-log row: call audit_record_access"
    expected_user = _user_for(role, world) or world.b.user  # the feed is logged as its owner's
    assert {r.user_id for r in rows} == {expected_user.pk}
    assert all(r.remote_addr == f"127.0.0.{10 + ROLES.index(role)}" for r in rows)
