"""The API's models, moved here from the ledger app (issue 10). State only: the tables were
created by ledger's migrations (0006, 0008) and keep their names (db_table)."""

import api.models
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('ledger', '0011_models_move_to_remittances_and_api'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(database_operations=[], state_operations=[
            migrations.CreateModel(
                name='ApiToken',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('name', models.CharField(help_text="What the integration is, e.g. 'ehr-sync'.", max_length=100)),
                    ('role', models.CharField(choices=[('billing', 'Billing staff'), ('manager', 'Manager')], default='billing', max_length=16)),
                    ('prefix', models.CharField(help_text="The token's public part, used to find it.", max_length=16, unique=True)),
                    ('key_hash', models.CharField(help_text='SHA-256 (hex) of the whole token; the token is never stored.', max_length=64)),
                    ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('last_used_at', models.DateTimeField(blank=True, null=True)),
                    ('revoked_at', models.DateTimeField(blank=True, null=True)),
                    ('created_by', models.ForeignKey(blank=True, help_text='The person who made the token and for whom it acts; empty for an integration token.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('practice', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='api_tokens', to='ledger.practice')),
                    ('user', models.OneToOneField(blank=True, help_text="An integration token's own acting user (it never approves); empty for a person's token.", null=True, on_delete=django.db.models.deletion.PROTECT, related_name='api_token', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'db_table': 'ledger_apitoken',
                },
            ),
            migrations.CreateModel(
                name='IdempotencyRecord',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('key', models.CharField(max_length=255)),
                    ('fingerprint', models.CharField(help_text='SHA-256 of method, path, query and body.', max_length=64)),
                    ('method', models.CharField(max_length=8)),
                    ('path', models.CharField(max_length=500)),
                    ('state', models.CharField(choices=[('in_progress', 'In progress'), ('done', 'Done')], default='in_progress', max_length=16)),
                    ('response_status', models.PositiveSmallIntegerField(blank=True, null=True)),
                    ('response_body', models.TextField(blank=True, help_text='The JSON answer as sent, replayed byte for byte.')),
                    ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                    ('completed_at', models.DateTimeField(blank=True, null=True)),
                    ('attempt', models.PositiveIntegerField(default=1, help_text='Which claim of the key holds it (1 = the first).')),
                    ('leased_until', models.DateTimeField(default=api.models.lease_from_now, help_text='An in_progress row whose lease is over was left by a request that died: the next request with the key runs.')),
                    ('token', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='idempotency_records', to='api.apitoken')),
                ],
                options={
                    'db_table': 'ledger_idempotencyrecord',
                },
            ),
            migrations.AddConstraint(
                model_name='apitoken',
                constraint=models.UniqueConstraint(fields=('practice', 'name'), name='api_token_name_unique'),
            ),
            migrations.AddConstraint(
                model_name='apitoken',
                constraint=models.CheckConstraint(condition=models.Q(models.Q(('created_by__isnull', False), ('user__isnull', True)), models.Q(('created_by__isnull', True), ('user__isnull', False)), _connector='OR'), name='api_token_acts_for_one'),
            ),
            migrations.AddConstraint(
                model_name='apitoken',
                constraint=models.CheckConstraint(condition=models.Q(models.Q(('role', 'manager'), _negated=True), ('created_by__isnull', False), _connector='OR'), name='api_token_manager_is_a_person'),
            ),
            migrations.AddConstraint(
                model_name='idempotencyrecord',
                constraint=models.UniqueConstraint(fields=('token', 'key'), name='idempotency_key_once'),
            ),
        ]),
    ]
