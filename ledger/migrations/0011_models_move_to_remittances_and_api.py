"""The 835 remittance models moved to the remittances app and the API's models to the api app
(issue 10). State only: their tables keep their names (db_table) and their rows; nothing in the
database changes."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('ledger', '0010_dos_range'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(database_operations=[], state_operations=[
            migrations.RemoveField(
                model_name='idempotencyrecord',
                name='token',
            ),
            migrations.RemoveField(
                model_name='remittanceadjustment',
                name='payer_credit',
            ),
            migrations.RemoveField(
                model_name='remittanceadjustment',
                name='practice',
            ),
            migrations.RemoveField(
                model_name='remittanceadjustment',
                name='transaction',
            ),
            migrations.RemoveField(
                model_name='remittancebooking',
                name='adjustment',
            ),
            migrations.RemoveField(
                model_name='remittancebooking',
                name='entry',
            ),
            migrations.RemoveField(
                model_name='remittancebooking',
                name='file',
            ),
            migrations.RemoveField(
                model_name='remittancebooking',
                name='remittance_claim',
            ),
            migrations.RemoveField(
                model_name='remittanceclaim',
                name='claim',
            ),
            migrations.RemoveField(
                model_name='remittanceclaim',
                name='file',
            ),
            migrations.RemoveField(
                model_name='remittanceclaim',
                name='posted_by',
            ),
            migrations.RemoveField(
                model_name='remittanceclaim',
                name='practice',
            ),
            migrations.RemoveField(
                model_name='remittanceclaim',
                name='transaction',
            ),
            migrations.RemoveField(
                model_name='remittanceclaimaction',
                name='remittance_claim',
            ),
            migrations.RemoveField(
                model_name='remittanceclaimaction',
                name='actor',
            ),
            migrations.RemoveField(
                model_name='remittanceclaimaction',
                name='claim',
            ),
            migrations.RemoveField(
                model_name='remittanceclaimaction',
                name='practice',
            ),
            migrations.RemoveField(
                model_name='remittancefile',
                name='duplicate_of',
            ),
            migrations.RemoveField(
                model_name='remittancefile',
                name='practice',
            ),
            migrations.RemoveField(
                model_name='remittancefile',
                name='received_by',
            ),
            migrations.RemoveField(
                model_name='remittancetransaction',
                name='file',
            ),
            migrations.RemoveField(
                model_name='remittancetransaction',
                name='payer',
            ),
            migrations.RemoveField(
                model_name='remittancetransaction',
                name='practice',
            ),
            migrations.DeleteModel(
                name='ApiToken',
            ),
            migrations.DeleteModel(
                name='IdempotencyRecord',
            ),
            migrations.DeleteModel(
                name='RemittanceAdjustment',
            ),
            migrations.DeleteModel(
                name='RemittanceBooking',
            ),
            migrations.DeleteModel(
                name='RemittanceClaim',
            ),
            migrations.DeleteModel(
                name='RemittanceClaimAction',
            ),
            migrations.DeleteModel(
                name='RemittanceFile',
            ),
            migrations.DeleteModel(
                name='RemittanceTransaction',
            ),
        ]),
    ]
