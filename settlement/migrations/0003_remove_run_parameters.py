# SettlementRun.parameters was never read or written (the run's parameters are its own columns).

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("settlement", "0002_lease_and_net_value"),
    ]

    operations = [
        migrations.RemoveField(model_name="settlementrun", name="parameters"),
    ]
