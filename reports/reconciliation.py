"""Reconciliation as of a date (DOMAIN rule 20): for one practice, the credits, the journal and the
encounter balances as they stood at the end of a day (in the practice's time zone), compared row by
row.

* The journal is append-only, so "as of" is the sum of the lines of entries created before the
  cutoff (the start of the next local day).
* Credits and encounters are read as they were from their history (django-simple-history: the
  last historical row of each before the cutoff; every service and the set-based nightly run write
  one with each change). "Last" is by history_id, the order the rows were written in: changes of
  one row are serialised by its row lock, while a set-based history_date is its transaction's
  start (`now()`), which can be earlier than a change another transaction made to the row first.
* Compared: per credit, the credit-liability lines against its on-hand amount (locked credits on
  the locked account, the others on the available one); per patient, credits on hand against the
  credit liability; per visit, the patient receivable against its balance (the PR less applied
  and written off); every journal entry balances.

Each difference is listed to the row with both values. Rows written in one transaction carry
timestamps microseconds apart; a cutoff falling between them (a transaction running across
midnight) would show as a difference the next day's reconciliation no longer has."""

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import connection

from ledger.dates import DB_EARLIEST, DB_LATEST
from ledger.errors import InvalidInput, NotFound
from ledger.models import Practice
from reports.exports.base import Column, ReportDef, register

ZERO = Decimal("0.00")
CREDIT_ACCOUNTS = "('credits_available', 'credits_locked')"


@dataclass(frozen=True)
class Difference:
    kind: str  # credit, patient, encounter, journal_entry
    object_type: str
    object_id: int
    label: str
    books: Decimal
    journal: Decimal

    @property
    def difference(self) -> Decimal:
        return self.books - self.journal


@dataclass
class Reconciliation:
    practice_id: int
    as_of: date
    cutoff: datetime
    totals: dict = field(default_factory=dict)
    differences: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"practice": self.practice_id, "as_of": self.as_of.isoformat(), "cutoff": self.cutoff.isoformat(),
                "totals": {k: str(v) for k, v in self.totals.items()},
                "differences": [{**{k: str(v) if isinstance(v, Decimal) else v for k, v in asdict(d).items()},
                                 "difference": str(d.difference)} for d in self.differences]}


def cutoff_of(practice: Practice, as_of: date) -> datetime:
    return datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=ZoneInfo(practice.time_zone))


_CREDITS_SQL = f"""
WITH hc AS (
    SELECT DISTINCT ON (h.id) h.id, h.patient_id, h.state, h.on_hand + h.refund_hold AS held
      FROM credits_historicalcredit h
     WHERE h.practice_id = %(p)s AND h.history_date < %(cut)s
     ORDER BY h.id, h.history_id DESC
), jc AS (
    SELECT l.credit_id, l.patient_id,
           COALESCE(-SUM(l.amount) FILTER (WHERE l.account = 'credits_locked'), 0) AS locked,
           COALESCE(-SUM(l.amount) FILTER (WHERE l.account = 'credits_available'), 0) AS available
      FROM ledger_journalline l JOIN ledger_journalentry e ON e.id = l.entry_id
     WHERE l.practice_id = %(p)s AND l.account IN {CREDIT_ACCOUNTS} AND e.created_at < %(cut)s
     GROUP BY l.credit_id, l.patient_id
)
SELECT COALESCE(hc.id, jc.credit_id), COALESCE(hc.patient_id, jc.patient_id), COALESCE(hc.state, '(none)'),
       COALESCE(hc.held, 0), COALESCE(jc.locked, 0), COALESCE(jc.available, 0)
  FROM hc FULL JOIN jc ON jc.credit_id = hc.id
"""

_ENCOUNTERS_SQL = """
WITH he AS (
    SELECT DISTINCT ON (h.id) h.id, h.patient_id, h.date_of_service,
           COALESCE(h.remittance_pr, h.estimated_pr) - h.applied_amount - h.written_off_amount AS balance
      FROM ledger_historicalencounter h
     WHERE h.practice_id = %(p)s AND h.history_date < %(cut)s
     ORDER BY h.id, h.history_id DESC
), je AS (
    SELECT l.encounter_id, SUM(l.amount) AS receivable
      FROM ledger_journalline l JOIN ledger_journalentry e ON e.id = l.entry_id
     WHERE l.practice_id = %(p)s AND l.account = 'patient_receivable' AND e.created_at < %(cut)s
     GROUP BY l.encounter_id
)
SELECT COALESCE(he.id, je.encounter_id), he.patient_id, he.date_of_service, COALESCE(he.balance, 0),
       COALESCE(je.receivable, 0)
  FROM he FULL JOIN je ON je.encounter_id = he.id
"""

_ENTRIES_SQL = """
SELECT e.id, e.kind, SUM(l.amount)
  FROM ledger_journalentry e JOIN ledger_journalline l ON l.entry_id = e.id
 WHERE e.practice_id = %(p)s AND e.created_at < %(cut)s
 GROUP BY e.id HAVING SUM(l.amount) <> 0 ORDER BY e.id
"""


