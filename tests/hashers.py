"""A cheap Argon2 for the test suite: the same algorithm and hash format, a fraction of the cost.

Production's Argon2 takes ~100 MiB and a noticeable fraction of a second per hash on purpose;
the suite creates and logs in hundreds of users. A hash made here names its own parameters,
so Django's real Argon2 hasher verifies it too.
"""

from django.contrib.auth.hashers import Argon2PasswordHasher


class FastArgon2PasswordHasher(Argon2PasswordHasher):
    time_cost = 1
    memory_cost = 1024  # KiB
    parallelism = 1
