"""The password reset sends its email from the worker, after the response: no timing oracle.

The request validates the form and enqueues; the worker looks the address up and emails the
account, if there is one. So the answer takes the same (short) time whether or not an account
has the address, however slow the mail server is (issue 15, item 6).
"""

import re
import time

import pytest
from django.core import mail
from django.urls import reverse

from itbclinic.accounts.services import password_reset_request_send, password_reset_users_for
from itbclinic.accounts.tasks import send_password_reset_task, send_password_reset_to_user_task
from itbclinic.celery import app
from tests import factories
from tests.celery_worker import wait_until
from tests.email_backends import SLOW_SECONDS

# Well below the mail server's delay: a request that sent an email could not answer this fast.
RESPONSE_BOUND_SECONDS = SLOW_SECONDS / 2


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_reset_answers_as_fast_with_or_without_an_account_and_the_worker_sends_it(
    client, settings, celery_worker_factory, tmp_path
):
    # given a slow mail server, here and in the worker, and the tasks NOT run in this process
    settings.EMAIL_BACKEND = "tests.email_backends.SlowLocmemBackend"
    outbox_dir = tmp_path / "sent"
    worker = celery_worker_factory(broker_url="filesystem://")
    worker.env.update(EMAIL_URL=f"filemail:///{outbox_dir}", EMAIL_BACKEND="tests.email_backends.SlowFileBackend")
    user = factories.PatientUserFactory(email="has.account@example.org")
    url = reverse("password_reset")
    client.get(url)  # templates and URL resolver warmed up: the first request of a process pays for that

    # when someone asks for a reset of an address with an account, and of one without
    timings = {}
    for email in ("has.account@example.org", "no.account@example.org"):
        started = time.perf_counter()
        response = client.post(url, {"email": email})
        timings[email] = time.perf_counter() - started
        assert response.status_code == 302 and response["Location"] == reverse("password_reset_done")

    # then both answers come back well before the mail server could have sent anything
    assert all(seconds < RESPONSE_BOUND_SECONDS for seconds in timings.values()), timings
    assert mail.outbox == []  # nothing was sent inside a request
    # and the worker sends the one email, to the account's address, without its username
    worker.start(extra_args=("-Q", settings.CELERY_SENDS_QUEUE))
    assert wait_until(lambda: outbox_dir.exists() and any(outbox_dir.iterdir()), timeout=90), worker.log
    worker.wait_for_log("accounts.send_password_reset_task", timeout=60)
    assert wait_until(lambda: worker.log.count("send_password_reset_task") >= 4, timeout=60), worker.log
    sent = "".join(path.read_text() for path in outbox_dir.iterdir())
    assert sent.count("\nTo: ") == 1 and "To: has.account@example.org" in sent
    assert re.search(r"/accounts/reset/\S+/", sent) and user.username not in sent


@pytest.mark.django_db
def test_the_request_does_not_look_the_address_up(
    client, django_assert_num_queries, django_capture_on_commit_callbacks
):
    factories.PatientUserFactory(email="has.account@example.org")
    url = reverse("password_reset")
    for email in ("has.account@example.org", "no.account@example.org"):
        with django_capture_on_commit_callbacks() as callbacks, django_assert_num_queries(0):
            response = client.post(url, {"email": email})
        assert response.status_code == 302 and len(callbacks) == 1  # one enqueue, whatever the address


@pytest.mark.django_db
def test_the_task_emails_only_active_accounts_with_a_password(settings):
    active = factories.PatientUserFactory(email="Same@example.org")
    factories.PatientUserFactory(email="same@example.org", is_active=False)
    no_password = factories.PatientUserFactory(email="same@example.org")
    no_password.set_unusable_password()
    no_password.save()

    assert password_reset_users_for(email="same@EXAMPLE.org") == [active]
    assert send_password_reset_task("same@example.org") == 1
    (message,) = mail.outbox
    assert message.to == ["Same@example.org"] and active.username not in message.body
    assert send_password_reset_task("nobody@example.org") == 0
    assert password_reset_request_send(email="") == 0
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_the_reset_of_one_account_goes_to_its_own_address_only():
    user = factories.PatientUserFactory(email="own@example.org")
    assert send_password_reset_to_user_task(user.pk) is True
    (message,) = mail.outbox
    assert message.to == ["own@example.org"]
    user.is_active = False
    user.save()
    assert send_password_reset_to_user_task(user.pk) is False
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_a_deactivated_accounts_reset_link_opens_nothing(client, celery_eager, django_capture_on_commit_callbacks):
    user = factories.PatientUserFactory(email="leaving@example.org")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("password_reset"), {"email": user.email})
    path = re.search(r"https?://[^/\s]+(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    user.is_active = False
    user.save()
    response = client.get(path)
    assert response.status_code == 200 and response.context["validlink"] is False


@pytest.mark.parametrize(
    "task_name",
    [
        "accounts.send_password_reset_task",
        "accounts.send_password_reset_to_user_task",
        "portal.send_portal_invitation_task",
        "portal.send_email_change_notice_task",
    ],
)
def test_the_emails_after_the_response_go_to_the_sends_queue(settings, task_name):
    route = app.amqp.router.route({}, task_name)
    assert route["queue"].name == settings.CELERY_SENDS_QUEUE
    assert task_name in app.tasks
