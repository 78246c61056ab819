"""What the REST API keeps (issue 6): the API tokens integrations authenticate with, and the
stored results of idempotent POSTs. Imported by ledger/models.py.

A token belongs to one practice and carries a role. Only a SHA-256 of the token is stored; the
token itself is shown once, when it is made (`manage.py create_api_token`). Each token acts as
its own Django user (no password, not staff of the admin) with a Membership in the token's
practice, so the services' access checks and the history rows name the integration."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    class Role(models.TextChoices):  # the same roles as ledger.Membership
        BILLING = "billing", "Billing staff"
        MANAGER = "manager", "Manager"

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the integration is, e.g. 'ehr-sync'.")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.BILLING)
    prefix = models.CharField(max_length=16, unique=True, help_text="The token's public part, used to find it.")
    key_hash = models.CharField(max_length=64, help_text="SHA-256 (hex) of the whole token; the token is never stored.")
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_token",
                                help_text="The acting user of this integration (history shows it).")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["practice", "name"], name="api_token_name_unique")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_role_display()}, {self.practice})"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class IdempotencyRecord(models.Model):
    """The first answer to a POST sent with an Idempotency-Key. The row is inserted before the
    work starts (state in_progress): the unique constraint lets exactly one of two concurrent
    requests with the same key through; the answer is stored once the service has committed."""

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

    class Meta:
        constraints = [models.UniqueConstraint(fields=["token", "key"], name="idempotency_key_once")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}] {self.state}"
