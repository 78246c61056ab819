"""Posting payers' remittance files (X12 835), exactly once (issues 3 and 9).

Posting (`remittance_file_post`) goes through `ClaimResultBatch` (credits/services/claims.py), in batches
of claims, one transaction per batch. Each batch, in plain steps:

1. reads the next pending remittance claims of the file and matches them (no lock yet);
2. locks, in the global order of ledger/locks.py, their patients, encounters and claims, then the
   remittance claims themselves, *re-checking under the lock that they are still pending*: a row
   another posting took meanwhile (an upload racing the nightly run) is skipped, never posted
   again;
3. posts what it claimed, writes the batch with a few set-based statements, and names every
   journal entry it wrote in `RemittanceBooking`, whose unique indexes refuse a second entry of
   the same kind for the same remittance claim even if the code above were wrong.

The PLB adjustments follow the same steps (payer credits, then the adjustments, re-checked), and
the file becomes `posted` under its own row lock once nothing of it is pending. A crash between
batches leaves the remaining claims pending; posting again (`import_835` again, or the nightly
run) finishes them. Matching: by the claim number (CLP01) and payer within the practice; a claim
that matches nothing, a reversal of an unknown payment or a claim a rule refuses waits for staff
with the reason (remittances/queue.py: staff match it by hand, or dismiss it), nothing is
guessed. A payer that pays a finalized claim again, or pays above the charge, gets a payer credit
(DOMAIN rule 13); PLB WO recoupments and 72 returns close open payer credits they match."""

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from credits.models import PayerCredit
from credits.services import ClaimResultBatch, payer_credit_open
from credits.services.payer_credits import _resolve_payer_credit
from ledger import journal
from ledger.access import ensure_staff
from ledger.bulk import copy_rows, update_model_rows
from ledger.errors import NotFound, SettleError
from ledger.journal import credit as cr
from ledger.journal import debit as dr
from ledger.locks import lock_claims, lock_encounters, lock_ids, lock_payer_credits, lock_sql
from ledger.models import Account, Claim, JournalEntry
from ledger.money import ZERO
from remittances.models import (
    RemittanceAdjustment,
    RemittanceBooking,
    RemittanceClaim,
    RemittanceFile,
    RemittanceTransaction,
)

log = logging.getLogger(__name__)

POST_BATCH = 2000  # remittance claims per posting transaction

# CLP02 -> what it means for the claim
OUTCOME_BY_STATUS = {"1": "paid", "2": "paid", "3": "paid", "4": "denied", "19": "forwarded", "20": "forwarded",
                     "21": "forwarded"}
REVERSAL = "22"
NOT_OURS = "23"


# --- posting -------------------------------------------------------------------------------------------

@dataclass
class PostResult:
    posted: int = 0
    waiting: int = 0
    payer_credits: int = 0
    plb_posted: int = 0
    skipped: int = 0  # rows another posting had taken meanwhile (left as they were)
    by_state: dict = field(default_factory=dict)


@dataclass(slots=True)
class _Row:
    """A remittance claim being posted: what posting reads and what it sets (no model instance:
    a batch holds thousands)."""
    id: int
    transaction_id: int
    claim_number: str
    status_code: str
    charge: Decimal
    paid: Decimal
    patient_responsibility: Decimal
    pr_adjustments: Decimal
    other_adjustments: Decimal
    payer_claim_number: str
    segment: int
    state: str = RemittanceClaim.State.PENDING
    note: str = ""
    claim: Claim | None = None
    posted_at: object = None
    posted_by_id: int | None = None

    @property
    def claim_id(self):
        return self.claim.pk if self.claim is not None else None


ROW_FIELDS = ["id", "transaction_id", "claim_number", "status_code", "charge", "paid", "patient_responsibility",
              "pr_adjustments", "other_adjustments", "payer_claim_number", "segment"]


