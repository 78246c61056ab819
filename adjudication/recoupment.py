"""A payer's recoupment resolves its case by itself (DOMAIN rule 16, example M).

When an 835 `PLB` `WO` (or `72`) closes a payer credit (remittances/posting.py `_post_plb` ->
credits.services.payer_credits._resolve_payer_credit), the credits app sends
`credits.signals.payer_credit_closed` inside the posting's transaction; credits and remittances do
not import adjudication (the one-way stack), so this receiver is connected in
`AdjudicationConfig.ready()`. It registers an on-commit hook: after the posting commits, the payer
credit's open case is resolved by `adjudication.scan.cases_close_gone` (outcome recouped, naming
the 835 file, the PLB and its segment; automatic, by the system user; an approved "wait for the
recoupment" proposal is carried out, any other live proposal refused with the reason). If the hook
fails, the nightly scan closes the case the same way. A payer credit closed by a refund check
through a resolution resolves its case in that resolution's transaction; the hook then finds it
resolved and does nothing."""

import logging

from django.db import transaction

from adjudication.models import Case
from adjudication.scan import cases_close_gone
from ledger.access import system_user

log = logging.getLogger(__name__)


def payer_credit_closed_received(sender, *, payer_credit, **kwargs) -> None:
    """Receiver of `credits.signals.payer_credit_closed` (inside the closing transaction)."""
    row = (Case.objects.filter(payer_credit_id=payer_credit.pk).exclude(state=Case.State.RESOLVED)
           .values_list("pk", "practice_id").first())
    if row is None:
        return
    case_id, practice_id = row
    transaction.on_commit(lambda: case_resolve_recouped(practice_id=practice_id, case_id=case_id), robust=True)


def case_resolve_recouped(*, practice_id: int, case_id: int) -> int:
    """After the commit: resolve the case of a closed payer credit (its own transaction). Returns 1
    if it was resolved now, 0 if it was resolved already."""
    resolved = cases_close_gone(practice_id=practice_id, actor=system_user(), case_ids=[case_id])
    log.info("case %s of practice %s: payer credit closed, %s", case_id, practice_id,
             "resolved" if resolved else "already resolved")
    return resolved
