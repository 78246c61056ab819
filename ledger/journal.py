"""Writing the double-entry journal. Every money event calls `post` once, inside the service's
transaction. Lines are signed (debit positive, credit negative) and must sum to zero; the
database checks the same thing again as the lines are written: a statement-level AFTER INSERT
trigger refuses any INSERT statement in which an entry's lines do not sum to zero (so each
entry's lines are written in one statement)."""

from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from ledger.bulk import copy_rows
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


def post_many(*, actor, entries: list[tuple]) -> list[int | None]:
    """Post several entries at once: `entries` are (practice_id, kind, memo, patient_id, lines).
    Two COPY statements whatever the count (no model instances); every entry is checked as `post`
    checks it, and the database checks each again (the balance trigger runs once for the whole
    statement). Returns the new entry ids, one per entry given (None where all its lines were zero
    and nothing was written)."""

    todo, where = [], []
    accounts = frozenset(Account.values)  # (Account.values builds a new list at every call)
    for n, (practice_id, kind, memo, patient, lines) in enumerate(entries):
        lines = [ln for ln in lines if ln.amount != 0]
        if not lines:
            continue
        total = sum((ln.amount for ln in lines), Decimal("0"))
        if total != 0:
            raise AssertionError(f"unbalanced journal entry {kind}: lines sum to {total}")
        for ln in lines:
            if ln.account not in accounts:
                raise AssertionError(f"unknown account {ln.account}")
        todo.append((practice_id, str(kind), memo or kind, getattr(patient, "pk", patient), lines))
        where.append(n)
    out: list[int | None] = [None] * len(entries)
    if not todo:
        return out
    now = timezone.now()
    with connection.cursor() as cur:
        # ids come from the sequence first, so each entry's lines know their entry for sure
        cur.execute("SELECT nextval(pg_get_serial_sequence('ledger_journalentry', 'id')) FROM generate_series(1, %s)",
                    [len(todo)])
        ids = [r[0] for r in cur.fetchall()]
    copy_rows("ledger_journalentry", ["id", "practice_id", "kind", "memo", "patient_id", "created_by_id", "created_at"],
              ((i, t[0], t[1], t[2], t[3], actor.pk, now) for i, t in zip(ids, todo)))
    dim_names = ("patient", "encounter", "credit", "payment", "claim")

    def line_rows():
        for entry_id, (practice_id, _, _, _, lines) in zip(ids, todo):
            for ln in lines:
                dims = ln.dims
                yield (entry_id, practice_id, str(ln.account), ln.amount,
                       *(getattr(dims.get(n), "pk", dims.get(n)) for n in dim_names))

    copy_rows("ledger_journalline", ["entry_id", "practice_id", "account", "amount", "patient_id", "encounter_id",
                                     "credit_id", "payment_id", "claim_id"], line_rows())
    for n, entry_id in zip(where, ids):
        out[n] = entry_id
    return out
