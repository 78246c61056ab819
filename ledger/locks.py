"""Row locks, always taken in one global order so two services can never deadlock:

    Patient -> Encounter -> Claim -> RemittanceClaim -> Payment -> Credit -> Refund -> WriteOff
            -> PayerCredit -> RemittanceAdjustment -> RemittanceFile

and by ascending primary key within one table. The 835 remittance rows (ledger/remittances.py)
take their places after what they book: a remittance claim right after the claim it decides
(and before the patient money the decision may move), a PLB adjustment after the payer credit it
may close, the file last (its status, once nothing of it is pending). Posting takes them in
plain steps, re-checking under the lock that a remittance row is still pending. Every money change for a patient starts by
locking the Patient row, which serialises all work on one patient's money; the finer locks
that follow re-read the rows the service is about to change, so it never trusts a caller's copy.
"""

from django.db import models

from ledger.errors import NotFound


def _lock(model: type[models.Model], ids, *, label: str) -> dict:
    ids = sorted(set(ids))
    if not ids:
        return {}
    rows = {obj.pk: obj for obj in model.objects.select_for_update(no_key=True).filter(pk__in=ids).order_by("pk")}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise NotFound(f"unknown {label}: {', '.join(map(str, missing))}", field=label.replace(" ", "_"))
    return rows


def lock_patients(ids) -> dict:
    from ledger.models import Patient

    return _lock(Patient, ids, label="patient")


def lock_patient(patient_id):
    return lock_patients([patient_id])[patient_id]


def lock_encounters(ids) -> dict:
    from ledger.models import Encounter

    return _lock(Encounter, ids, label="date of service")


def lock_claims(ids) -> dict:
    from ledger.models import Claim

    return _lock(Claim, ids, label="claim")


def lock_payments(ids) -> dict:
    from ledger.models import Payment

    return _lock(Payment, ids, label="payment")


def lock_credits(ids) -> dict:
    from credits.models import Credit

    return _lock(Credit, ids, label="credit")


def lock_refunds(ids) -> dict:
    from credits.models import Refund

    return _lock(Refund, ids, label="refund")


def lock_writeoffs(ids) -> dict:
    from credits.models import WriteOff

    return _lock(WriteOff, ids, label="write-off")


def lock_payer_credits(ids) -> dict:
    from credits.models import PayerCredit

    return _lock(PayerCredit, ids, label="payer credit")
