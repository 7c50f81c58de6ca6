"""
The access log: who viewed or exported which patient's record, when, and from where.

It stands as its own app because it is a cross-cutting safeguard (HIPAA 164.312(b), ASVS V7),
not part of the care schedule: staff pages, the patient portal and the API all write to it
through one service, `audit.services.audit_record_access`, and none of them may change or erase
what it holds. The change history of clinical records lives beside it (django-simple-history).
"""
