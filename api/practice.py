"""Practice settings through the API (manager tokens only). The admin saves the same fields with
the same history (user + reason); this belongs with the services of ledger/services.py when one
is written for practice settings."""

from django.db import transaction

from ledger.access import ensure_staff
from ledger.history import save_with_history
from ledger.models import Practice

EDITABLE = ("auto_apply", "refund_approval_threshold", "card_refund_window_days", "writeoff_max_amount",
            "writeoff_min_age_days", "approval_window_days", "manual_credit_approval_limit", "max_operation_amount")


@transaction.atomic(durable=True)
def practice_update_settings(*, practice_id: int, changes: dict, actor, reason: str) -> Practice:
    ensure_staff(actor, practice_id, manager=True)
    practice = Practice.objects.select_for_update(no_key=True).get(pk=practice_id)
    fields = [name for name in EDITABLE if name in changes and getattr(practice, name) != changes[name]]
    for name in fields:
        setattr(practice, name, changes[name])
    if fields:
        save_with_history(practice, actor=actor, reason=reason, update_fields=fields)
    return practice
