"""Receiving and posting payers' remittance files (X12 835), issue 3.

Receiving (`remittance_receive`) reads the whole file first (ledger/x12): a file that cannot be
read is recorded as refused with the segment and byte position of the fault, and nothing else is
written. A readable file is stored byte for byte with one row per payment (transaction set),
claim and PLB adjustment, in one transaction. The same bytes again, or a payment already received
(same sender ISA06, ISA13, ST02 and TRN02, also when repeated inside one file), post nothing and
are reported as duplicates.

Posting (`remittance_post_file`) goes through the claim service of ledger/services.py, in
batches of claims (one transaction per batch, the batch's patients locked first in ascending id,
the same order as every other service). Each claim is matched by its number (CLP01) and payer
within the practice, then posted; a claim that matches nothing, a reversal of an unknown payment
or a claim a rule refuses waits for staff with the reason, nothing is guessed. A payer that pays
a finalized claim again, or pays above the charge, gets a payer credit (DOMAIN rule 13); PLB WO
recoupments and 72 returns close open payer credits they match. A crash between batches leaves
the remaining claims "pending"; posting again (or the nightly run) finishes them.
"""

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ledger import journal
from ledger.access import ensure_staff
from ledger.bulk import bulk_update_rows
from ledger.journal import credit as cr
from ledger.journal import debit as dr
from ledger.errors import InvalidInput, NotFound, RuleViolation, SettleError
from ledger.locks import lock_claims, lock_encounters, lock_patients
from ledger.models import Account, Claim, JournalEntry, Payer, Practice
from ledger.money import ZERO
from ledger.remittance_models import RemittanceAdjustment, RemittanceClaim, RemittanceFile, RemittanceTransaction
from ledger.x12 import errors as x12_errors
from ledger.x12.reader import Reader835

log = logging.getLogger(__name__)

POST_BATCH = 500

# CLP02 -> what it means for the claim
OUTCOME_BY_STATUS = {"1": "paid", "2": "paid", "3": "paid", "4": "denied", "19": "forwarded", "20": "forwarded",
                     "21": "forwarded"}
REVERSAL = "22"
NOT_OURS = "23"


@dataclass
class ReceiveResult:
    file: RemittanceFile
    status: str
    warnings: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    def as_dict(self) -> dict:
        f = self.file
        return {"file": f.filename, "status": "imported" if self.status in ("received", "posted") else self.status,
                "transactions": f.transaction_count, "claims": f.claim_count, "paid_total": str(f.paid_total),
                "plb_total": str(f.plb_total), "warnings": self.warnings, "errors": self.errors}


def _warning_dict(w) -> dict:
    return {"segment": w.segment, "segment_id": w.segment_id, "position": w.position, "message": w.message,
            "code": getattr(w, "code", "warning")}


def _tx_key(sender: str, isa13, st02, trn02) -> tuple:
    return (sender or "", isa13 or "", st02 or "", trn02 or "")