def remittance_file_post(*, file_id: int, actor, batch_size: int | None = None, progress=None) -> PostResult:
    """Post the pending claims and PLB adjustments of a received file, batch by batch (one
    transaction each, `batch_size` claims, default POST_BATCH). Safe to run twice at once and
    after a crash: see the module docstring."""
    batch_size = batch_size or POST_BATCH
    f = RemittanceFile.objects.filter(pk=file_id).defer("content").first()
    if f is None:
        raise NotFound(f"unknown remittance file {file_id}", field="file")
    ensure_staff(actor, f.practice_id)
    result = PostResult()
    txs = {t.pk: t for t in RemittanceTransaction.objects.filter(file=f)}
    while True:
        # step 1 (no lock): the next pending claims of the file, in file order
        rows = [_Row(*v) for v in RemittanceClaim.objects.filter(file=f, state=RemittanceClaim.State.PENDING)
                .order_by("segment").values_list(*ROW_FIELDS)[:batch_size]]
        if not rows:
            break
        with transaction.atomic():
            claimed = _post_claim_batch(rows, f=f, txs=txs, actor=actor, result=result)
        if progress:
            progress(claimed)
    _post_adjustments(f, actor=actor, result=result)
    result.by_state = dict(RemittanceClaim.objects.filter(file=f).values_list("state").annotate(n=Count("pk"))
                           .order_by("state"))
    return result


def remittance_files_post_pending(*, practice_id: int, actor) -> int:
    """Nightly step 1: post every received file of the practice. Returns the number of files."""
    count = 0
    for file_id in RemittanceFile.objects.filter(practice_id=practice_id, status=RemittanceFile.Status.RECEIVED) \
            .order_by("pk").values_list("pk", flat=True):
        remittance_file_post(file_id=file_id, actor=actor)
        count += 1
    return count


def _match_batch(rows, *, practice_id: int, txs: dict) -> dict:
    """Match a batch of remittance claims with one query: {row id: (claim id, patient id, encounter
    id, why)}."""
    numbers = {rc.claim_number for rc in rows}
    by_number: dict[str, list[tuple]] = {}
    for c in Claim.objects.filter(practice_id=practice_id, claim_number__in=numbers).order_by("pk") \
            .values_list("pk", "claim_number", "payer_id", "payer__name", "encounter__patient_id", "encounter_id"):
        by_number.setdefault(c[1], []).append(c)
    out = {}
    for rc in rows:
        found = by_number.get(rc.claim_number, [])
        tx = txs[rc.transaction_id]
        if len(found) > 1:
            same_payer = [c for c in found if (tx.payer_id and c[2] == tx.payer_id) or
                          (not tx.payer_id and c[3].lower() == tx.payer_name.lower())]
            found = same_payer or found
        if not found:
            out[rc.id] = (None, None, None, f"no claim {rc.claim_number} in this practice")
        elif len(found) > 1:
            out[rc.id] = (None, None, None, f"claim number {rc.claim_number} matches several claims (payers "
                                            "differ); match it by hand")
        else:
            out[rc.id] = (found[0][0], found[0][4], found[0][5], "")
    return out


# --- the lock steps, in the global order of ledger/locks.py -----------------------------------------------

def _claim_rows(model, ids, *, states=("pending",)) -> set[int]:
    """Lock the remittance claims (or adjustments) `ids` that are *still* in one of `states`
    (pending, for posting), ascending id, and return those: a row another posting took while we
    waited for the locks before it is not ours."""
    kind = {RemittanceClaim: "remittance_claims", RemittanceAdjustment: "remittance_adjustments"}[model]
    return lock_ids(kind, ids, where="state = ANY(%s)", params=[[str(s) for s in states]])


def _lock_file(file_id: int) -> str:
    with connection.cursor() as cur:
        cur.execute(lock_sql("remittance_files", where="id = %s", columns="status"), [file_id])
        return cur.fetchone()[0]


