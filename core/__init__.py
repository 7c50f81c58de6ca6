"""
The shared floor of ITB Clinic: what every app builds on and which knows none of them.

It imports only Django, DRF, django-filter, drf-spectacular, django-simple-history and the
standard library (the import contract in pyproject.toml checks it). Anything that needs to know
who is staff (accounts), the access log (audit) or a patient (patients) is a hook here that the
app above fills in. See docs/architecture.md.
"""
