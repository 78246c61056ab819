"""Signals the credits app sends to the apps above it (it imports none of them: the one-way stack).

* `payer_credit_closed`: a payer credit was closed (refunded by check, returned or recouped in an
  835 PLB). Sent inside the transaction that closed it, by
  `credits.services.payer_credits._resolve_payer_credit`, with `payer_credit` (the row, locked),
  `how` ("refund" or "recoup") and `actor`. A receiver that acts must do so after the commit
  (transaction.on_commit): adjudication resolves the payer credit's case (adjudication/recoupment.py)."""

from django.dispatch import Signal

payer_credit_closed = Signal()
