"""The SMS backend interface: console, locmem, and the Twilio-shaped provider with its network call mocked."""

import base64
import io
import json
import urllib.error
import urllib.parse
from unittest import mock

import pytest

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


class FakeResponse:
    def __init__(self, payload: dict) -> None:
        self.payload = payload

    def read(self) -> bytes:
        return json.dumps(self.payload).encode()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def test_provider_posts_the_message_with_basic_auth(settings):
    for name, value in PROVIDER.items():
        setattr(settings, name, value)
    with mock.patch("urllib.request.urlopen", return_value=FakeResponse({"sid": "SM42"})) as urlopen:
        assert send_sms(to="+447700900123", body="Your appointment is on Mon 31 Mar at 10:00.") == 1
    (request,), kwargs = urlopen.call_args
    assert request.full_url == "https://sms.example.test/2010-04-01/Accounts/AC123/Messages.json"
    assert request.get_method() == "POST"
    assert request.get_header("Authorization") == "Basic " + base64.b64encode(b"AC123:secret-token").decode()
    assert urllib.parse.parse_qs(request.data.decode()) == {
        "To": ["+447700900123"],
        "From": ["+447700900000"],
        "Body": ["Your appointment is on Mon 31 Mar at 10:00."],
    }
    assert kwargs == {"timeout": 10.0}


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (urllib.error.HTTPError("u", 503, "Unavailable", {}, io.BytesIO(b"busy")), SmsTransientError),
        (urllib.error.HTTPError("u", 429, "Too Many", {}, io.BytesIO(b"slow down")), SmsTransientError),
        (urllib.error.HTTPError("u", 400, "Bad", {}, io.BytesIO(b'{"code": 21211}')), SmsPermanentError),
        (urllib.error.URLError("connection refused"), SmsTransientError),
        (TimeoutError("timed out"), SmsTransientError),
    ],
)
def test_provider_errors_are_transient_or_permanent(settings, error, expected):
    for name, value in PROVIDER.items():
        setattr(settings, name, value)
    with mock.patch("urllib.request.urlopen", side_effect=error), pytest.raises(expected):
        send_sms(to="+447700900123", body="Hi")


def test_transient_sms_errors_are_retried_like_connection_errors():
    from refills.reminders import PERMANENT_SEND_ERRORS, TRANSIENT_SEND_ERRORS

    assert issubclass(SmsTransientError, TRANSIENT_SEND_ERRORS)
    assert issubclass(SmsPermanentError, PERMANENT_SEND_ERRORS)
    assert not issubclass(SmsPermanentError, TRANSIENT_SEND_ERRORS)


def test_fail_silently_counts_only_what_went(settings):
    for name, value in PROVIDER.items():
        setattr(settings, name, value)
    error = urllib.error.URLError("down")
    with mock.patch("urllib.request.urlopen", side_effect=error):
        assert send_sms(to="+447700900123", body="Hi", fail_silently=True) == 0


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
