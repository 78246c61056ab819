"""Jobs django-q2 runs for the ledger app (registered in config/schedules.py)."""

from api.idempotency import purge_expired


def purge_idempotency_keys() -> dict:
    """API idempotency keys are kept 24 hours per token; drop the expired ones (idempotent)."""
    return {"purged": purge_expired()}
