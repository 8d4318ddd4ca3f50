# Cap lifecycle (pending at the CSMS / in force / refused / no result), delivery judged by
# measurement, and the per-EVSE responsiveness record.

import django.db.models.deletion
from django.db import migrations, models

import smatch.clock

STATUSES = [
    ("planned", "Planned"), ("sent", "Sent"), ("pending", "pending at the CSMS"), ("in_force", "in force"),
    ("refused", "Refused"), ("no_result", "no result in time"), ("failed", "Failed"), ("restored", "Restored"),
]


def accepted_to_pending(apps, schema_editor):
    """The old `accepted` was the synchronous answer: the cap can be forwarded, not yet in force."""
    Curtailment = apps.get_model("flexibility", "Curtailment")
    Curtailment.objects.filter(status="accepted").update(status="pending")


def pending_to_accepted(apps, schema_editor):
    Curtailment = apps.get_model("flexibility", "Curtailment")
    Curtailment.objects.filter(status__in=["pending", "in_force", "no_result"]).update(status="accepted")


class Migration(migrations.Migration):
    dependencies = [
        ("flexibility", "0001_initial"),
        ("ocpi_client", "0003_identity_provenance_locations"),
    ]

    operations = [
        migrations.AlterField(
            model_name="curtailment", name="status",
            field=models.CharField(choices=STATUSES, default="planned", max_length=10),
        ),
        migrations.AddField(
            model_name="curtailment", name="restored_from",
            field=models.CharField(blank=True, choices=STATUSES, default="", max_length=10),
        ),
        migrations.AddField(
            model_name="curtailment", name="result_due_at",
            field=models.DateTimeField(blank=True, help_text="sync answer + the CPO's timeout", null=True),
        ),
        migrations.AddField(
            model_name="curtailment", name="due_at",
            field=models.DateTimeField(blank=True, db_index=True, null=True),
        ),
        migrations.AddField(
            model_name="curtailment", name="delivery",
            field=models.CharField(blank=True, choices=[("", "not judged yet"), ("responded", "Responded"),
                                                        ("not_responded", "did not respond"), ("no_data", "no data")],
                                   default="", max_length=14),
        ),
        migrations.AddField(
            model_name="curtailment", name="resumption",
            field=models.CharField(blank=True, choices=[("", "not judged yet"), ("resumed", "Resumed"),
                                                        ("not_resumed", "did not resume (driver at risk)"),
                                                        ("no_data", "no data")],
                                   default="", max_length=12),
        ),
        migrations.RunPython(accepted_to_pending, pending_to_accepted),
        migrations.CreateModel(
            name="EvseResponsiveness",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("evse_uid", models.CharField(help_text="as the CPO spells it", max_length=36)),
                ("evse_key", models.CharField(editable=False, help_text="upper case: matched without case",
                                              max_length=36)),
                ("recent", models.JSONField(default=list, help_text="the last verdicts, newest last: true = responded")),
                ("judged", models.PositiveIntegerField(default=0)),
                ("failures", models.PositiveIntegerField(default=0)),
                ("not_resumed", models.PositiveIntegerField(default=0)),
                ("flagged", models.BooleanField(db_index=True, default=False)),
                ("updated_at", models.DateTimeField(default=smatch.clock.now)),
                ("party", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="evse_records",
                                            to="ocpi_client.ocpiparty")),
            ],
            options={
                "verbose_name": "EVSE responsiveness",
                "verbose_name_plural": "EVSE responsiveness",
                "constraints": [models.UniqueConstraint(fields=("party", "evse_key"), name="one_record_per_evse")],
            },
        ),
    ]
