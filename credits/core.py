"""Primitives shared by the services. Each one assumes the caller runs inside the service's
transaction and already holds the patient's row lock (see ledger/locks.py); none of them is a
way in on its own. They change state, write the history rows (user + reason) and book the
journal lines for the piece of work they do."""

from decimal import Decimal

from django.db import connection
from django.db.models import Max, Q, Sum
from django.utils import timezone

from credits.models import Credit, CreditApplication, WriteOff
from ledger import journal
from ledger.bulk import history_from_table
from ledger.history import save_with_history
from ledger.journal import credit as cr
from ledger.journal import debit as dr
from ledger.locks import lock, lock_encounters, lock_sql
from ledger.models import Account, Encounter, JournalEntry, Payment
from ledger.sql import ENCOUNTER_PAYABLE_SQL


def credit_account(c: Credit) -> str:
    return Account.CREDITS_LOCKED if c.state == Credit.State.LOCKED else Account.CREDITS_AVAILABLE


def credit_dims(c: Credit) -> dict:
    return {"patient": c.patient_id, "credit": c, "encounter": c.locked_encounter_id}


def encounter_has_open_claim(encounter: Encounter) -> bool:
    """A claim on the DoS still waits on a payer (EncounterQuerySet.pending_payer, the one definition)."""
    return Encounter.objects.filter(pk=encounter.pk).pending_payer().exists()


def encounter_payable(encounter: Encounter) -> bool:
    """Patient money may be applied once the PR is known: no claim is still waiting on a payer."""
    return not encounter_has_open_claim(encounter)


def encounter_balanced(encounter: Encounter) -> bool:
    return encounter.balance == 0 and not encounter_has_open_claim(encounter)


def new_credit(*, patient, source: str, amount: Decimal, actor, reason: str, lock_to=None, origin=None,
               payment=None, note: str = "") -> Credit:
    """Create a credit (the caller books where the money came from)."""
    c = Credit(
        practice_id=patient.practice_id, patient=patient, source=source, amount=amount, on_hand=amount,
        origin_encounter=origin, payment=payment, note=note or reason, created_by=actor,
    )
    if lock_to is not None:
        c.lock_to(lock_to)
    save_with_history(c, actor=actor, reason=reason)
    return c


def consume(c: Credit, amount: Decimal, bucket: str) -> None:
    """Move `amount` from on hand into a spent bucket and settle the FSM state when empty."""
    c.on_hand -= amount
    setattr(c, bucket, getattr(c, bucket) + amount)
    if c.on_hand == 0 and c.refund_hold == 0:
        {"applied_amount": c.mark_applied, "refunded_amount": c.mark_refunded,
         "removed_amount": c.mark_removed}[bucket]()


def apply_credit(*, c: Credit, encounter: Encounter, amount: Decimal, actor, reason: str,
                 entry_lines: list, nightly_run=None) -> CreditApplication:
    """Apply part of a credit to a DoS balance; the caller posts `entry_lines` in one entry."""
    account, dims = credit_account(c), credit_dims(c)
    consume(c, amount, "applied_amount")
    save_with_history(c, actor=actor, reason=reason)
    encounter.applied_amount += amount
    app = CreditApplication.objects.create(
        practice_id=encounter.practice_id, patient_id=encounter.patient_id, encounter=encounter, amount=amount,
        credit=c, reason=reason, created_by=actor, nightly_run=nightly_run,
    )
    entry_lines += [dr(account, amount, **dims),
                    cr(Account.PATIENT_RECEIVABLE, amount, patient=encounter.patient_id, encounter=encounter)]
    return app


def apply_payment(*, payment, encounter: Encounter, amount: Decimal, actor, reason: str,
                  entry_lines: list) -> CreditApplication:
    encounter.applied_amount += amount
    app = CreditApplication.objects.create(
        practice_id=encounter.practice_id, patient_id=encounter.patient_id, encounter=encounter, amount=amount,
        payment=payment, reason=reason, created_by=actor,
    )
    entry_lines.append(cr(Account.PATIENT_RECEIVABLE, amount, patient=encounter.patient_id, encounter=encounter,
                          payment=payment))
    return app


