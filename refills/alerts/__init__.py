"""Alerts to nurses and clinicians, raised and resolved by a level-triggered scan.

One module per job, imported by what it does (nothing is re-exported here):
    rules     which alerts hold today, kind by kind (unsaved rows)
    raising   the one path that raises (with the withdrawal-risk flags) and resolves them
    scan      the periodic scan: no-shows, raise, resolve, then the messages
    digest    the email digest, the on-call SMS and the escalation of urgent alerts
    services  acknowledged or resolved by hand; raised from outside the scan (the portal)
    reads     open alerts for the pages and the API
"""
