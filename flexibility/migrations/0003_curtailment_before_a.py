from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("flexibility", "0002_cap_lifecycle_delivery_responsiveness")]

    operations = [
        migrations.AddField(model_name="curtailment", name="before_a", field=models.FloatField(blank=True, null=True)),
    ]
