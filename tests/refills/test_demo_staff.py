"""The demo clinic needs staff to record the care: without them it refuses and writes nothing."""

import datetime as dt

import pytest

from demo.clinic import seed_clinic
from patients.models import Patient


@pytest.mark.django_db
def test_seed_clinic_refuses_without_a_nurse_and_a_clinician():
    with pytest.raises(ValueError, match="nurse and a clinician"):
        seed_clinic(today=dt.date(2025, 11, 26), users={})

    assert not Patient.objects.exists()
