"""Safe to click twice: a creating form carries a one-time token, and a used token creates nothing.

Every staff and portal form that records something renders `{% form_token %}` (a hidden field,
core/templatetags/idempotency.py) and its view is wrapped in `@idempotent_form`:

- a POST whose token was already used by this user is redirected to where the first submission
  led, with a message saying nothing was recorded twice (a double click, the back button and
  "submit again", a browser re-sending the request);
- otherwise the view runs inside one transaction; when it succeeds (it answers with a redirect,
  the post/redirect/get convention of every form here) the token is stored in that same
  transaction, so the record and the used token are committed together. Two POSTs racing with
  one token: the unique index lets one insert win; the other's work is rolled back and it is sent
  to the winner's result;
- a refused submission (a form error, any answer but a redirect, or a redirect with an error
  message) leaves the token unused, so the corrected form can be sent again.

A POST without a token (an old page, a script) is served as before. The button's
`data-disable-on-submit` (itbclinic.js) is only a courtesy: the server is what holds.

No maintained library fits: django-idempotency-key and the DRF ones read an `Idempotency-Key`
header, which an HTML form cannot send, and replay cached responses rather than the result page.
"""

import uuid
from collections.abc import Callable
from functools import wraps
from typing import cast

from django.contrib import messages
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme

from .models import FormSubmission

FIELD_NAME = "form_token"
ALREADY_SENT = "This form had already been sent: it was recorded once, and here is the result."


class _Lost(Exception):
    """Raised to roll back the work of a submission that lost the race for its token."""


def form_token_of(request: HttpRequest) -> uuid.UUID | None:
    """The token POSTed with the form, or None (missing or not a token)."""
    raw = request.POST.get(FIELD_NAME, "") if request.method == "POST" else ""
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


def form_token_new_or_posted(request: HttpRequest | None) -> str:
    """The token a rendered form carries: the posted one again (a form error), else a new one."""
    if request is not None:
        posted = form_token_of(request)
        if posted is not None and not FormSubmission.objects.filter(token=posted).exists():
            return str(posted)
    return str(uuid.uuid4())


def _already_sent(request: HttpRequest, submission: FormSubmission) -> HttpResponse:
    messages.info(request, ALREADY_SENT)
    if url_has_allowed_host_and_scheme(submission.result_url, allowed_hosts={request.get_host()}):
        return redirect(submission.result_url)
    return redirect("/")


def idempotent_form(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap a view whose POST records something: a used token never records twice (module docstring)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        token = form_token_of(request)
        if token is None or not request.user.is_authenticated:
            return view(request, *args, **kwargs)
        earlier = _submission_of(token)
        if earlier is not None:
            return _already_sent(request, earlier) if earlier.user_id == request.user.pk else _refused()
        errors_before = _error_messages(request)
        try:
            with transaction.atomic():
                response = view(request, *args, **kwargs)
                # A button that redirects with an error message ("cannot be marked attended")
                # recorded nothing: its token stays unused, so it can be tried again.
                if isinstance(response, HttpResponseRedirect) and _error_messages(request) == errors_before:
                    _claim(request=request, token=token, result_url=response["Location"])
        except _Lost:
            winner = _submission_of(token)
            return _already_sent(request, winner) if winner is not None else _refused()
        return response

    # Read through the decorators applied outside this one (functools.wraps copies __dict__): the
    # test that every such route has its double-submit test (tests/staff/test_idempotency.py).
    wrapped.idempotent_form = True  # type: ignore[attr-defined]
    return wrapped


def _error_messages(request: HttpRequest) -> int:
    """Error messages queued in this request (read without consuming them)."""
    queued = getattr(getattr(request, "_messages", None), "_queued_messages", [])
    return sum(1 for message in queued if message.level >= messages.ERROR)


def _submission_of(token: uuid.UUID) -> FormSubmission | None:
    return FormSubmission.objects.filter(token=token).first()


def _claim(*, request: HttpRequest, token: uuid.UUID, result_url: str) -> None:
    match = getattr(request, "resolver_match", None)
    try:
        with transaction.atomic():
            FormSubmission.objects.create(
                token=token,
                user_id=cast(int, request.user.pk),  # the wrapper served anonymous users as before
                view_name=(match.view_name if match else "")[:100],
                result_url=result_url[:500],
            )
    except IntegrityError as exc:
        raise _Lost from exc


def _refused() -> HttpResponse:
    return HttpResponse("This form was already used. Open the page again.", status=409, content_type="text/plain")
