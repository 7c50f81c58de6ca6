"""How dates, phones and refused rows read to a person (issue 11, item 8)."""

import datetime as dt
import zoneinfo

import phonenumbers
import pytest
from django.apps import apps
from django.template import Context, Template

from core.formatting import format_count, format_day, format_phone, phone_href
from patients.models import Patient


@pytest.mark.parametrize(
    ("value", "fmt", "expected"),
    [
        (dt.date(2026, 3, 5), "j M Y", "5 Mar 2026"),
        (dt.date(2026, 3, 5), "D j M", "Thu 5 Mar"),
        (dt.date(2026, 3, 5), "l j F Y", "Thursday 5 March 2026"),
        (dt.date(2026, 12, 25), "j M Y", "25 Dec 2026"),
        (dt.datetime(2026, 3, 1, 9, 5, tzinfo=zoneinfo.ZoneInfo("Europe/London")), "j M Y H:i", "1 Mar 2026 09:05"),
    ],
)
def test_days_are_never_zero_padded(value, fmt, expected):
    assert format_day(value, fmt) == expected


@pytest.mark.parametrize(
    ("number", "expected", "href"),
    [
        ("+44 20 7946 0000", "020 7946 0000", "tel:+442079460000"),
        ("07400 123456", "07400 123456", "tel:+447400123456"),
        ("+33 6 12 34 56 78", "+33 6 12 34 56 78", "tel:+33612345678"),
        ("ask reception", "ask reception", ""),
        ("", "", ""),
    ],
)
def test_phone_numbers_read_in_the_clinics_national_format(number, expected, href):
    assert format_phone(number, region="GB") == expected
    assert phone_href(number, region="GB") == href


def test_a_patients_phone_is_accepted_as_dialled_at_home_and_shown_so(settings):
    assert settings.PHONENUMBER_DEFAULT_REGION == settings.CLINIC_REGION == "GB"
    field = Patient._meta.get_field("phone").formfield()

    stored = field.clean("07400 123456")

    assert isinstance(stored, phonenumbers.PhoneNumber)
    assert stored.as_e164 == "+447400123456"  # what the SMS provider is given
    rendered = Template("{% load clinic_format %}{{ p|phone }}").render(Context({"p": stored}))
    assert rendered == "07400 123456"


def test_the_page_language_is_the_clinics(settings, client, db):
    assert settings.LANGUAGE_CODE == "en-gb"
    html = client.get("/accounts/login/").content.decode()
    assert '<html lang="en-gb">' in html
    assert "<title>Log in · ITB Clinic</title>" in html


def test_every_database_constraint_has_a_message_in_plain_words():
    for model in apps.get_models():
        for constraint in model._meta.constraints:
            message = constraint.get_violation_error_message()
            assert constraint.name not in message, (model.__name__, constraint.name)
            assert "_" not in message and "onstraint" not in message, (constraint.name, message)
            assert message[0].isupper() and message.endswith("."), (constraint.name, message)


@pytest.mark.parametrize(
    ("n", "noun", "expected"),
    [(1, "day", "1 day"), (2, "day", "2 days"), (0, "refill", "0 refills"), (1, "refill", "1 refill")],
)
def test_a_count_of_one_is_singular(n, noun, expected):
    assert format_count(n, noun) == expected
