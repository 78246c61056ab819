# The case workflow (B1): a file once per case, and a document's size and digest checked by the database.
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("adjudication", "0003_clock_rules_seed")]
    operations = [
        migrations.AddConstraint(
            model_name="casedocument",
            constraint=models.UniqueConstraint(fields=("case", "sha256"), name="case_document_once_per_case"),
        ),
        migrations.AddConstraint(
            model_name="casedocument",
            constraint=models.CheckConstraint(condition=models.Q(("size__gte", 1), ("sha256__regex", "^[0-9a-f]{64}$")),
                                              name="case_document_size_and_digest"),
        ),
    ]
