"""Settings for the two-beat test: the production settings with one short entry (every 3 s).

Started as DJANGO_SETTINGS_MODULE of the beat subprocesses in tests/itbclinic/test_beats_and_queues.py.
"""

from itbclinic.settings import *  # noqa: F403

CELERY_BEAT_SCHEDULE = {"tick": {"task": "itbclinic.heartbeat_task", "schedule": 3.0}}
