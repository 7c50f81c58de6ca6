"""Walk every page of the demo clinic as one person, and read each page as that person would.

Used by tests/itbclinic/test_page_walk.py (Django's test client: every page and every form shown
with its errors, read for words a clinic would not use) and tests/e2e/test_page_walk_axe.py
(Chromium: axe-core and the 390 px layout over the same pages).

Where the pages come from
- the URL resolver: every pattern of the project (staff pages, portal, accounts, API docs, the
  admin), its arguments filled from the demo's rows (`patient_id` → a patient this person may
  see, `implant_id` → that patient's implant, …), so a page added by anyone is walked as soon as
  its URL exists and its arguments are named like the others';
- the links on each page (same site, GET), followed breadth first.
At most `PER_ROUTE` URLs of one pattern are read (the forty patients' pages look alike), so the
walk is bounded whatever the clinic's size.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from django.apps import apps
from django.db import models
from django.urls import NoReverseMatch, Resolver404, URLPattern, URLResolver, get_resolver, resolve, reverse

PER_ROUTE = 2
# The Django admin: one page of each kind (a list, one row's change page, its history…).
PER_ADMIN_ROUTE = 1
MAX_PAGES = 400

# Pages that are not for reading: downloads, machine formats, actions behind a GET.
SKIP_PATH = re.compile(r"(\.ics$|^/api/(?!docs/)|^/healthz|^/accounts/logout/|^/static/|/jsi18n/|^/admin/r/)")
# Admin pages that change or remove rows (their confirmation pages are read, never submitted).
SKIP_ADMIN = re.compile(r"/(delete|password)/$")

SOURCE_TAG = re.compile(r"\[S\d+\]")
ZERO_PADDED_DAY = re.compile(
    r"(?<![\d/.:-])0[1-9] (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\b",
)
# "1 refills", "1 days", "1 patients": a count of one followed by a plural noun.
ONE_PLURAL = re.compile(r"(?<![\d.,:/-])\b1 ([a-z]{3,}s)\b")
SINGULAR_IN_S = {
    "bolus", "status", "process", "access", "address", "class", "gauss", "plus", "minus", "previous",
    "this", "was", "has", "is", "its", "less", "across", "always", "various", "serious", "yes",
    "focus", "series", "analysis", "basis", "diagnosis", "sms", "ics", "mins",
}  # fmt: skip


def constraint_names() -> set[str]:
    """The names of every CheckConstraint/UniqueConstraint in the project's models."""
    names = set()
    for model in apps.get_models():
        for constraint in model._meta.constraints:
            names.add(constraint.name)
    return names


def raw_choice_values() -> set[str]:
    """Stored choice values that read differently from their label ("sms" for "Text message")."""
    values = set()
    for model in apps.get_models():
        if model.__module__.split(".")[0] not in {"patients", "pumps", "refills", "portal", "audit", "itbclinic"}:
            continue
        for f in model._meta.get_fields():
            choices = getattr(f, "flatchoices", None)
            if not choices:
                continue
            for value, label in choices:
                if isinstance(value, str) and re.fullmatch(r"[a-z][a-z0-9_]*", value) and value != str(label):
                    values.add(value)
    return values


# ---------------------------------------------------------------------------
# Reading one page
# ---------------------------------------------------------------------------
@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str]  # name -> input type ("text", "select", "hidden", …)
    hidden: dict[str, str]


@dataclass
class Page:
    url: str
    lang: str = ""
    title: str = ""
    ids: list[str] = field(default_factory=list)
    described_by: set[str] = field(default_factory=set)
    helptext_ids: list[str] = field(default_factory=list)
    help_without_id: int = 0
    links: list[str] = field(default_factory=list)
    forms: list[Form] = field(default_factory=list)
    text: str = ""
    cells: list[str] = field(default_factory=list)  # the text of each <td>, <dd>
    json_values: list[str] = field(default_factory=list)  # a field's value that reads as JSON