def _post_claim_batch(rows, *, f, txs, actor, result: PostResult) -> int:
    """One transaction: match, lock (patients -> encounters -> claims -> remittance claims, the last
    re-checked), post what is still pending, write. Returns how many rows it took."""
    matches = _match_batch(rows, practice_id=f.practice_id, txs=txs)
    found = [m for m in matches.values() if m[0] is not None]
    lock_ids("patients", {m[1] for m in found})  # the first lock every money service takes, rows not loaded
    encounters = lock_encounters({m[2] for m in found})
    claims = lock_claims({m[0] for m in found})
    mine = _claim_rows(RemittanceClaim, [rc.id for rc in rows])
    result.skipped += len(rows) - len(mine)
    rows = [rc for rc in rows if rc.id in mine]
    if not rows:
        return 0
    batch = ClaimResultBatch(actor=actor)
    payer_credit_entries = {}
    for rc in rows:
        claim_id, _, _, why = matches[rc.id]
        if rc.status_code == NOT_OURS:
            _wait(rc, RemittanceClaim.State.UNMATCHED, "CLP02 23: the payer says this is not its claim")
        elif claim_id is None:
            _wait(rc, RemittanceClaim.State.HELD_REVERSAL if rc.status_code == REVERSAL
                  else RemittanceClaim.State.UNMATCHED, why)
        else:
            claim = claims[claim_id]
            try:
                entry = _post_claim(rc, claim, encounters[claim.encounter_id], tx=txs[rc.transaction_id],
                                    filename=f.filename, batch=batch, actor=actor, result=result)
            except SettleError as exc:
                _wait(rc, RemittanceClaim.State.FAILED, exc.message, claim=claim)
            else:
                if entry is not None:
                    payer_credit_entries[rc.id] = entry
        if rc.state in RemittanceClaim.WAITING:
            result.waiting += 1
    batch.flush()
    _book(f.pk, claims=batch.entry_ids, payer_credits=payer_credit_entries)
    update_model_rows(RemittanceClaim, ["state", "note", "claim", "posted_at", "posted_by"],
                      [(rc.id, rc.state, rc.note, rc.claim_id, rc.posted_at, rc.posted_by_id) for rc in rows])
    return len(rows)


def _book(file_id: int, *, claims: dict | None = None, payer_credits: dict | None = None,
          adjustments: list | None = None) -> None:
    """Name the journal entries just written after what they book (RemittanceBooking). `claims`:
    {remittance claim id: payer-payment entry id}; `payer_credits`: {remittance claim id: payer
    credit entry id}; `adjustments`: [(adjustment id, entry id, kind)]. The unique indexes refuse a
    second entry of a kind for the same claim or adjustment: the transaction then rolls back."""
    rows = [(e, JournalEntry.Kind.PAYER_PAYMENT, file_id, rc, None) for rc, e in (claims or {}).items()]
    rows += [(e, JournalEntry.Kind.PAYER_CREDIT, file_id, rc, None) for rc, e in (payer_credits or {}).items()]
    rows += [(e, kind, file_id, None, adj) for adj, e, kind in (adjustments or [])]
    copy_rows(RemittanceBooking._meta.db_table, ["entry_id", "kind", "file_id", "remittance_claim_id",
                                                 "adjustment_id"], rows)


def _wait(rc, state, note, claim=None):
    rc.state, rc.note, rc.claim = state, note, claim


