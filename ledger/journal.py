"""Writing the double-entry journal. Every money event calls `post` once, inside the service's
transaction. Lines are signed (debit positive, credit negative) and must sum to zero; the
database checks the same thing again at commit (a deferred constraint trigger)."""

from dataclasses import dataclass, field
from decimal import Decimal

from ledger.models import Account, JournalEntry, JournalLine


@dataclass
class Line:
    account: str
    amount: Decimal
    dims: dict = field(default_factory=dict)  # patient, encounter, credit, payment, claim (objects or *_id)


def debit(account: str, amount: Decimal, **dims) -> Line:
    return Line(account, amount, dims)


def credit(account: str, amount: Decimal, **dims) -> Line:
    return Line(account, -amount, dims)


def post(*, practice_id: int, kind: str, memo: str, actor, lines: list[Line], patient=None) -> JournalEntry | None:
    lines = [ln for ln in lines if ln.amount != 0]
    if not lines:
        return None
    total = sum((ln.amount for ln in lines), Decimal("0"))
    if total != 0:  # a programming error, never user input: refuse loudly
        raise AssertionError(f"unbalanced journal entry {kind}: lines sum to {total}")
    for ln in lines:
        if ln.account not in Account.values:
            raise AssertionError(f"unknown account {ln.account}")
    entry = JournalEntry.objects.create(
        practice_id=practice_id, kind=kind, memo=memo or kind, created_by=actor,
        patient_id=getattr(patient, "pk", patient),
    )
    rows = []
    for ln in lines:
        dims = {}
        for name in ("patient", "encounter", "credit", "payment", "claim"):
            if name in ln.dims and ln.dims[name] is not None:
                value = ln.dims[name]
                dims[f"{name}_id"] = getattr(value, "pk", value)
        rows.append(JournalLine(entry=entry, practice_id=practice_id, account=ln.account, amount=ln.amount, **dims))
    JournalLine.objects.bulk_create(rows)
    return entry


def post_many(*, actor, entries: list[tuple]) -> list[JournalEntry]:
    """Post several entries at once: `entries` are (practice_id, kind, memo, patient_id, lines).
    Two INSERT statements whatever the count; every entry is checked as `post` checks it, and the
    database checks each again (the balance trigger runs once for the whole statement)."""
    todo = []
    for practice_id, kind, memo, patient, lines in entries:
        lines = [ln for ln in lines if ln.amount != 0]
        if not lines:
            continue
        total = sum((ln.amount for ln in lines), Decimal("0"))
        if total != 0:
            raise AssertionError(f"unbalanced journal entry {kind}: lines sum to {total}")
        todo.append((JournalEntry(practice_id=practice_id, kind=kind, memo=memo or kind, created_by=actor,
                                  patient_id=getattr(patient, "pk", patient)), lines))
    if not todo:
        return []
    made = JournalEntry.objects.bulk_create([e for e, _ in todo])
    rows = []
    for entry, (_, lines) in zip(made, todo):
        for ln in lines:
            if ln.account not in Account.values:
                raise AssertionError(f"unknown account {ln.account}")
            dims = {f"{n}_id": getattr(ln.dims[n], "pk", ln.dims[n]) for n in
                    ("patient", "encounter", "credit", "payment", "claim") if ln.dims.get(n) is not None}
            rows.append(JournalLine(entry=entry, practice_id=entry.practice_id, account=ln.account, amount=ln.amount,
                                    **dims))
    JournalLine.objects.bulk_create(rows)
    return made