def return_applied(*, encounter: Encounter, amount: Decimal, source: str, hold: bool, actor, reason: str,
                   kind: str = JournalEntry.Kind.UNAPPLICATION) -> list[Credit]:
    """Take `amount` of the patient money applied to `encounter` back into new credits, latest
    application first, one credit per payment or credit it came from (so a refund can still go
    back to the original payment). Used when a remittance lowers the PR (overpayment) and when a
    claim is resubmitted."""
    if amount <= 0:
        return []
    nets = (
        CreditApplication.objects.filter(encounter=encounter)
        .values("credit_id", "payment_id")
        .annotate(net=Sum("amount"), last=Max("id"))
        .filter(net__gt=0)
        .order_by("-last")
    )
    remaining, created, lines = amount, [], []
    for row in nets:
        if remaining == 0:
            break
        take = min(row["net"], remaining)
        if row["payment_id"]:
            payment = Payment.objects.get(pk=row["payment_id"])
        else:
            payment = Credit.objects.get(pk=row["credit_id"]).payment
        new = new_credit(
            patient=encounter.patient, source=source, amount=take, actor=actor, reason=reason,
            lock_to=encounter if hold else None, origin=encounter, payment=payment,
        )
        CreditApplication.objects.create(
            practice_id=encounter.practice_id, patient_id=encounter.patient_id, encounter=encounter, amount=-take,
            credit_id=row["credit_id"], payment_id=row["payment_id"], returned_to=new, reason=reason,
            created_by=actor,
        )
        encounter.applied_amount -= take
        lines += [dr(Account.PATIENT_RECEIVABLE, take, patient=encounter.patient_id, encounter=encounter),
                  cr(credit_account(new), take, **credit_dims(new))]
        created.append(new)
        remaining -= take
    if remaining != 0:
        raise AssertionError(f"DoS {encounter.pk}: asked to return {amount}, only {amount - remaining} applied")
    journal.post(practice_id=encounter.practice_id, kind=kind, memo=reason, actor=actor,
                 patient=encounter.patient_id, lines=lines)
    return created


def set_pr(*, encounter: Encounter, new_pr: Decimal, remittance: bool, actor, reason: str,
           entry_lines: list | None = None, save: bool = True, hold: bool | None = None) -> list[Credit]:
    """Set the DoS's PR (estimated or remittance) and settle the difference (rule 9): the change
    is booked against charges receivable (added to `entry_lines` when the caller posts them in
    its own entry); money applied beyond the new PR goes back into an overpayment credit, locked
    to the DoS while a claim on it is still open (rule 3; `hold` says so when the caller knows
    better than the database, e.g. claim states not written yet)."""
    old_pr = encounter.pr
    pr_lines = [dr(Account.PATIENT_RECEIVABLE, new_pr - old_pr, patient=encounter.patient_id, encounter=encounter),
                cr(Account.CHARGES_RECEIVABLE, new_pr - old_pr, encounter=encounter)]
    if entry_lines is not None:
        entry_lines += pr_lines
    else:
        journal.post(practice_id=encounter.practice_id, kind=JournalEntry.Kind.PR_CHANGE, memo=reason, actor=actor,
                     patient=encounter.patient_id, lines=pr_lines)
    excess = encounter.applied_amount + encounter.written_off_amount - new_pr
    created = []
    if excess > 0:
        from_applied = min(excess, encounter.applied_amount)
        created = return_applied(encounter=encounter, amount=from_applied, source=Credit.Source.OVERPAYMENT,
                                 hold=encounter_has_open_claim(encounter) if hold is None else hold, actor=actor,
                                 reason=reason)
        if excess > from_applied:  # PR fell below what was written off: the write-offs give way
            undo_writeoffs_down_to(encounter=encounter, target=new_pr, actor=actor, reason=reason)
    if remittance:
        encounter.remittance_pr = new_pr
    else:
        encounter.estimated_pr = new_pr
    if save:  # otherwise the caller saves it (with its history row) in bulk
        save_with_history(encounter, actor=actor, reason=reason)
    return created


def undo_writeoffs_down_to(*, encounter: Encounter, target: Decimal, actor, reason: str) -> None:
    active = Q(encounter=encounter, state=WriteOff.State.ACTIVE)
    locked = lock(writeoffs=WriteOff.objects.filter(active).values_list("pk", flat=True), only={"writeoffs": active})
    for wo in reversed(locked.writeoffs.values()):  # latest first
        if encounter.written_off_amount <= target:
            break
        undo_writeoff(wo=wo, encounter=encounter, actor=actor, reason=f"PR lowered below write-off: {reason}")