def remittance_receive(*, practice_id: int, data: bytes, filename: str, actor) -> ReceiveResult:
    """Read and store one 835 file (nothing is posted yet; see `remittance_post_file`)."""
    ensure_staff(actor, practice_id)
    practice = Practice.objects.filter(pk=practice_id).first()
    if practice is None:
        raise NotFound(f"unknown practice {practice_id}", field="practice")
    reader = Reader835(data, filename=filename, keep_claims=False, keep_transactions=False)
    base = dict(practice=practice, filename=filename[:255], sha256=reader.sha256, size=len(data), content=data,
                received_by=actor)

    existing = RemittanceFile.objects.filter(practice=practice, sha256=reader.sha256,
                                             status__in=[RemittanceFile.Status.RECEIVED,
                                                         RemittanceFile.Status.POSTED]).first()
    if existing is not None:
        dup = RemittanceFile.objects.create(status=RemittanceFile.Status.DUPLICATE, duplicate_of=existing,
                                            transaction_count=existing.transaction_count,
                                            claim_count=existing.claim_count, paid_total=existing.paid_total,
                                            plb_total=existing.plb_total,
                                            warnings=[{"message": f"the same file was received on "
                                                                  f"{existing.received_at:%Y-%m-%d %H:%M} "
                                                                  f"(#{existing.pk}); nothing posted"}], **base)
        return ReceiveResult(file=dup, status="duplicate", warnings=dup.warnings)

    # pass 1: read everything; a fault refuses the whole file and nothing else is written
    try:
        headers = list(reader.transactions())
    except x12_errors.X12Error as exc:
        err = {"segment": exc.segment, "segment_id": exc.segment_id, "position": exc.position,
               "element": exc.element, "message": exc.message}
        refused = RemittanceFile.objects.create(status=RemittanceFile.Status.REFUSED, errors=[err], **base)
        return ReceiveResult(file=refused, status="refused", errors=[err])
    warnings = [_warning_dict(w) for w in reader.warnings]

    # which payments are new: (sender, ISA13, ST02, TRN02) seen before in this practice or earlier in this file
    seen, new_tx, dup_count = set(), [], 0
    known = set()
    for t in headers:
        sender = _sender_of(reader, t)
        key = _tx_key(sender, t.interchange_control_number, t.control_number, t.trace_number)
        if key in seen or key in known:
            dup_count += 1
            warnings.append({"segment": t.segment, "segment_id": "ST", "position": t.position, "code": "duplicate",
                             "message": f"payment {t.trace_number or '(no TRN02)'} of interchange "
                                        f"{t.interchange_control_number or '-'} was already received; skipped"})
            continue
        if RemittanceTransaction.objects.filter(practice=practice, sender_id=key[0], interchange_control=key[1],
                                                control_number=key[2], trace_number=key[3]).exists():
            known.add(key)
            dup_count += 1
            warnings.append({"segment": t.segment, "segment_id": "ST", "position": t.position, "code": "duplicate",
                             "message": f"payment {t.trace_number or '(no TRN02)'} of interchange "
                                        f"{t.interchange_control_number or '-'} was already received in an "
                                        "earlier file; skipped"})
            continue
        seen.add(key)
        new_tx.append((t, sender))
    claim_total = sum(t.claim_count for t in headers)
    totals = dict(transaction_count=len(headers), claim_count=claim_total,
                  paid_total=sum((t.signed_total_paid for t in headers), ZERO),
                  plb_total=sum((t.plb_total for t in headers), ZERO),
                  skipped_transactions=reader.skipped_transactions, duplicate_transactions=dup_count)
    if headers and not new_tx:
        first = RemittanceTransaction.objects.filter(
            practice=practice, sender_id=_sender_of(reader, headers[0]),
            interchange_control=headers[0].interchange_control_number or "").first()
        dup = RemittanceFile.objects.create(status=RemittanceFile.Status.DUPLICATE,
                                            duplicate_of=first.file if first else None, warnings=warnings,
                                            **totals, **base)
        return ReceiveResult(file=dup, status="duplicate", warnings=warnings)

    # pass 2: store the file, its payments, claims and PLB rows in one transaction
    with transaction.atomic():
        f = RemittanceFile.objects.create(status=RemittanceFile.Status.RECEIVED, warnings=warnings, **totals, **base)
        tx_rows = {}
        payers = {p.payer_identifier: p for p in Payer.objects.filter(practice=practice).exclude(payer_identifier="")}
        for t, sender in new_tx:
            payer_id = t.trace_payer_id or (t.payer.id if t.payer else "")
            tx_rows[t.segment] = RemittanceTransaction.objects.create(
                file=f, practice=practice, sender_id=sender, interchange_control=t.interchange_control_number or "",
                control_number=t.control_number or "", trace_number=t.trace_number or "",
                payer_name=t.payer_name[:200], payer_identifier=payer_id[:80],
                payer=payers.get(payer_id) or payers.get(t.payer.id if t.payer else "") or
                Payer.objects.filter(practice=practice, name__iexact=t.payer_name).first(),
                payment_method=t.payment_method[:8], payment_date=t.payment_date, total_paid=t.signed_total_paid,
                plb_total=t.plb_total, claim_count=t.claim_count, segment=t.segment)
            RemittanceAdjustment.objects.bulk_create([
                RemittanceAdjustment(transaction=tx_rows[t.segment], practice=practice, code=p.code[:8],
                                     reference=p.reference[:80], amount=p.amount, segment=p.segment)
                for p in t.plb])
        batch = []
        for item in Reader835(data, filename=filename, keep_claims=False, keep_transactions=False)._run():
            if type(item).__name__ != "Claim":
                continue
            tx = tx_rows.get(item.transaction.segment)
            if tx is None:  # a duplicate payment: its claims are not stored
                continue
            batch.append(_claim_row(item, f, tx, practice))
            if len(batch) >= 2000:
                RemittanceClaim.objects.bulk_create(batch)
                batch = []
        RemittanceClaim.objects.bulk_create(batch)
    return ReceiveResult(file=f, status="received", warnings=warnings)


