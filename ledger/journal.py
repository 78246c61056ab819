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


def post_many(*, actor, entries: list[tuple]) -> list[int]:
    """Post several entries at once: `entries` are (practice_id, kind, memo, patient_id, lines).
    Two INSERT statements whatever the count (arrays through unnest, no model instances); every
    entry is checked as `post` checks it, and the database checks each again (the balance trigger
    runs once for the whole statement). Returns the new entry ids."""
    from django.db import connection
    from django.utils import timezone

    todo = []
    for practice_id, kind, memo, patient, lines in entries:
        lines = [ln for ln in lines if ln.amount != 0]
        if not lines:
            continue
        total = sum((ln.amount for ln in lines), Decimal("0"))
        if total != 0:
            raise AssertionError(f"unbalanced journal entry {kind}: lines sum to {total}")
        for ln in lines:
            if ln.account not in Account.values:
                raise AssertionError(f"unknown account {ln.account}")
        todo.append((practice_id, kind, memo or kind, getattr(patient, "pk", patient), lines))
    if not todo:
        return []
    now = timezone.now()
    with connection.cursor() as cur:
        # ids come from the sequence first, so each entry's lines know their entry for sure
        cur.execute("SELECT nextval(pg_get_serial_sequence('ledger_journalentry', 'id')) FROM generate_series(1, %s)",
                    [len(todo)])
        ids = [r[0] for r in cur.fetchall()]
        cur.execute(
            """INSERT INTO ledger_journalentry (id, practice_id, kind, memo, patient_id, created_by_id, created_at)
               SELECT i, p, k, m, pt, %s, %s
                 FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::bigint[]) AS e(i, p, k, m, pt)""",
            [actor.pk, now, ids, [t[0] for t in todo], [str(t[1]) for t in todo], [t[2] for t in todo],
             [t[3] for t in todo]])
        cols = {k: [] for k in ("entry", "practice", "account", "amount", "patient", "encounter", "credit", "payment",
                                "claim")}
        for entry_id, (practice_id, _, _, _, lines) in zip(ids, todo):
            for ln in lines:
                cols["entry"].append(entry_id)
                cols["practice"].append(practice_id)
                cols["account"].append(str(ln.account))
                cols["amount"].append(ln.amount)
                for n in ("patient", "encounter", "credit", "payment", "claim"):
                    v = ln.dims.get(n)
                    cols[n].append(getattr(v, "pk", v))
        cur.execute(
            """INSERT INTO ledger_journalline (entry_id, practice_id, account, amount, patient_id, encounter_id,
                                               credit_id, payment_id, claim_id)
               SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::numeric[], %s::bigint[],
                                    %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[])""",
            [cols[k] for k in cols])
    return ids
