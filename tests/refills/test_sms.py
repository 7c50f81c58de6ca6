"""The SMS backend interface: console, locmem, and Twilio through its SDK, with the SDK's HTTP client stubbed."""

import io
import json

import pytest
import requests
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response

from refills import messaging
from refills.messaging import SmsMessage, SmsPermanentError, SmsTransientError, get_sms_backend, send_sms
from refills.sms_backends import ConsoleBackend, LocmemBackend, TwilioBackend

PROVIDER = {
    "SMS_BACKEND": "refills.sms_backends.TwilioBackend",
    "SMS_PROVIDER_URL": "https://sms.example.test",
    "SMS_PROVIDER_ACCOUNT_SID": "AC123",
    "SMS_PROVIDER_AUTH_TOKEN": "secret-token",
    "SMS_PROVIDER_FROM": "+447700900000",
}


def test_the_backend_comes_from_the_setting(settings):
    assert isinstance(get_sms_backend(), LocmemBackend)  # the test default (conftest)
    settings.SMS_BACKEND = "refills.sms_backends.ConsoleBackend"
    assert isinstance(get_sms_backend(), ConsoleBackend)


def test_locmem_keeps_messages_in_the_outbox(sms_outbox):
    assert send_sms(to="+447700900123", body="Hello") == 1
    assert [(m.to, m.body, m.from_number) for m in sms_outbox] == [("+447700900123", "Hello", "ITBClinic")]
    assert messaging.outbox is sms_outbox


def test_console_prints_the_message():
    stream = io.StringIO()
    sent = ConsoleBackend(stream=stream).send_messages([SmsMessage(to="+447700900123", body="Hi", from_number="C")])
    assert sent == 1
    assert stream.getvalue() == "SMS from C to +447700900123\nHi\n" + "-" * 60 + "\n"


class StubHttpClient(HttpClient):
    """The SDK's HTTP client, answering from a script instead of the network; keeps what it was asked."""

    def __init__(self, *answers: Response | Exception) -> None:
        super().__init__(logger=None, is_async=False)
        self.answers = list(answers)
        self.requests: list[dict] = []

    def request(
        self, method, uri, params=None, data=None, headers=None, auth=None, timeout=None, allow_redirects=False
    ):
        self.requests.append({"method": method, "url": uri, "data": data, "headers": headers, "auth": auth})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _provider(settings) -> None:
    for name, value in PROVIDER.items():
        setattr(settings, name, value)


def test_provider_posts_the_message_with_basic_auth(settings):
    _provider(settings)
    stub = StubHttpClient(Response(201, json.dumps({"sid": "SM42", "status": "queued"})))
    body = "Your appointment is on Mon 31 Mar at 10:00."
    assert send_sms(to="+447700900123", body=body, connection=TwilioBackend(http_client=stub)) == 1
    (request,) = stub.requests
    assert request["url"] == "https://sms.example.test/2010-04-01/Accounts/AC123/Messages.json"
    assert request["method"] == "POST"
    assert request["auth"] == ("AC123", "secret-token")
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert request["data"] == {"To": "+447700900123", "From": "+447700900000", "Body": body}


def test_provider_keeps_the_message_id(settings):
    _provider(settings)
    stub = StubHttpClient(Response(201, json.dumps({"sid": "SM42", "status": "queued"})))
    message = SmsMessage(to="+447700900123", body="Hi", from_number="+447700900000")
    assert TwilioBackend(http_client=stub).send_messages([message]) == 1
    assert message.provider_ids == ["SM42"]


def test_provider_is_chosen_by_setting_with_the_configured_timeout(settings):
    _provider(settings)
    settings.SMS_PROVIDER_TIMEOUT = 7.5
    backend = get_sms_backend()
    assert isinstance(backend, TwilioBackend)
    assert isinstance(backend.client.http_client, TwilioHttpClient)
    assert backend.client.http_client.timeout == 7.5


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Response(503, "busy"), SmsTransientError),
        (Response(500, json.dumps({"code": 20500, "message": "Internal Server Error"})), SmsTransientError),
        (Response(429, json.dumps({"code": 20429, "message": "Too Many Requests"})), SmsTransientError),
        (Response(400, json.dumps({"code": 21211, "message": "Invalid 'To' Phone Number"})), SmsPermanentError),
        (Response(401, json.dumps({"code": 20003, "message": "Authenticate"})), SmsPermanentError),
        (requests.ConnectionError("connection refused"), SmsTransientError),
        (requests.Timeout("timed out"), SmsTransientError),
        (TimeoutError("timed out"), SmsTransientError),
    ],
)
def test_provider_errors_are_transient_or_permanent(settings, answer, expected):
    _provider(settings)
    backend = TwilioBackend(http_client=StubHttpClient(answer))
    with pytest.raises(expected):
        send_sms(to="+447700900123", body="Hi", connection=backend)


def test_a_refusal_names_the_providers_error_code(settings):
    _provider(settings)
    answer = Response(400, json.dumps({"code": 21211, "message": "Invalid 'To' Phone Number"}))
    backend = TwilioBackend(http_client=StubHttpClient(answer))
    with pytest.raises(SmsPermanentError, match="21211"):
        send_sms(to="+447700900123", body="Hi", connection=backend)


def test_transient_sms_errors_are_retried_like_connection_errors():
    from refills.reminders.delivery import PERMANENT_SEND_ERRORS, TRANSIENT_SEND_ERRORS

    assert issubclass(SmsTransientError, TRANSIENT_SEND_ERRORS)
    assert issubclass(SmsPermanentError, PERMANENT_SEND_ERRORS)
    assert not issubclass(SmsPermanentError, TRANSIENT_SEND_ERRORS)


def test_fail_silently_counts_only_what_went(settings):
    _provider(settings)
    backend = TwilioBackend(http_client=StubHttpClient(requests.ConnectionError("down")), fail_silently=True)
    assert send_sms(to="+447700900123", body="Hi", connection=backend) == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"base_url": "http://sms.example.test"}, "https://"),
        ({"base_url": "file:///etc/passwd"}, "https://"),
        ({"account_sid": "", "auth_token": ""}, "must be set"),
    ],
)
def test_provider_refuses_plain_http_and_missing_credentials(settings, overrides, message):
    settings.SMS_PROVIDER_ACCOUNT_SID = ""
    settings.SMS_PROVIDER_AUTH_TOKEN = ""
    kwargs = {"base_url": "https://sms.example.test", "account_sid": "AC1", "auth_token": "t", **overrides}
    with pytest.raises(ValueError, match=message):
        TwilioBackend(**kwargs)
