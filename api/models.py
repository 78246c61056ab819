"""What the REST API keeps (issue 6): the API tokens integrations authenticate with, and the
stored results of idempotent POSTs. Imported by ledger/models.py.

A token belongs to one practice and carries a role. Only a SHA-256 of the token is stored; the
token itself is shown once, when it is made (`manage.py create_api_token`, or the admin).

Who a token acts as (issue 9: four eyes compares people, not tokens):

* A person's token (`created_by` set): made by a staff user of the practice, it acts FOR that
  person: services check the person's rights and history rows name the person. Its role can never
  exceed the person's role in the practice, checked when it is made and on every request, so a
  person demoted, removed from the practice or deactivated loses the token's power. Two tokens of
  one person are one person: neither approves what the other asked for.
* An integration token (`created_by` empty, made by an operator from the command line for a pure
  system integration): it acts as its own Django user (`user`: no password, not staff of the
  admin) with a billing Membership. It does billing work and can never approve anything
  (`ledger.access.is_integration`); the manager role is refused for it (and by the database)."""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from ledger.models import history


class ApiToken(models.Model):
    class Role(models.TextChoices):  # the same roles as ledger.Membership
        BILLING = "billing", "Billing staff"
        MANAGER = "manager", "Manager"

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the integration is, e.g. 'ehr-sync'.")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.BILLING)
    prefix = models.CharField(max_length=16, unique=True, help_text="The token's public part, used to find it.")
    key_hash = models.CharField(max_length=64, help_text="SHA-256 (hex) of the whole token; the token is never stored.")
    user = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="api_token",
                                help_text="An integration token's own acting user (it never approves); empty for a "
                                          "person's token.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+",
                                   help_text="The person who made the token and for whom it acts; empty for an "
                                             "integration token.")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # made and revoked with who and why (api/tokens.py); the hash and the last use are not history
    history = history(excluded_fields=["key_hash", "last_used_at"])

    class Meta:
        db_table = "ledger_apitoken"  # created by the ledger app; the table did not move
        constraints = [
            models.UniqueConstraint(fields=["practice", "name"], name="api_token_name_unique"),
            # a token acts for a person, or as its own integration user: exactly one of them
            models.CheckConstraint(condition=Q(created_by__isnull=False, user__isnull=True)
                                   | Q(created_by__isnull=True, user__isnull=False), name="api_token_acts_for_one"),
            # an integration can never approve, so it is never a manager
            models.CheckConstraint(condition=~Q(role="manager") | Q(created_by__isnull=False),
                                   name="api_token_manager_is_a_person"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_role_display()}, {self.practice})"

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def is_integration(self) -> bool:
        return self.created_by_id is None

    @property
    def acting_user(self):
        """Whom the services see: the person behind the token, or the integration's own user."""
        return self.user if self.is_integration else self.created_by


def lease_from_now():
    """When the claim of a new in_progress record ends unless its request renews it (api/idempotency.py)."""
    return timezone.now() + timedelta(seconds=float(getattr(settings, "SETTLE_API_IDEMPOTENCY_LEASE", 60)))


class IdempotencyRecord(models.Model):
    """The first answer to a POST sent with an Idempotency-Key. The row is inserted before the
    work starts (state in_progress): the unique constraint lets exactly one of two concurrent
    requests with the same key through; the answer is stored once the service has committed.

    The request that holds an in_progress row renews its lease while it runs; a row whose lease
    ran out belongs to a request that died, and the next request with the key takes it over
    (attempt + 1). Only the holder of the current attempt can store an answer."""
    class State(models.TextChoices):
        IN_PROGRESS = "in_progress", "In progress"
        DONE = "done", "Done"

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="idempotency_records")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path, query and body.")
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    state = models.CharField(max_length=16, choices=State.choices, default=State.IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, help_text="The JSON answer as sent, replayed byte for byte.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    attempt = models.PositiveIntegerField(default=1, help_text="Which claim of the key holds it (1 = the first).")
    leased_until = models.DateTimeField(default=lease_from_now,
                                        help_text="An in_progress row whose lease is over was left by a request "
                                                  "that died: the next request with the key runs.")

    class Meta:
        db_table = "ledger_idempotencyrecord"  # created by the ledger app; the table did not move
        constraints = [models.UniqueConstraint(fields=["token", "key"], name="idempotency_key_once")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}] {self.state}"
