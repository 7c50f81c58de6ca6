from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A person who logs in: staff (nurse, clinician, clinic admin) or a patient/carer.

    The role is the user's group (see roles.py); a patient's clinical record links here.
    """

    email = models.EmailField("email address", blank=True)
    phone = models.CharField(max_length=32, blank=True)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    def __str__(self) -> str:
        return self.get_full_name() or self.username
