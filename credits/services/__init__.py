"""Services for credits and everything done with them (DOMAIN rules 3-13), one module per
subject. Each public function is the one way in for its operation: keyword-only arguments, the
acting user and a reason, one transaction, row locks through `ledger.locks` (one global order),
balanced journal lines and history rows. The names below are the services' public surface."""

from credits.csv_import import credit_import_approve, credit_import_create, credit_import_reject
from credits.services.application import ApplyResult, credits_apply, credits_release_balanced
from credits.services.claims import ClaimOutcome, ClaimResult, ClaimResultBatch, claim_record_result, claim_resubmit
from credits.services.credit import credit_move, credit_remove, credits_unlock
from credits.services.manual import manual_credit_add, manual_credit_approve, manual_credit_reject
from credits.services.payer_credits import payer_credit_open, payer_credit_recoup, payer_credit_refund
from credits.services.payments import (
                                       CheckoutResult,
                                       PaymentResult,
                                       credit_purchase,
                                       credits_preselect,
                                       payment_checkout,
                                       payment_record,
)
from credits.services.refunds import refund_approve, refund_issue, refund_options, refund_reject, refund_request
from credits.services.writeoffs import writeoff_create, writeoff_undo

__all__ = [
    "ApplyResult", "CheckoutResult", "ClaimOutcome", "ClaimResult", "ClaimResultBatch", "PaymentResult",
    "claim_record_result", "claim_resubmit", "manual_credit_add", "credit_import_approve", "credit_import_reject",
    "credit_move", "credit_purchase", "credit_remove", "credits_apply", "credit_import_create",
    "credits_preselect", "credits_release_balanced", "credits_unlock", "manual_credit_approve",
    "manual_credit_reject", "payer_credit_open", "payer_credit_recoup", "payer_credit_refund", "payment_checkout",
    "payment_record", "refund_approve", "refund_issue", "refund_options", "refund_reject", "refund_request",
    "writeoff_create", "writeoff_undo",
]