def undo_writeoff(*, wo, encounter: Encounter, actor, reason: str) -> None:
    wo.undo(by=actor, reason=reason)
    save_with_history(wo, actor=actor, reason=reason)
    encounter.written_off_amount -= wo.amount
    journal.post(
        practice_id=wo.practice_id, kind=JournalEntry.Kind.WRITE_OFF_UNDO, memo=reason, actor=actor,
        patient=wo.patient_id,
        lines=[dr(Account.PATIENT_RECEIVABLE, wo.amount, patient=wo.patient_id, encounter=encounter),
               cr(Account.WRITE_OFFS, wo.amount, patient=wo.patient_id, encounter=encounter)],
    )


def release_locked(*, credits, actor, reason: str, kind: str = JournalEntry.Kind.UNLOCK) -> int:
    """Locked -> available for the given (already locked) credit rows; one balanced entry."""
    lines, count, by_practice = [], 0, None
    patient_id = None
    for c in credits:
        if c.state != Credit.State.LOCKED:
            continue
        amount, dims = c.on_hand, credit_dims(c)
        c.unlock()
        save_with_history(c, actor=actor, reason=reason)
        lines += [dr(Account.CREDITS_LOCKED, amount, **dims),
                  cr(Account.CREDITS_AVAILABLE, amount, patient=c.patient_id, credit=c)]
        by_practice, patient_id = c.practice_id, c.patient_id
        count += 1
    if count:
        journal.post(practice_id=by_practice, kind=kind, memo=reason, actor=actor,
                     patient=patient_id if len({c.patient_id for c in credits}) == 1 else None, lines=lines)
    return count


def release_if_balanced(*, encounter: Encounter, actor, reason: str) -> int:
    """Rule 4: once the encounter is balanced, what is left of its locked credits is available."""
    if not encounter_balanced(encounter):
        return 0
    held = Q(locked_encounter=encounter, state=Credit.State.LOCKED)
    locked = lock(credits=Credit.objects.filter(held).values_list("pk", flat=True), only={"credits": held}).credits
    return release_locked(credits=list(locked.values()), actor=actor,
                          reason=f"DoS {encounter.date_of_service} balanced: {reason}")


def release_balanced(*, encounters, actor, reason: str) -> int:
    """Rule 4 for many DoS at once (the 835 posting), set-based: the locked credits of those of
    `encounters` (locked rows, already written) that are balanced and have no open claim become
    available: one UPDATE, history rows in one statement, one unlock entry per patient. Caller
    holds the patients' locks; the credits are locked here, ascending id. Returns how many."""
    by_id = {e.pk: e for e in encounters if e.balance == 0}
    if not by_id:
        return 0
    with connection.cursor() as cur:
        cur.execute(lock_sql("credits", alias="c", columns="c.id, c.practice_id, c.patient_id, c.locked_encounter_id, "
                                                          "c.on_hand",
                             where="c.locked_encounter_id = ANY(%s) AND c.state = 'locked' AND EXISTS (SELECT 1 FROM "
                                   "ledger_encounter e WHERE e.id = c.locked_encounter_id AND {PAYABLE})"
                                   .format(PAYABLE=ENCOUNTER_PAYABLE_SQL.format(e="e"))),
                    [list(by_id)])
        rows = cur.fetchall()
        if not rows:
            return 0
        cur.execute("UPDATE credits_credit SET state = 'available', locked_encounter_id = NULL WHERE id = ANY(%s)",
                    [[r[0] for r in rows]])
    why = {r[0]: f"DoS {by_id[r[3]].date_of_service} balanced: {reason}" for r in rows}
    history_from_table(Credit, why.items(), user_id=actor.pk, at=timezone.now())
    entries = {}
    for credit_id, practice_id, patient_id, enc_id, amount in rows:
        memo, lines = entries.setdefault(patient_id, ([], []))[0], entries[patient_id][1]
        memo.append(why[credit_id])
        lines += [dr(Account.CREDITS_LOCKED, amount, patient=patient_id, credit=credit_id, encounter=enc_id),
                  cr(Account.CREDITS_AVAILABLE, amount, patient=patient_id, credit=credit_id)]
    practice_id = rows[0][1]
    journal.post_many(actor=actor, entries=[(practice_id, JournalEntry.Kind.UNLOCK, "; ".join(dict.fromkeys(memo)),
                                             patient_id, lines) for patient_id, (memo, lines) in entries.items()])
    return len(rows)


def outstanding_encounters(patient_id: int) -> list[Encounter]:
    """The patient's dates of service with a positive PR balance (payable or not), oldest first, locked."""
    ids = list(Encounter.objects.filter(patient_id=patient_id).owing().values_list("pk", flat=True))
    locked = lock_encounters(ids)
    return [locked[i] for i in ids]