def _post_claim(rc, claim: Claim, enc, *, tx, filename: str, batch, actor, result: PostResult) -> int | None:
    """Post one remittance claim into `batch` (claim and encounter are the locked rows). Its payer
    payment entry is tagged with the row id (batch.entry_ids); returns the id of the payer credit
    entry it wrote at once, if any."""
    reason = f"Remittance {tx.trace_number} (835 {filename} segment {rc.segment}, CLP {rc.claim_number})"
    if rc.pr_adjustments != rc.patient_responsibility and rc.status_code != REVERSAL:
        rc.note = f"CLP05 {rc.patient_responsibility} differs from the PR adjustments {rc.pr_adjustments}; " \
                  "CLP05 was used"
    if rc.status_code == REVERSAL:
        if claim.remittance_count == 0 or claim.state not in (Claim.State.PAID, Claim.State.DENIED,
                                                               Claim.State.FORWARDED):
            _wait(rc, RemittanceClaim.State.HELD_REVERSAL,
                  f"reversal of a payment settle never posted (claim is {claim.get_state_display().lower()})",
                  claim=claim)
            return None
        batch.record(claim=claim, encounter=enc, outcome="reversed", paid_amount=rc.paid,
                     adjustment_amount=rc.other_adjustments, patient_responsibility=None, reason=f"Reversal: {reason}",
                     tag=rc.id)
        _done(rc, claim, actor, RemittanceClaim.State.POSTED, result)
        return None
    outcome = OUTCOME_BY_STATUS.get(rc.status_code)
    if outcome is None:
        _done(rc, claim, actor, RemittanceClaim.State.INFORMATIONAL, result,
              note=f"CLP02 {rc.status_code}: nothing to post")
        return None
    # the payer pays a finalized, paid claim again without reversing it first: paid twice
    if claim.state == Claim.State.PAID and claim.paid_amount > 0 and rc.paid > 0:
        pc = payer_credit_open(payer_id=claim.payer_id, amount=rc.paid, reason_code="duplicate_payment", actor=actor,
                               reason=f"Paid twice: {reason}", claim_id=claim.pk,
                               payer_claim_number=rc.payer_claim_number, cash_received=True)
        result.payer_credits += 1
        _done(rc, claim, actor, RemittanceClaim.State.PAYER_CREDIT, result,
              note=f"claim was already paid {claim.paid_amount}; {rc.paid} is due back to the payer")
        return pc.opening_entry.pk
    excess = rc.paid - rc.charge if rc.paid > rc.charge > 0 else ZERO
    record = dict(claim=claim, encounter=enc, outcome=outcome, paid_amount=rc.paid - excess,
                  adjustment_amount=rc.other_adjustments + excess, patient_responsibility=rc.patient_responsibility,
                  reason=reason, payer_claim_number=rc.payer_claim_number, tag=rc.id)
    entry = None
    if excess > 0:  # paid above the charge: the excess is the payer's money
        # both or neither: a decision the batch refuses (it refuses before recording anything) takes its payer
        # credit back with the savepoint, and the claim waits for staff with the reason
        with transaction.atomic():
            pc = payer_credit_open(payer_id=claim.payer_id, amount=excess, reason_code="above_allowed", actor=actor,
                                   reason=f"Paid {rc.paid} on a charge of {rc.charge}: {reason}", claim_id=claim.pk,
                                   payer_claim_number=rc.payer_claim_number, cash_received=True)
            batch.record(**record)
        result.payer_credits += 1
        entry = pc.opening_entry.pk
    else:
        batch.record(**record)
    _done(rc, claim, actor, RemittanceClaim.State.POSTED, result)
    return entry


def _done(rc, claim, actor, state, result, note=None):
    rc.state, rc.claim, rc.posted_at, rc.posted_by_id = state, claim, timezone.now(), actor.pk
    if note:
        rc.note = note
    if state == RemittanceClaim.State.POSTED:
        result.posted += 1


# --- PLB adjustments and the file's status ----------------------------------------------------------------

def _post_adjustments(f, *, actor, result: PostResult) -> None:
    """One transaction: the pending PLB rows of the file (payer credits they may close, then the
    rows themselves, re-checked under the lock), then the file's status under its own lock."""
    with transaction.atomic():
        adjs = list(RemittanceAdjustment.objects.filter(transaction__file=f, state=RemittanceAdjustment.State.PENDING)
                    .select_related("transaction__payer").order_by("segment"))
        if adjs:
            candidates = {adj.pk: _plb_candidates(adj) for adj in adjs}
            payer_credits = lock_payer_credits({pc for ids in candidates.values() for pc in ids})
            mine = _claim_rows(RemittanceAdjustment, [a.pk for a in adjs])
            result.skipped += len(adjs) - len(mine)
            booked = []
            for adj in adjs:
                if adj.pk in mine:
                    booked += _post_plb(adj, [payer_credits[i] for i in candidates[adj.pk]], filename=f.filename,
                                        actor=actor)
                    result.plb_posted += 1
            _book(f.pk, adjustments=booked)
        if _lock_file(f.pk) == RemittanceFile.Status.RECEIVED and not (
                RemittanceClaim.objects.filter(file=f, state=RemittanceClaim.State.PENDING).exists()
                or RemittanceAdjustment.objects.filter(transaction__file=f,
                                                       state=RemittanceAdjustment.State.PENDING).exists()):
            RemittanceFile.objects.filter(pk=f.pk).update(status=RemittanceFile.Status.POSTED,
                                                          posted_at=timezone.now())


def _plb_candidates(adj) -> list[int]:
    """The open payer credits a WO recovery or 72 return may close, or a negative WO (a deferred
    recoupment) may name as already owed: its reference is the payer's or our claim number (oldest
    first). Read before the locks; re-checked after."""
    ref = adj.reference.strip()
    recovery = adj.code in ("WO", "72") and adj.amount > 0
    deferral = adj.code == "WO" and adj.amount < 0
    if not (recovery or deferral) or not ref:
        return []

    qs = PayerCredit.objects.filter(practice_id=adj.practice_id, state=PayerCredit.State.OPEN)
    if adj.transaction.payer_id:
        qs = qs.filter(payer_id=adj.transaction.payer_id)
    return list(qs.filter(Q(payer_claim_number=ref) | Q(claim__claim_number=ref) | Q(claim__payer_claim_number=ref))
                .order_by("pk").values_list("pk", flat=True))