class _Reader(HTMLParser):
    _VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self, page: Page):
        super().__init__(convert_charrefs=True)
        self.page = page
        self.stack: list[str] = []
        self.in_title = False
        self.skip = 0  # inside <script>/<style>
        self.chunks: list[str] = []
        self.cell: list[str] | None = None
        self.cell_depth = 0
        self.form: Form | None = None
        self.textarea: list[str] | None = None
        self.code = 0  # inside <code>: a value to type as it is (an import file's "spinal")

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if "id" in a:
            self.page.ids.append(a["id"])
        if a.get("aria-describedby"):
            self.page.described_by.update(a["aria-describedby"].split())
        classes = a.get("class", "").split()
        if "help" in classes or "helptext" in classes:
            if a.get("id"):
                self.page.helptext_ids.append(a["id"])
            else:
                self.page.help_without_id += 1
        if tag == "html":
            self.page.lang = a.get("lang", "")
        elif tag == "title":
            self.in_title = True
        elif tag in ("script", "style", "template"):
            self.skip += 1
        elif tag == "textarea":
            self.textarea = []
        elif tag == "code":
            self.code += 1
        elif tag == "a" and a.get("href"):
            self.page.links.append(a["href"])
        elif tag == "form":
            self.form = Form(action=a.get("action", ""), method=a.get("method", "get").lower(), fields={}, hidden={})
            self.page.forms.append(self.form)
        elif tag in ("input", "select", "textarea") and self.form is not None and a.get("name"):
            kind = a.get("type", "text") if tag == "input" else tag
            if kind not in ("hidden", "checkbox", "radio") and _looks_like_json(a.get("value", "")):
                self.page.json_values.append(a["value"])
            if kind == "hidden":
                self.form.hidden[a["name"]] = a.get("value", "")
            elif kind not in ("submit", "button", "reset", "image"):
                self.form.fields[a["name"]] = kind
        if tag in ("td", "dd", "th") and self.cell is None:
            self.cell, self.cell_depth = [], 0
        if self.cell is not None and tag not in self._VOID:
            self.cell_depth += 1
        if tag in ("br", "p", "div", "li", "td", "th", "dd", "dt", "tr", "h1", "h2", "h3", "option", "label"):
            self.chunks.append("\n")

    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False
        elif tag in ("script", "style", "template"):
            self.skip = max(0, self.skip - 1)
        elif tag == "form":
            self.form = None
        elif tag == "code":
            self.code = max(0, self.code - 1)
        elif tag == "textarea" and self.textarea is not None:
            if _looks_like_json("".join(self.textarea)):
                self.page.json_values.append("".join(self.textarea).strip())
            self.textarea = None
        if self.cell is not None and tag not in self._VOID:
            self.cell_depth -= 1
            if self.cell_depth <= 0:
                self.page.cells.append(" ".join("".join(self.cell).split()))
                self.cell = None
        if tag in ("p", "div", "li", "td", "th", "dd", "dt", "tr", "h1", "h2", "h3", "option", "label"):
            self.chunks.append("\n")

    def handle_data(self, data):
        if self.in_title:
            self.page.title += data
            return
        if self.skip:
            return
        self.chunks.append(data)
        if self.textarea is not None:
            self.textarea.append(data)
        if self.cell is not None and not self.code:
            self.cell.append(data)

    def close(self):
        super().close()
        self.page.text = "".join(self.chunks)
        self.page.title = " ".join(self.page.title.split())


def _looks_like_json(value: str) -> bool:
    value = value.strip()
    return (value.startswith("[") and value.endswith("]")) or (value.startswith("{") and value.endswith("}"))


def read_page(url: str, html: str) -> Page:
    page = Page(url=url)
    reader = _Reader(page)
    reader.feed(html)
    reader.close()
    return page


def problems_of(page: Page, *, constraints: set[str], raw_values: set[str], portal_or_staff: bool) -> list[str]:
    """What a person should not meet on this page, in words (empty: the page reads right).

    `portal_or_staff`: one of our own pages. The Django admin's pages are read for source tags,
    constraint names, plurals, dates, ids and JSON too, but not for its own markup (a read-only
    field's help text has no id there) nor for values in its free-text columns.
    """
    found = []
    text = page.text
    if m := SOURCE_TAG.search(text):
        found.append(f"source tag {m.group()!r}")
    for name in sorted(constraints):
        if re.search(rf"\b{re.escape(name)}\b", text):
            found.append(f"constraint name {name!r}")
    if m := ZERO_PADDED_DAY.search(text):
        found.append(f"zero-padded day {m.group()!r}")
    for m in ONE_PLURAL.finditer(text):
        if m.group(1) not in SINGULAR_IN_S:
            found.append(f"one with a plural {m.group()!r}")
    # A raw value inside <code> is one to type as it is (an import file's columns): not counted.
    for cell in page.cells if portal_or_staff else ():
        if cell in raw_values:
            found.append(f"raw choice value {cell!r} in a cell")
    if not page.lang:
        found.append("no <html lang>")
    if not page.title:
        found.append("no <title>")
    elif portal_or_staff and not re.search(r"\S.* [·|] ", page.title):
        found.append(f"title {page.title!r} does not say where you are")
    duplicates = sorted({i for i in page.ids if page.ids.count(i) > 1})
    if duplicates:
        found.append(f"duplicate ids {duplicates}")
    for value in page.json_values:
        found.append(f"JSON or a Python list in a form field: {value[:60]!r}")
    if not portal_or_staff:
        return list(dict.fromkeys(found))
    for help_id in page.helptext_ids:
        if help_id not in page.described_by:
            found.append(f"help text #{help_id} not referenced by any aria-describedby")
    if page.help_without_id:
        found.append(f"{page.help_without_id} help text(s) without an id")
    for ref in sorted(page.described_by - set(page.ids)):
        found.append(f"aria-describedby points at missing #{ref}")
    return list(dict.fromkeys(found))  # each problem once per page