def _sender_of(reader, t) -> str:
    for ic in reader.interchanges:
        if ic.control_number == t.interchange_control_number:
            return ic.sender_id or ""
    return ""


def _claim_row(c, f, tx, practice) -> RemittanceClaim:
    pr_adj = c.adjustment_total_for("PR")
    patient = c.patient
    return RemittanceClaim(
        file=f, transaction=tx, practice=practice, claim_number=c.claim_id[:64], status_code=c.status_code[:4],
        charge=c.charge, paid=c.paid, patient_responsibility=c.patient_responsibility, pr_adjustments=pr_adj,
        other_adjustments=c.adjustment_total - pr_adj, payer_claim_number=c.payer_claim_number[:64],
        patient_name=(f"{patient.last}, {patient.first}" if patient else "")[:200],
        member_id=(patient.id if patient else "")[:80],
        service_date=c.statement_from or next((s.service_date for s in c.services if s.service_date), None),
        adjustments=[{"group": a.group, "reason": a.reason, "amount": str(a.amount)} for a in c.all_adjustments()],
        segment=c.segment, position=c.position)


# --- posting -------------------------------------------------------------------------------------------

@dataclass
class PostResult:
    posted: int = 0
    waiting: int = 0
    payer_credits: int = 0
    plb_posted: int = 0
    by_state: dict = field(default_factory=dict)


