"""The access log is append-only in the database too, and clinic admins may read it.

UPDATE is refused on every backend; DELETE is refused on PostgreSQL (row-level trigger: a
TRUNCATE, as the test runner's flush does, is not a row delete). On SQLite a DELETE trigger
would break the test runner's flush, so there the model and queryset guards stand alone.
"""

from django.db import migrations

from itbclinic.accounts.roles import Role, grant_role_permissions

PG_FORWARD = """
CREATE OR REPLACE FUNCTION audit_accesslog_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_accesslog is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_accesslog_no_update BEFORE UPDATE OR DELETE ON audit_accesslog
    FOR EACH ROW EXECUTE FUNCTION audit_accesslog_append_only();
"""
PG_REVERSE = """
DROP TRIGGER IF EXISTS audit_accesslog_no_update ON audit_accesslog;
DROP FUNCTION IF EXISTS audit_accesslog_append_only();
"""
SQLITE_FORWARD = """
CREATE TRIGGER audit_accesslog_no_update BEFORE UPDATE ON audit_accesslog
BEGIN SELECT RAISE(ABORT, 'audit_accesslog is append-only (UPDATE refused)'); END;
"""
SQLITE_REVERSE = "DROP TRIGGER IF EXISTS audit_accesslog_no_update;"


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FORWARD, params=None)  # raw SQL: its % is not a placeholder
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_FORWARD)


def reverse(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_REVERSE)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_REVERSE)


def grant(apps, schema_editor):
    grant_role_permissions(apps, {Role.CLINIC_ADMIN: {"audit.accesslog": ["view"]}})


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial"), ("accounts", "0002_roles")]
    operations = [
        migrations.RunPython(forward, reverse),
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]