# ---------------------------------------------------------------------------
# Which pages exist
# ---------------------------------------------------------------------------
def url_patterns(resolver: URLResolver | None = None, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    """Every (namespaced name, pattern) of the project."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            ns = f"{prefix}{entry.namespace}:" if entry.namespace else prefix
            yield from url_patterns(entry, ns)
        elif entry.name:
            yield f"{prefix}{entry.name}", entry


def start_urls(arguments: dict[str, list[object]]) -> list[str]:
    """A URL of every named pattern whose arguments the demo can fill (`arguments[kwarg]`)."""
    urls = []
    for name, pattern in url_patterns():
        if name.startswith("admin:") or name.startswith("api:"):
            continue
        kwargs_names = list(pattern.pattern.regex.groupindex)
        if any(k not in arguments or not arguments[k] for k in kwargs_names):
            continue
        try:
            urls.append(reverse(name, kwargs={k: arguments[k][0] for k in kwargs_names}))
        except NoReverseMatch:
            continue
    return urls


def route_of(path: str) -> str | None:
    try:
        match = resolve(path)
    except Resolver404:
        return None
    return match.view_name + "|" + match.route


@dataclass
class Visit:
    url: str
    status: int
    route: str
    page: Page | None


def walk(
    get: Callable[[str], tuple[int, str, str]],
    starts: Iterable[str],
    *,
    per_route: int = PER_ROUTE,
    max_pages: int = MAX_PAGES,
    follow_admin: bool = True,
) -> list[Visit]:
    """Read pages breadth first from `starts`, following same-site links.

    `get(url)` returns (status, content type, body) of a GET, redirects followed.
    """
    queue = deque(starts)
    seen: set[str] = set()
    per: dict[str, int] = {}
    visits = []
    while queue and len(visits) < max_pages:
        url = queue.popleft()
        split = urlsplit(url)
        if split.netloc and split.netloc not in ("testserver",):
            continue
        path = split.path
        full = path + (f"?{split.query}" if split.query else "")
        if full in seen or SKIP_PATH.search(path) or SKIP_ADMIN.search(path):
            continue
        if path.startswith("/admin/") and not follow_admin:
            continue
        seen.add(full)
        route = route_of(path)
        if route is None:
            continue
        # Query strings (?week=, ?day=, filters) count against the route's budget, sorting does not.
        limit = min(per_route, PER_ADMIN_ROUTE) if path.startswith("/admin/") else per_route
        if per.get(route, 0) >= limit or (path.startswith("/admin/") and split.query):
            continue
        per[route] = per.get(route, 0) + 1
        status, content_type, body = get(full)
        page = read_page(full, body) if "html" in content_type else None
        visits.append(Visit(full, status, route, page))
        if page is not None and status == 200:
            for href in page.links:
                if href.startswith(("mailto:", "tel:", "#", "javascript:")):
                    continue
                queue.append(urljoin(full, href.split("#")[0]))
    return visits


def forms_to_submit_blank(visits: list[Visit]) -> list[tuple[str, Form]]:
    """Each distinct POST form with fields (by its action), with the page it was found on.

    Submitted with every field blank, it shows the page in its error state. Not the logout form,
    nor the admin's action forms (only its change and add pages).
    """
    done: set[str] = set()
    result = []
    for visit in visits:
        if visit.page is None or visit.status != 200:
            continue
        for form in visit.page.forms:
            action = form.action or visit.url.split("?")[0]
            if form.method != "post" or not form.fields or action in done or "logout" in action:
                continue
            if action.startswith("/admin/") and not action.endswith("/change/") and not action.endswith("/add/"):
                continue
            done.add(action)
            result.append((visit.url, form))
    return result


def demo_arguments(*, visible_patients: models.QuerySet) -> dict[str, list[object]]:
    """URL arguments from the demo's rows that this person may see (their first few of each)."""
    from patients.models import ScreeningTrial
    from pumps.models import Implant
    from refills.models import Alert, Appointment, RefillVisit

    patients = list(visible_patients.order_by("pk").values_list("pk", flat=True)[:40])
    return {
        "patient_id": patients,
        "implant_id": list(
            Implant.objects.filter(patient__in=patients, explanted_on__isnull=True).values_list("pk", flat=True)[:3]
        ),
        "appointment_id": list(
            Appointment.objects.filter(patient__in=patients, status="booked").values_list("pk", flat=True)[:3]
        ),
        "trial_id": list(ScreeningTrial.objects.filter(patient__in=patients).values_list("pk", flat=True)[:3]),
        "visit_id": list(RefillVisit.objects.filter(implant__patient__in=patients).values_list("pk", flat=True)[:3]),
        "alert_id": list(Alert.objects.filter(implant__patient__in=patients).values_list("pk", flat=True)[:3]),
    }
