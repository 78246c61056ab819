"""The REST API (issue 6), under /api/v1/: tokens, idempotency, errors, serializers and views.
Every write calls the same service function the admin uses; see docs/api.md."""