def _fetch(sql: str, params: dict) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _patient_labels(ids) -> dict[int, str]:
    ids = sorted({i for i in ids if i is not None})
    if not ids:
        return {}
    rows = _fetch("SELECT id, last_name, first_name, account_number FROM ledger_patient WHERE id = ANY(%(ids)s)",
                  {"ids": ids})
    return {r[0]: f"{r[1]}, {r[2]} ({r[3]})" for r in rows}


def reconcile(*, practice_id: int, as_of: date) -> Reconciliation:
    """The practice's books as of the end of `as_of`, compared row by row (see the module's text)."""
    practice = Practice.objects.filter(pk=practice_id).first()
    if practice is None:
        raise NotFound(f"practice {practice_id} not found", field="practice")
    if not DB_EARLIEST <= as_of <= DB_LATEST:
        raise InvalidInput(f"as_of: {as_of:%m/%d/%Y} is outside the years 1900 to 2199", field="as_of")
    cut = cutoff_of(practice, as_of)
    params = {"p": practice.pk, "cut": cut}
    out = Reconciliation(practice_id=practice.pk, as_of=as_of, cutoff=cut)
    credits = _fetch(_CREDITS_SQL, params)
    encounters = _fetch(_ENCOUNTERS_SQL, params)
    entries = _fetch(_ENTRIES_SQL, params)
    labels = _patient_labels([r[1] for r in credits] + [r[1] for r in encounters])
    held_by_patient: dict[int, Decimal] = {}
    booked_by_patient: dict[int, Decimal] = {}
    diffs = []
    for cid, pid, state, held, locked, available in credits:
        held_by_patient[pid] = held_by_patient.get(pid, ZERO) + held
        booked_by_patient[pid] = booked_by_patient.get(pid, ZERO) + locked + available
        on_account = locked if state == "locked" else available
        if held != locked + available or (held and held != on_account):
            diffs.append(Difference("credit", "credit", cid, f"Credit {cid} ({state}) of {labels.get(pid, '?')}",
                                    books=held, journal=on_account if held else locked + available))
    for pid in sorted(set(held_by_patient) | set(booked_by_patient)):
        h, b = held_by_patient.get(pid, ZERO), booked_by_patient.get(pid, ZERO)
        if h != b:
            diffs.append(Difference("patient", "patient", pid, labels.get(pid, "?"), books=h, journal=b))
    for eid, pid, dos, balance, receivable in encounters:
        if balance != receivable:
            when = f"{dos:%m/%d/%Y}" if dos else "(no history)"
            diffs.append(Difference("encounter", "encounter", eid, f"Visit of {when} of {labels.get(pid, '?')}",
                                    books=balance, journal=receivable))
    for entry_id, kind, total in entries:
        diffs.append(Difference("journal_entry", "journal_entry", entry_id, f"Journal entry {entry_id} "
                                f"({kind.replace('_', ' ')}) out of balance", books=ZERO, journal=total))
    order = {"journal_entry": 0, "patient": 1, "credit": 2, "encounter": 3}
    out.differences = sorted(diffs, key=lambda d: (order[d.kind], d.object_id))
    out.totals = {
        "credits_on_hand": sum(held_by_patient.values(), ZERO),
        "credit_liability": sum(booked_by_patient.values(), ZERO),
        "encounter_balances": sum((r[3] for r in encounters), ZERO),
        "patient_receivable": sum((r[4] for r in encounters), ZERO),
        "journal_imbalance": sum((r[2] for r in entries), ZERO),
        "differences": Decimal(len(diffs)),
    }
    return out


# --- the export -------------------------------------------------------------------------------------

TOTAL_LABELS = {"credits_on_hand": "Credits on hand", "credit_liability": "Credit liability (journal)",
                "encounter_balances": "Visit balances", "patient_receivable": "Patient receivable (journal)",
                "journal_imbalance": "Journal out of balance", "differences": "Differences"}


def _as_of(params):
    return params.as_of or date.today()


def _rows(params):
    result = reconcile(practice_id=params.practice_id, as_of=_as_of(params))
    for d in result.differences:
        yield (d.kind.replace("_", " "), d.object_id, d.label, d.books, d.journal, d.difference)


def _summary(params):
    result = reconcile(practice_id=params.practice_id, as_of=_as_of(params))
    return [(TOTAL_LABELS[k], f"{v:,.0f}" if k == "differences" else f"{v:,.2f}") for k, v in result.totals.items()]


register(ReportDef(
    name="reconciliation", title="Reconciliation", takes=("as_of",), rows=_rows, summary=_summary,
    description="Credits, the journal and visit balances as of a date, every difference to the row.",
    columns=[Column("kind", "What"), Column("object", "Id", "int"), Column("label", "Which"),
             Column("books", "Books", "money"), Column("journal", "Journal", "money"),
             Column("difference", "Difference", "money")]))
