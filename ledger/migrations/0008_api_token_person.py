# Issue 9: an API token acts for the person who made it (or, with no person behind it, as an
# integration user that can never approve); idempotency records get a lease and an attempt number.
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

import api.models

INTEGRATION_NOT_MANAGER = ("Issue 9: a token with no person behind it is an integration, which never approves; its "
                           "manager role became billing")


def tokens_act_for_people(apps, schema_editor):
    """Existing tokens: one made by a person (created_by set) acts for that person from now on, and the
    user it used to act as is deactivated (it keeps its history, acts for nothing); one with no person
    behind it stays an integration, and a manager one becomes billing (an integration never approves)."""
    ApiToken = apps.get_model("ledger", "ApiToken")
    Membership = apps.get_model("ledger", "Membership")
    HistoricalMembership = apps.get_model("ledger", "HistoricalMembership")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    now = timezone.now()
    for token in ApiToken.objects.filter(created_by__isnull=False, user__isnull=False):
        old_user = token.user_id
        ApiToken.objects.filter(pk=token.pk).update(user=None)
        User.objects.filter(pk=old_user).update(is_active=False)
    for token in ApiToken.objects.filter(created_by__isnull=True, role="manager"):
        ApiToken.objects.filter(pk=token.pk).update(role="billing")
        for m in Membership.objects.filter(user_id=token.user_id, practice_id=token.practice_id, role="manager"):
            Membership.objects.filter(pk=m.pk).update(role="billing")
            HistoricalMembership.objects.create(id=m.pk, user_id=m.user_id, practice_id=m.practice_id, role="billing",
                                                history_date=now, history_type="~",
                                                history_change_reason=INTEGRATION_NOT_MANAGER)
    # the constraints below are added in this same transaction: run the deferred checks of these updates now
    schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):

    dependencies = [
        ('ledger', '0007_remittance_once'),
    ]

    operations = [
        migrations.AddField(
            model_name='idempotencyrecord',
            name='attempt',
            field=models.PositiveIntegerField(default=1, help_text='Which claim of the key holds it (1 = the first).'),
        ),
        migrations.AddField(
            model_name='idempotencyrecord',
            name='leased_until',
            # existing rows get now + the lease: a key left in progress by a request that died is free soon after
            field=models.DateTimeField(default=api.models.lease_from_now, help_text='An in_progress row whose lease is over was left by a request that died: the next request with the key runs.'),
        ),
        migrations.AlterField(
            model_name='apitoken',
            name='created_by',
            field=models.ForeignKey(blank=True, help_text='The person who made the token and for whom it acts; empty for an integration token.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='apitoken',
            name='user',
            field=models.OneToOneField(blank=True, help_text="An integration token's own acting user (it never approves); empty for a person's token.", null=True, on_delete=django.db.models.deletion.PROTECT, related_name='api_token', to=settings.AUTH_USER_MODEL),
        ),
        migrations.RunPython(tokens_act_for_people, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='apitoken',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('created_by__isnull', False), ('user__isnull', True)), models.Q(('created_by__isnull', True), ('user__isnull', False)), _connector='OR'), name='api_token_acts_for_one'),
        ),
        migrations.AddConstraint(
            model_name='apitoken',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('role', 'manager'), _negated=True), ('created_by__isnull', False), _connector='OR'), name='api_token_manager_is_a_person'),
        ),
    ]
