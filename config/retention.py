"""The retention job (docs/reports.md, "Retention"): purges temporary data only. Owned by workstream G."""

from api.jobs import purge_idempotency_keys


def purge_temporary() -> dict:
    """Drop what is temporary (idempotency keys past their 24 hours); financial rows are never deleted."""
    return {"idempotency_keys": purge_idempotency_keys()["purged"]}
