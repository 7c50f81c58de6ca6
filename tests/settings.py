"""The settings the test suite runs with: production's own (DEBUG off), with a throwaway key.

Production mode refuses to start with the public demo key or none (itbclinic/settings.py), so the
suite brings a random key of its own, in the environment: the processes the tests start (Celery
workers, `manage.py` subprocesses) inherit it.
"""

import os
import secrets

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-" + secrets.token_urlsafe(40))

from itbclinic.settings import *  # noqa: F403