def remittance_post_file(*, file_id: int, actor, batch_size: int = POST_BATCH, progress=None) -> PostResult:
    """Post the pending claims and PLB adjustments of a received file."""
    f = RemittanceFile.objects.filter(pk=file_id).defer("content").first()
    if f is None:
        raise NotFound(f"unknown remittance file {file_id}", field="file")
    ensure_staff(actor, f.practice_id)
    result = PostResult()
    while True:
        ids = list(RemittanceClaim.objects.filter(file=f, state=RemittanceClaim.State.PENDING)
                   .order_by("segment").values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        with transaction.atomic():
            _post_claim_batch(ids, actor=actor, result=result)
        if progress:
            progress(len(ids))
    with transaction.atomic():
        for adj in RemittanceAdjustment.objects.select_for_update(of=("self",)).filter(
                transaction__file=f, state=RemittanceAdjustment.State.PENDING) \
                .select_related("transaction", "transaction__file", "transaction__payer") \
                .defer("transaction__file__content").order_by("segment"):
            _post_plb(adj, actor=actor)
            result.plb_posted += 1
        RemittanceFile.objects.filter(pk=f.pk).update(status=RemittanceFile.Status.POSTED, posted_at=timezone.now())
    for state in RemittanceClaim.objects.filter(file=f).values_list("state", flat=True):
        result.by_state[state] = result.by_state.get(state, 0) + 1
    return result


def post_pending(*, practice_id: int, actor) -> int:
    """Nightly step 1: post every received file of the practice. Returns the number of files."""
    count = 0
    for file_id in RemittanceFile.objects.filter(practice_id=practice_id, status=RemittanceFile.Status.RECEIVED) \
            .order_by("pk").values_list("pk", flat=True):
        remittance_post_file(file_id=file_id, actor=actor)
        count += 1
    return count


def _match_batch(rows) -> dict:
    """Match a batch of remittance claims with one query: {remittance claim id: (claim, why)}."""
    numbers = {rc.claim_number for rc in rows}
    by_number: dict[str, list[Claim]] = {}
    for c in Claim.objects.filter(practice_id=rows[0].practice_id, claim_number__in=numbers) \
            .select_related("payer", "encounter"):
        by_number.setdefault(c.claim_number, []).append(c)
    out = {}
    for rc in rows:
        found = by_number.get(rc.claim_number, [])
        tx = rc.transaction
        if len(found) > 1:
            same_payer = [c for c in found if (tx.payer_id and c.payer_id == tx.payer_id) or
                          (not tx.payer_id and c.payer.name.lower() == tx.payer_name.lower())]
            found = same_payer or found
        if not found:
            out[rc.pk] = (None, f"no claim {rc.claim_number} in this practice")
        elif len(found) > 1:
            out[rc.pk] = (None, f"claim number {rc.claim_number} matches several claims (payers differ); "
                                "match it by hand")
        else:
            out[rc.pk] = (found[0], "")
    return out


def _post_claim_batch(ids, *, actor, result: PostResult) -> None:
    from ledger.services import ClaimResultBatch

    rows = list(RemittanceClaim.objects.select_for_update(of=("self",)).filter(pk__in=ids)
                .select_related("transaction", "file").defer("file__content").order_by("segment"))
    matches = _match_batch(rows)
    found = [m[0] for m in matches.values() if m[0] is not None]
    # locks in the global order: patients, then encounters, then claims, each by ascending id
    lock_patients({c.encounter.patient_id for c in found})
    encounters = lock_encounters({c.encounter_id for c in found})
    claims = lock_claims({c.pk for c in found})
    batch = ClaimResultBatch(actor=actor)
    for rc in rows:
        claim, why = matches[rc.pk]
        if rc.status_code == NOT_OURS:
            _wait(rc, RemittanceClaim.State.UNMATCHED, "CLP02 23: the payer says this is not its claim")
        elif claim is None:
            _wait(rc, RemittanceClaim.State.HELD_REVERSAL if rc.status_code == REVERSAL
                  else RemittanceClaim.State.UNMATCHED, why)
        else:
            claim = claims[claim.pk]
            try:
                _post_claim(rc, claim, encounters[claim.encounter_id], batch=batch, actor=actor, result=result)
            except SettleError as exc:
                _wait(rc, RemittanceClaim.State.FAILED, exc.message, claim=claim)
        if rc.state in RemittanceClaim.WAITING:
            result.waiting += 1
    batch.flush()
    bulk_update_rows(RemittanceClaim, rows, ["state", "note", "claim", "posted_at", "posted_by"])


def _wait(rc, state, note, claim=None):
    rc.state, rc.note, rc.claim = state, note, claim


def _post_claim(rc: RemittanceClaim, claim: Claim, enc, *, batch, actor, result: PostResult) -> None:
    """Post one remittance claim into `batch` (claim and encounter are the locked rows)."""
    from credits.services import payer_credit_open

    reason = f"Remittance {rc.transaction.trace_number} (835 {rc.file.filename} segment {rc.segment}, " \
             f"CLP {rc.claim_number})"
    if rc.pr_adjustments != rc.patient_responsibility and rc.status_code != REVERSAL:
        rc.note = f"CLP05 {rc.patient_responsibility} differs from the PR adjustments {rc.pr_adjustments}; " \
                  "CLP05 was used"
    if rc.status_code == REVERSAL:
        if claim.remittance_count == 0 or claim.state not in (Claim.State.PAID, Claim.State.DENIED,
                                                               Claim.State.FORWARDED):
            _wait(rc, RemittanceClaim.State.HELD_REVERSAL,
                  f"reversal of a payment settle never posted (claim is {claim.get_state_display().lower()})",
                  claim=claim)
            return
        batch.record(claim=claim, encounter=enc, outcome="reversed", paid_amount=rc.paid,
                     adjustment_amount=rc.other_adjustments, patient_responsibility=None, reason=f"Reversal: {reason}")
        _done(rc, claim, actor, RemittanceClaim.State.POSTED, result)
        return
    outcome = OUTCOME_BY_STATUS.get(rc.status_code)
    if outcome is None:
        _done(rc, claim, actor, RemittanceClaim.State.INFORMATIONAL, result,
              note=f"CLP02 {rc.status_code}: nothing to post")
        return
    # the payer pays a finalized, paid claim again without reversing it first: paid twice
    if claim.state == Claim.State.PAID and claim.paid_amount > 0 and rc.paid > 0:
        payer_credit_open(payer_id=claim.payer_id, amount=rc.paid, reason_code="duplicate_payment", actor=actor,
                          note=f"Paid twice: {reason}", claim_id=claim.pk,
                          payer_claim_number=rc.payer_claim_number, cash_received=True)
        result.payer_credits += 1
        _done(rc, claim, actor, RemittanceClaim.State.PAYER_CREDIT, result,
              note=f"claim was already paid {claim.paid_amount}; {rc.paid} is due back to the payer")
        return
    paid, adjustment = rc.paid, rc.other_adjustments
    excess = rc.paid - rc.charge if rc.paid > rc.charge > 0 else ZERO
    if excess > 0:  # paid above the charge: the excess is the payer's money
        payer_credit_open(payer_id=claim.payer_id, amount=excess, reason_code="above_allowed", actor=actor,
                          note=f"Paid {rc.paid} on a charge of {rc.charge}: {reason}", claim_id=claim.pk,
                          payer_claim_number=rc.payer_claim_number, cash_received=True)
        result.payer_credits += 1
        paid, adjustment = rc.paid - excess, rc.other_adjustments + excess
    batch.record(claim=claim, encounter=enc, outcome=outcome, paid_amount=paid, adjustment_amount=adjustment,
                 patient_responsibility=rc.patient_responsibility, reason=reason,
                 payer_claim_number=rc.payer_claim_number)
    _done(rc, claim, actor, RemittanceClaim.State.POSTED, result)


def _done(rc, claim, actor, state, result, note=None):
    rc.state, rc.claim, rc.posted_at, rc.posted_by = state, claim, timezone.now(), actor
    if note:
        rc.note = note
    if state == RemittanceClaim.State.POSTED:
        result.posted += 1


def _post_plb(adj: RemittanceAdjustment, *, actor) -> None:
    """PLB: WO recoupment or 72 return closes a matching open payer credit; a negative WO is a
    deferred recoupment (a new payer credit); anything else is booked as a payer adjustment so
    the cash booked equals the check (BPR02 = sum CLP04 - sum PLB)."""
    from credits.models import PayerCredit
    from credits.services import _resolve_payer_credit, payer_credit_open
    from ledger.locks import lock_payer_credits

    tx = adj.transaction
    memo = f"PLB {adj.code} {adj.reference} {adj.amount} (835 {tx.file.filename} segment {adj.segment})"
    if adj.code in ("WO", "72") and adj.amount > 0:
        candidates = PayerCredit.objects.filter(practice_id=adj.practice_id, state=PayerCredit.State.OPEN)
        if tx.payer_id:
            candidates = candidates.filter(payer_id=tx.payer_id)
        ref = adj.reference.strip()
        match = candidates.filter(Q(payer_claim_number=ref) | Q(claim__claim_number=ref) |
                                  Q(claim__payer_claim_number=ref)).order_by("pk").first() if ref else None
        if match is not None:
            pc = lock_payer_credits([match.pk])[match.pk]
            take = min(adj.amount, pc.outstanding)
            _resolve_payer_credit(pc, amount=take, how="refund" if adj.code == "72" else "recoup",
                                  reference=f"{tx.trace_number} PLB {adj.code} {ref}", actor=actor, reason=memo)
            adj.payer_credit = pc
            rest = adj.amount - take
            adj.note = f"closed payer credit #{pc.pk}" if pc.state != PayerCredit.State.OPEN else \
                f"recouped {take} of payer credit #{pc.pk}"
            if rest > 0:
                _book_plb(adj, rest, memo, actor)
                adj.note += f"; {rest} beyond it booked as a payer adjustment"
        else:
            _book_plb(adj, adj.amount, memo, actor)
            adj.note = "no open payer credit matches the reference; booked as a payer adjustment"
    elif adj.code == "WO" and adj.amount < 0:
        payer = tx.payer
        if payer is None:
            _book_plb(adj, adj.amount, memo, actor)
            adj.note = "deferred recoupment from an unknown payer; booked as a payer adjustment"
        else:
            pc = payer_credit_open(payer_id=payer.pk, amount=-adj.amount, reason_code="other", actor=actor,
                                   note=f"Recoupment deferred: {memo}", payer_claim_number=adj.reference,
                                   cash_received=True)
            adj.payer_credit = pc
            adj.note = f"opened payer credit #{pc.pk} (the payer will recoup it later)"
    else:
        _book_plb(adj, adj.amount, memo, actor)
        adj.note = "booked as a payer adjustment"
    adj.state = RemittanceAdjustment.State.POSTED
    adj.save(update_fields=["state", "payer_credit", "note"])


def _book_plb(adj, amount: Decimal, memo: str, actor) -> None:
    journal.post(practice_id=adj.practice_id, kind=JournalEntry.Kind.PAYER_ADJUSTMENT, memo=memo, actor=actor,
                 lines=[dr(Account.CONTRACTUAL, amount), cr(Account.CASH, amount)])


# --- staff: the unmatched queue ----------------------------------------------------------------------

def remittance_claim_match(*, remittance_claim_id: int, claim_id: int, actor, reason: str) -> RemittanceClaim:
    """Staff match a waiting remittance claim to one of the practice's claims by hand, and post it."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("a reason is required", field="reason")
    rc = RemittanceClaim.objects.filter(pk=remittance_claim_id).select_related("transaction", "file") \
        .defer("file__content").first()
    if rc is None:
        raise NotFound(f"unknown remittance claim {remittance_claim_id}", field="remittance_claim")
    ensure_staff(actor, rc.practice_id)
    claim = Claim.objects.filter(pk=claim_id, practice_id=rc.practice_id).select_related("encounter").first()
    if claim is None:
        raise NotFound(f"unknown claim {claim_id} in this practice", field="claim")
    result = PostResult()
    with transaction.atomic():
        rc = RemittanceClaim.objects.select_for_update(of=("self",)).select_related("transaction", "file") \
            .defer("file__content").get(pk=rc.pk)
        if rc.state not in RemittanceClaim.WAITING:
            raise RuleViolation(f"remittance claim {rc.pk} is {rc.get_state_display().lower()}; nothing to match")
        from ledger.services import ClaimResultBatch

        lock_patients([claim.encounter.patient_id])
        enc = lock_encounters([claim.encounter_id])[claim.encounter_id]
        claim = lock_claims([claim.pk])[claim.pk]
        rc.note = f"Matched by hand by {actor.get_username()}: {reason}"
        batch = ClaimResultBatch(actor=actor)
        _post_claim(rc, claim, enc, batch=batch, actor=actor, result=result)
        batch.flush()
        rc.save(update_fields=["state", "note", "claim", "posted_at", "posted_by"])
    return rc