def _post_plb(adj: RemittanceAdjustment, candidates: list, *, filename: str, actor) -> list[tuple]:
    """PLB: WO recoupment or 72 return closes a matching open payer credit; a negative WO is a
    deferred recoupment (a new payer credit, unless its reference names an open payer credit that
    already owes that money: then it is booked as a payer adjustment); anything else is booked as a payer adjustment so
    the cash booked equals the check (BPR02 = sum CLP04 - sum PLB). `candidates` are locked.
    Returns the (adjustment id, entry id, kind) of the entries written."""
    tx = adj.transaction
    memo = f"PLB {adj.code} {adj.reference} {adj.amount} (835 {filename} segment {adj.segment})"
    booked = []
    if adj.code in ("WO", "72") and adj.amount > 0:
        ref = adj.reference.strip()
        match = next((pc for pc in candidates if pc.state == PayerCredit.State.OPEN and pc.outstanding > 0), None)
        if match is not None:
            take = min(adj.amount, match.outstanding)
            _resolve_payer_credit(match, amount=take, how="refund" if adj.code == "72" else "recoup",
                                  reference=f"{tx.trace_number} PLB {adj.code} {ref}", actor=actor, reason=memo)
            booked.append((adj.pk, match.resolution_entry.pk, JournalEntry.Kind.PAYER_CREDIT_RESOLVED))
            adj.payer_credit = match
            rest = adj.amount - take
            adj.note = f"closed payer credit #{match.pk}" if match.state != PayerCredit.State.OPEN else \
                f"recouped {take} of payer credit #{match.pk}"
            if rest > 0:
                booked.append(_book_plb(adj, rest, memo, actor))
                adj.note += f"; {rest} beyond it booked as a payer adjustment"
        else:
            booked.append(_book_plb(adj, adj.amount, memo, actor))
            adj.note = "no open payer credit matches the reference; booked as a payer adjustment"
    elif adj.code == "WO" and adj.amount < 0:
        payer = tx.payer
        owed = next((pc for pc in candidates if pc.state == PayerCredit.State.OPEN and pc.outstanding >= -adj.amount),
                    None)
        if payer is None:
            booked.append(_book_plb(adj, adj.amount, memo, actor))
            adj.note = "deferred recoupment from an unknown payer; booked as a payer adjustment"
        elif owed is not None:  # the same money is owed already: never a second payer credit for it
            booked.append(_book_plb(adj, adj.amount, memo, actor))
            adj.note = (f"names open payer credit #{owed.pk}, already owed to the payer: no second payer credit; "
                        "booked as a payer adjustment")
        else:
            pc = payer_credit_open(payer_id=payer.pk, amount=-adj.amount, reason_code="other", actor=actor,
                                   reason=f"Recoupment deferred: {memo}", payer_claim_number=adj.reference,
                                   cash_received=True)
            booked.append((adj.pk, pc.opening_entry.pk, JournalEntry.Kind.PAYER_CREDIT))
            adj.payer_credit = pc
            adj.note = f"opened payer credit #{pc.pk} (the payer will recoup it later)"
    else:
        booked.append(_book_plb(adj, adj.amount, memo, actor))
        adj.note = "booked as a payer adjustment"
    adj.state = RemittanceAdjustment.State.POSTED
    adj.save(update_fields=["state", "payer_credit", "note"])
    return [b for b in booked if b is not None]  # a PLB of 0.00 books nothing


def _book_plb(adj, amount: Decimal, memo: str, actor) -> tuple | None:
    entry = journal.post(practice_id=adj.practice_id, kind=JournalEntry.Kind.PAYER_ADJUSTMENT, memo=memo, actor=actor,
                         lines=[dr(Account.CONTRACTUAL, amount), cr(Account.CASH, amount)])
    return None if entry is None else (adj.pk, entry.pk, JournalEntry.Kind.PAYER_ADJUSTMENT)

