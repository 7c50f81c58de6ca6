"""Passwords: Argon2 hashes, 12+ characters, common and all-digit passwords rejected."""

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from itbclinic.accounts.models import User

pytestmark = pytest.mark.django_db


def test_passwords_are_hashed_with_argon2id(nurse, password):
    assert nurse.password.startswith("argon2$argon2id$")
    assert nurse.check_password(password)


def test_a_legacy_pbkdf2_hash_is_upgraded_to_argon2_at_login(client, nurse, password):
    nurse.password = make_password(password, hasher="pbkdf2_sha256")
    nurse.save(update_fields=["password"])

    response = client.post("/accounts/login/", {"username": nurse.username, "password": password})

    assert response.status_code == 302
    nurse.refresh_from_db()
    assert nurse.password.startswith("argon2$argon2id$")


@pytest.mark.parametrize(
    ("candidate", "code"),
    [
        ("Xq7#vLp2!mZ", "password_too_short"),  # 11 characters
        ("password1234", "password_too_common"),
        ("qwertyqwerty", "password_too_common"),
        ("402918375610", "password_entirely_numeric"),
    ],
)
def test_weak_passwords_are_rejected(candidate, code):
    with pytest.raises(ValidationError) as excinfo:
        validate_password(candidate, user=User(username="nurse"))

    assert code in [error.code for error in excinfo.value.error_list]


def test_a_password_like_the_username_is_rejected():
    user = User(username="clinician.jones", email="clinician.jones@example.org")

    with pytest.raises(ValidationError) as excinfo:
        validate_password("clinician.jones1", user=user)

    assert "password_too_similar" in [error.code for error in excinfo.value.error_list]


@pytest.mark.parametrize("candidate", ["Xq7#vLp2!mZ9", "itb-demo-pass-2026", "correct-horse-battery-staple-42"])
def test_twelve_characters_that_are_not_common_pass(candidate):
    assert validate_password(candidate, user=User(username="nurse")) is None


def test_production_hashes_with_argon2_at_its_full_cost():
    # The suite swaps in a cheaper Argon2 (tests/conftest.py); the settings module itself must not.
    from itbclinic import settings as production_settings

    assert production_settings.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
