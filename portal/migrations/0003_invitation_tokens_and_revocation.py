"""Invitations get their own token (stored as a hash) and can be revoked; carers' links keep the reason
they were revoked; a portal account's email change is recorded.

Invitations made before this migration carried a token derived from the account: those links stop
working here, so the open ones are marked revoked (a nurse sends a new invitation).
"""

import hashlib
import secrets

import django.db.models.deletion
import simple_history.models
from django.conf import settings
from django.db import migrations, models


def revoke_old_links(apps, schema_editor):
    from django.utils import timezone

    PortalInvitation = apps.get_model("portal", "PortalInvitation")
    now = timezone.now()
    for invitation in PortalInvitation.objects.all().iterator():
        invitation.token_hash = hashlib.sha256(secrets.token_urlsafe(32).encode()).hexdigest()
        if invitation.accepted_at is None:
            invitation.revoked_at = now
            invitation.revoke_reason = "Links of the earlier kind stopped working: send a new invitation."
        invitation.save(update_fields=["token_hash", "revoked_at", "revoke_reason"])


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0002_role_permissions"),
        ("portal", "0002_roles"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="HistoricalPortalInvitation",
            fields=[
                ("id", models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name="ID")),
                ("email", models.EmailField(max_length=254)),
                ("carer", models.BooleanField(default=False)),
                ("invited_at", models.DateTimeField()),
                ("expires_at", models.DateTimeField()),
                ("accepted_at", models.DateTimeField(blank=True, null=True)),
                ("token_hash", models.CharField(db_index=True, max_length=64)),
                ("revoked_at", models.DateTimeField(blank=True, null=True)),
                ("revoke_reason", models.CharField(blank=True, max_length=200)),
                ("history_id", models.AutoField(primary_key=True, serialize=False)),
                ("history_date", models.DateTimeField(db_index=True)),
                ("history_change_reason", models.CharField(max_length=100, null=True)),
                (
                    "history_type",
                    models.CharField(choices=[("+", "Created"), ("~", "Changed"), ("-", "Deleted")], max_length=1),
                ),
            ],
            options={
                "verbose_name": "historical portal invitation",
                "verbose_name_plural": "historical portal invitations",
                "ordering": ("-history_date", "-history_id"),
                "get_latest_by": ("history_date", "history_id"),
            },
            bases=(simple_history.models.HistoricalChanges, models.Model),
        ),
        migrations.CreateModel(
            name="PortalAccountEmailChange",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("old_email", models.EmailField(blank=True, max_length=254)),
                ("new_email", models.EmailField(max_length=254)),
                ("reason", models.CharField(max_length=200)),
                ("changed_at", models.DateTimeField()),
            ],
            options={
                "ordering": ["-changed_at", "-id"],
            },
        ),
        migrations.AddField(
            model_name="carerlink",
            name="revoke_reason",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="historicalcarerlink",
            name="revoke_reason",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="portalinvitation",
            name="revoke_reason",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddField(
            model_name="portalinvitation",
            name="revoked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="portalinvitation",
            name="revoked_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="portalinvitation",
            name="token_hash",
            field=models.CharField(max_length=64, null=True, unique=True),
        ),
        migrations.RunPython(revoke_old_links, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="portalinvitation",
            name="token_hash",
            field=models.CharField(max_length=64, unique=True),
        ),
        migrations.AddConstraint(
            model_name="portalinvitation",
            constraint=models.UniqueConstraint(
                condition=models.Q(("accepted_at__isnull", True), ("revoked_at__isnull", True)),
                fields=("patient", "carer"),
                name="portalinvitation_one_open_per_patient_and_role",
            ),
        ),
        migrations.AddField(
            model_name="historicalportalinvitation",
            name="history_user",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL
            ),
        ),
        migrations.AddField(
            model_name="historicalportalinvitation",
            name="invited_by",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="historicalportalinvitation",
            name="patient",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="patients.patient",
            ),
        ),
        migrations.AddField(
            model_name="historicalportalinvitation",
            name="revoked_by",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="historicalportalinvitation",
            name="user",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="portalaccountemailchange",
            name="changed_by",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="+", to=settings.AUTH_USER_MODEL
            ),
        ),
        migrations.AddField(
            model_name="portalaccountemailchange",
            name="patient",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="+", to="patients.patient"
            ),
        ),
        migrations.AddField(
            model_name="portalaccountemailchange",
            name="user",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="email_changes", to=settings.AUTH_USER_MODEL
            ),
        ),
    ]
