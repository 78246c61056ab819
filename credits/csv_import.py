"""Credits imported from a CSV file (DOMAIN rule 3; issues 9 and 10): the one parser, used by the
admin's upload page, the API and any other caller, and the set-based writes.

Columns: account_number, amount, note, and optionally date_of_service (YYYY-MM-DD: the credit is
locked to the patient's visit on that day). How a file goes in:

1. Bounded: a file larger than SETTLE_CSV_IMPORT_MAX_BYTES, or with more than
   SETTLE_CSV_IMPORT_MAX_ROWS lines of credits, is refused at once.
2. Every line is checked, and every problem of the file is reported at once, by line (the first
   ERRORS_LISTED of them, with the total count): the file's text, each amount (a positive amount
   of cents within the practice's maximum per operation), the note (required, at most NOTE_MAX
   characters), the date; then, in SQL, the account numbers (one query) and the visits on the
   dates given (one query). One bad line refuses the whole file and nothing is written.
3. The lines are read in chunks (CHUNK) into a temporary table, so Python holds one chunk
   whatever the size of the file; every later step is one statement over all lines: memory is
   flat and time linear in rows.
4. Separation of duties (issue 9): when the file's total is above the practice's
   `manual_credit_approval_limit`, or a patient's credits in it together with their manual and
   imported credits over the approval window are, the import waits, as a whole, for a manager
   other than the importer (`credit_import_approve`); its lines are kept (`CreditImportRow`) and
   no credit exists until then. Otherwise the credits are created at once, in the same
   transaction: one INSERT of the credits, one of their history rows, one journal entry per
   patient and one INSERT of all the lines (as credits/nightly.py and ledger/journal.py do).
"""

import csv
import hashlib
import heapq
import io
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from credits.models import Credit, CreditImport, CreditImportRow
from ledger.access import ensure_approver, ensure_staff
from ledger.dates import service_date
from ledger.errors import Duplicate, InvalidInput, NotFound, RuleViolation
from ledger.history import save_with_history
from ledger.inputs import require_reason
from ledger.locks import lock, lock_sql
from ledger.models import Practice
from ledger.money import positive_money
from ledger.services import amount_within_limit

CSV_COLUMNS = ("account_number", "amount", "note")
OPTIONAL_COLUMNS = ("date_of_service",)
NOTE_MAX = 2000  # the same limit as a manual credit's note (admin form, API)
ERRORS_LISTED = 200
CHUNK = 5000


def max_rows() -> int:
    return settings.SETTLE_CSV_IMPORT_MAX_ROWS


def max_bytes() -> int:
    return settings.SETTLE_CSV_IMPORT_MAX_BYTES


@dataclass(frozen=True, order=True)
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def file_problems(filename: str, errors: list[LineError], total: int) -> InvalidInput:
    """The refusal of a file with problems: an InvalidInput on `file` whose message lists them by
    line; `line_errors` keeps the listing (the first ERRORS_LISTED, as text) and `problem_count`
    the total, for a caller that shows them one by one (the admin's upload page)."""
    listing = "; ".join(str(e) for e in errors)
    more = f"; and {total - len(errors)} more" if total > len(errors) else ""
    exc = InvalidInput(f"{filename}: {total} problem(s); nothing was imported: {listing}{more}", field="file")
    exc.line_errors = [str(e) for e in errors]
    if total > len(errors):
        exc.line_errors.append(f"… and {total - len(errors)} more problem(s) not listed")
    exc.problem_count = total
    return exc


@dataclass
class ImportResult:
    batch: CreditImport

    @property
    def pending(self) -> bool:
        return self.batch.state == CreditImport.State.PENDING

    @property
    def credits(self):
        """The import's credits in file order (none while the import waits for approval)."""
        return Credit.objects.filter(import_row__credit_import=self.batch).order_by("import_row__line")


# --- reading --------------------------------------------------------------------------------------------

def _stream(data):
    """A binary stream over `data` (bytes, or a file such as an upload), from its start."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return io.BytesIO(data)
    if hasattr(data, "seek"):
        data.seek(0)
    return data


def _digest_and_size(data) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    stream = _stream(data)
    while chunk := stream.read(1 << 20):
        h.update(chunk)
        size += len(chunk)
        if size > max_bytes():
            break
    return h.hexdigest(), size


def _text_lines(stream, errors: "_Errors"):
    """The file's lines as text, keeping their line ends (the csv module needs them). A line that
    is not UTF-8 is reported with its line number and the byte of the file where it goes wrong."""
    offset = 0
    for number, raw in enumerate(stream, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw, offset = raw[3:], 3
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.add(number, f"not UTF-8 text (byte {offset + exc.start})")
            text = raw.decode("utf-8", errors="replace")
        offset += len(raw)
        yield text


class _Errors:
    """Problems found while reading, in line order: the first ERRORS_LISTED kept, all counted."""

    def __init__(self):
        self.listed: list[LineError] = []
        self.count = 0

    def add(self, line: int, message: str) -> None:
        self.count += 1
        if len(self.listed) < ERRORS_LISTED:
            self.listed.append(LineError(line, message))


STAGE_SQL = """
CREATE TEMP TABLE credit_import_stage (
    line integer NOT NULL, account_number text NOT NULL, amount numeric(14, 2), note text NOT NULL,
    dos date, patient_id bigint, encounter_id bigint
) ON COMMIT DROP"""

STAGE_INSERT = """
INSERT INTO credit_import_stage (line, account_number, amount, note, dos)
SELECT * FROM unnest(%s::integer[], %s::text[], %s::numeric[], %s::text[], %s::date[])"""


def _read_into_stage(cur, *, data, practice: Practice, errors: _Errors) -> int:
    """Parse the file into the temporary stage table, chunk by chunk. Returns the number of lines
    of credits (blank lines are skipped)."""
    reader = csv.reader(_text_lines(_stream(data), errors))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        header = []
    except csv.Error as exc:
        errors.add(1, f"the header cannot be read ({exc})")
        return 0
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        errors.add(1, f"missing column(s) {', '.join(missing)}; expected {', '.join(CSV_COLUMNS)}"
                      f"[, {', '.join(OPTIONAL_COLUMNS)}]")
        return 0
    col = {name: header.index(name) for name in CSV_COLUMNS + OPTIONAL_COLUMNS if name in header}
    width, limit_rows, rows = len(header), max_rows(), 0
    chunk: list[list] = [[], [], [], [], []]
    line_end = reader.line_num
    while True:
        line = line_end + 1  # a record starts on the line after the last one read
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            line_end = reader.line_num
            message = str(exc)
            if "field larger than field limit" in message:
                message = (f"a field is longer than {csv.field_size_limit():,} characters (a note may have at most "
                           f"{NOTE_MAX:,})")
            errors.add(line, message)
            rows += 1
            continue
        line_end = reader.line_num
        if not any(field.strip() for field in record):
            continue
        rows += 1
        if rows > limit_rows:
            raise InvalidInput(f"more than {limit_rows:,} lines of credits (line {line}); the limit per file is "
                               f"{limit_rows:,} (SETTLE_CSV_IMPORT_MAX_ROWS): split the file", field="file",
                               code="too_many_rows")
        if len(record) > width:
            errors.add(line, "more fields than columns")
            continue
        record += [""] * (width - len(record))
        if any("\x00" in field for field in record):
            errors.add(line, "contains a NUL character")
            continue
        account = record[col["account_number"]].strip()
        amount = _amount(record[col["amount"]].strip(), practice=practice, line=line, errors=errors)
        note = record[col["note"]].strip()
        if not note:
            errors.add(line, "a note is required")
        elif len(note) > NOTE_MAX:
            errors.add(line, f"the note has {len(note):,} characters; at most {NOTE_MAX:,}")
            note = ""
        dos = None
        text = record[col["date_of_service"]].strip() if "date_of_service" in col else ""
        if text:
            try:
                dos = service_date(text, field="date_of_service")  # ISO, and a sane range (ledger/dates.py)
            except InvalidInput as exc:
                errors.add(line, exc.message)
        if not account:
            errors.add(line, "the account number is missing")
        for values, value in zip(chunk, (line, account[:64], amount, note, dos)):
            values.append(value)
        if len(chunk[0]) >= CHUNK:
            cur.execute(STAGE_INSERT, chunk)
            chunk = [[], [], [], [], []]
    if chunk[0]:
        cur.execute(STAGE_INSERT, chunk)
    return rows


def _amount(text: str, *, practice: Practice, line: int, errors: _Errors) -> Decimal | None:
    """The one money parser (ledger/amounts.py: no exponent such as 1e400, within the columns' range),
    then the practice's maximum per operation."""
    try:
        return amount_within_limit(positive_money(text), practice=practice)
    except InvalidInput as exc:
        errors.add(line, exc.message)
    return None


# --- checking against the books, in SQL -----------------------------------------------------------------------

MATCH_SQL = [
    "ANALYZE credit_import_stage",
    # one query for the account numbers (the practice's unique index)
    """UPDATE credit_import_stage s SET patient_id = p.id FROM ledger_patient p
        WHERE p.practice_id = %(practice)s AND p.account_number = s.account_number""",
    # one for the visits on the dates given: the patient's first visit that day
    """UPDATE credit_import_stage s SET encounter_id = e.id
         FROM (SELECT DISTINCT ON (e.patient_id, e.date_of_service) e.id, e.patient_id, e.date_of_service
                 FROM ledger_encounter e
                 JOIN (SELECT DISTINCT patient_id, dos FROM credit_import_stage
                        WHERE dos IS NOT NULL AND patient_id IS NOT NULL) w
                   ON w.patient_id = e.patient_id AND w.dos = e.date_of_service
                ORDER BY e.patient_id, e.date_of_service, e.id) e
        WHERE s.patient_id = e.patient_id AND s.dos = e.date_of_service""",
]

PROBLEMS_SQL = """
SELECT line, CASE WHEN patient_id IS NULL THEN 'unknown patient account number ''' || account_number || ''''
                  ELSE 'the patient has no visit on ' || to_char(dos, 'YYYY-MM-DD') END
  FROM credit_import_stage
 WHERE account_number <> '' AND (patient_id IS NULL OR (dos IS NOT NULL AND encounter_id IS NULL))"""


def _book_problems(cur) -> tuple[list[LineError], int]:
    cur.execute(f"SELECT count(*) FROM ({PROBLEMS_SQL}) p")
    count = cur.fetchone()[0]
    if not count:
        return [], 0
    cur.execute(f"{PROBLEMS_SQL} ORDER BY line LIMIT %s", [ERRORS_LISTED])
    return [LineError(line, message) for line, message in cur.fetchall()], count


# --- the window (separation of duties) ---------------------------------------------------------------------

# What a patient was credited by hand over the window: manual credits asked for (waiting or
# approved) and lines of imports (waiting or imported); rejected ones do not count.
WINDOW_SQL = """
SELECT patient_id, SUM(amount) FROM (
    SELECT m.patient_id, m.amount FROM credits_manualcreditrequest m
     WHERE m.patient_id IN ({patients}) AND m.state IN ('pending', 'approved') AND m.requested_at >= %(since)s
    UNION ALL
    SELECT r.patient_id, r.amount FROM credits_creditimportrow r
      JOIN credits_creditimport i ON i.id = r.credit_import_id
     WHERE r.patient_id IN ({patients}) AND i.state IN ('pending', 'imported') AND i.created_at >= %(since)s
) t GROUP BY patient_id"""


def window_since(practice: Practice):
    return timezone.now() - timedelta(days=practice.approval_window_days)


def manual_credit_window_total(*, practice: Practice, patient_id: int) -> Decimal:
    """What the patient was credited by hand (manual credits, imports) over the practice's approval
    window; the caller holds the patient's lock, so two requests for one patient add up."""
    with connection.cursor() as cur:
        cur.execute(WINDOW_SQL.format(patients="%(patient)s"), {"patient": patient_id, "since": window_since(practice)})
        row = cur.fetchone()
    return row[1] if row else Decimal("0.00")


def _needs_approval(cur, *, practice: Practice, total: Decimal) -> bool:
    """Above the limit: the file's total, or one patient's lines plus their window."""
    limit = practice.manual_credit_approval_limit
    if total > limit:
        return True
    cur.execute(f"""
        SELECT 1 FROM (SELECT patient_id, SUM(amount) AS amount FROM credit_import_stage GROUP BY patient_id) f
          LEFT JOIN ({WINDOW_SQL.format(patients="SELECT patient_id FROM credit_import_stage")}) w (patient_id, amount)
                 ON w.patient_id = f.patient_id
         WHERE f.amount + COALESCE(w.amount, 0) > %(limit)s LIMIT 1""",
                {"since": window_since(practice), "limit": limit})
    return cur.fetchone() is not None


def _lock_patients_of(cur, patients_sql: str, params) -> None:
    # the first lock every money service takes, for all the import's patients at once, ascending
    cur.execute(lock_sql("patients", where=f"id IN ({patients_sql})"), params)


# --- the import -----------------------------------------------------------------------------------------------

def credit_import_create(*, practice_id: int, data, filename: str, actor,
                       reason: str = "Credits imported from CSV") -> ImportResult:
    """Import credits in bulk from a CSV file (`data`: bytes, or a binary file such as an upload).
    Every line is validated first and every problem reported at once (`file_problems`: an
    InvalidInput on `file` listing the lines); one bad line refuses the whole file and nothing is
    written. The same file twice is refused as a duplicate. Within the practice's limit the credits
    are created at once; above it the import waits for a manager (the result's `pending`)."""
    reason = require_reason(reason)
    filename = (filename or "upload.csv").strip()[:255] or "upload.csv"
    ensure_staff(actor, practice_id)
    practice = Practice.objects.filter(pk=practice_id).first()
    if practice is None:
        raise NotFound(f"unknown practice {practice_id}", field="practice")
    digest, size = _digest_and_size(data)
    if size > max_bytes():
        raise InvalidInput(f"{filename}: larger than {max_bytes():,} bytes (SETTLE_CSV_IMPORT_MAX_BYTES); split the "
                           "file", field="file", code="too_large")
    _refuse_duplicate(practice_id, digest, filename)
    return _import_tx(practice=practice, data=data, digest=digest, filename=filename, actor=actor, reason=reason)


def _refuse_duplicate(practice_id: int, digest: str, filename: str) -> None:
    earlier = CreditImport.objects.filter(practice_id=practice_id, sha256=digest).first()
    if earlier is not None:
        raise Duplicate(f"{filename} was already imported (import #{earlier.pk}, "
                        f"{earlier.get_state_display().lower()})", field="file")


@transaction.atomic(durable=True)
def _import_tx(*, practice: Practice, data, digest: str, filename: str, actor, reason: str) -> ImportResult:
    errors = _Errors()
    with connection.cursor() as cur:
        cur.execute(STAGE_SQL)
        rows = _read_into_stage(cur, data=data, practice=practice, errors=errors)
        if errors.count and not rows:  # the header, or the file's text
            raise file_problems(filename, errors.listed, errors.count)
        if not rows:
            raise InvalidInput(f"{filename}: no credits in the file", field="file")
        for sql in MATCH_SQL:
            cur.execute(sql, {"practice": practice.pk})
        found, found_count = _book_problems(cur)
        if errors.count or found_count:
            listed = list(heapq.merge(errors.listed, found))[:ERRORS_LISTED]
            raise file_problems(filename, listed, errors.count + found_count)
        _lock_patients_of(cur, "SELECT patient_id FROM credit_import_stage", [])
        cur.execute("SELECT SUM(amount) FROM credit_import_stage")
        total = cur.fetchone()[0]
        needs = _needs_approval(cur, practice=practice, total=total)
        batch = CreditImport(practice=practice, filename=filename, sha256=digest, rows=rows, total=total,
                             reason=reason, needs_approval=needs, created_by=actor)
        try:
            with transaction.atomic():
                save_with_history(batch, actor=actor, reason=f"{reason} ({filename}, {rows} line(s), {total})"
                                       + (": waits for a manager's approval" if needs else ""))
        except IntegrityError:
            raise Duplicate(f"{filename} was already imported", field="file") from None
        cur.execute("""INSERT INTO credits_creditimportrow (credit_import_id, line, patient_id, encounter_id, amount,
                                                             note)
                       SELECT %s, line, patient_id, encounter_id, amount, note FROM credit_import_stage ORDER BY line""",
                    [batch.pk])
        cur.execute("DROP TABLE credit_import_stage")
        if not needs:
            batch.approve(by=actor, note="within the practice's limit")
            save_with_history(batch, actor=actor, reason="Imported at once: within the practice's limit")
            _create_credits(cur, batch=batch, actor=actor)
    return ImportResult(batch=batch)


# --- approval -------------------------------------------------------------------------------------------------

def _batch(import_id) -> CreditImport:
    batch = CreditImport.objects.filter(pk=import_id).first()
    if batch is None:
        raise NotFound(f"unknown credit import {import_id}", field="credit_import")
    return batch


@transaction.atomic(durable=True)
def credit_import_approve(*, import_id: int, actor, reason: str = "") -> CreditImport:
    """A manager other than the importer approves a waiting import: its credits are created now."""
    batch = _batch(import_id)
    ensure_approver(actor, practice_id=batch.practice_id, requested_by_id=batch.created_by_id, what="credit import")
    # the import before its patients (ledger/locks.py ORDER): two approvals of one import queue on it
    batch = lock(credit_imports=[batch.pk]).credit_imports[batch.pk]
    with connection.cursor() as cur:
        _lock_patients_of(cur, "SELECT patient_id FROM credits_creditimportrow WHERE credit_import_id = %s",
                          [batch.pk])
        if batch.state != CreditImport.State.PENDING:
            raise RuleViolation(f"import #{batch.pk} is {batch.get_state_display().lower()}; only a waiting import is "
                                "approved", field="credit_import")
        reason = (reason or "").strip()
        batch.approve(by=actor, note=reason)
        save_with_history(batch, actor=actor, reason=f"Approved: {reason}" if reason else "Approved")
        _create_credits(cur, batch=batch, actor=actor)
    return batch


@transaction.atomic(durable=True)
def credit_import_reject(*, import_id: int, actor, reason: str) -> CreditImport:
    """A manager other than the importer rejects a waiting import: no credit is ever created from
    it; its lines stay as the record of what was asked."""
    reason = require_reason(reason)
    batch = _batch(import_id)
    ensure_approver(actor, practice_id=batch.practice_id, requested_by_id=batch.created_by_id, what="credit import")
    batch = lock(credit_imports=[batch.pk]).credit_imports[batch.pk]
    if batch.state != CreditImport.State.PENDING:
        raise RuleViolation(f"import #{batch.pk} is {batch.get_state_display().lower()}; only a waiting import is "
                            "rejected", field="credit_import")
    batch.reject(by=actor, note=reason)
    save_with_history(batch, actor=actor, reason=f"Rejected: {reason}")
    return batch


# --- writing the credits, set-based ----------------------------------------------------------------------------

def _credit_history_sql() -> str:
    """Copy the new credits into django-simple-history's table, each with its own reason (the line)."""
    hist = Credit.history.model
    skip = {"history_id", "history_date", "history_change_reason", "history_type", "history_user"}
    cols = [f.column for f in hist._meta.concrete_fields if f.name not in skip]
    return (f"INSERT INTO {hist._meta.db_table} ({', '.join(cols)}, history_date, history_change_reason, "
            f"history_type, history_user_id) "
            f"SELECT {', '.join('c.' + col for col in cols)}, %(now)s, "
            f"%(reason)s::text || ' (' || %(filename)s::text || ' line ' || n.line || ')', '+', %(user)s "
            f"FROM credits_credit c JOIN credit_import_new n ON n.credit_id = c.id")


CREATE_SQL = [
    # ids from the sequence first, so every line knows its credit
    """CREATE TEMP TABLE credit_import_new ON COMMIT DROP AS
       SELECT r.id AS row_id, nextval(pg_get_serial_sequence('credits_credit', 'id')) AS credit_id, r.line,
              r.patient_id, r.encounter_id, r.amount, r.note
         FROM credits_creditimportrow r WHERE r.credit_import_id = %(batch)s ORDER BY r.line""",
    """INSERT INTO credits_credit (id, practice_id, patient_id, source, state, amount, on_hand, refund_hold,
                                   applied_amount, refunded_amount, removed_amount, locked_encounter_id,
                                   origin_encounter_id, payment_id, note, created_at, created_by_id)
       SELECT credit_id, %(practice)s, patient_id, 'import',
              CASE WHEN encounter_id IS NULL THEN 'available' ELSE 'locked' END, amount, amount, 0, 0, 0, 0,
              encounter_id, encounter_id, NULL, note, %(now)s, %(created_by)s
         FROM credit_import_new ORDER BY credit_id""",
    """UPDATE credits_creditimportrow r SET credit_id = n.credit_id FROM credit_import_new n WHERE r.id = n.row_id""",
    # one journal entry per patient: credit adjustments debited, each credit's liability credited
    "CREATE TEMP TABLE credit_import_entries (id bigint, patient_id bigint) ON COMMIT DROP",
    """WITH ins AS (
           INSERT INTO ledger_journalentry (practice_id, kind, memo, patient_id, created_by_id, created_at)
           SELECT %(practice)s, 'manual_credit', %(memo)s, patient_id, %(user)s, %(now)s
             FROM (SELECT DISTINCT patient_id FROM credit_import_new) d ORDER BY patient_id
           RETURNING id, patient_id)
       INSERT INTO credit_import_entries SELECT id, patient_id FROM ins""",
    """INSERT INTO ledger_journalline (entry_id, practice_id, account, amount, patient_id, encounter_id, credit_id)
       SELECT e.id, %(practice)s, 'credit_adjustments', SUM(n.amount), n.patient_id, NULL::bigint, NULL::bigint
         FROM credit_import_new n JOIN credit_import_entries e ON e.patient_id = n.patient_id
        GROUP BY e.id, n.patient_id
       UNION ALL
       SELECT e.id, %(practice)s, CASE WHEN n.encounter_id IS NULL THEN 'credits_available' ELSE 'credits_locked' END,
              -n.amount, n.patient_id, n.encounter_id, n.credit_id
         FROM credit_import_new n JOIN credit_import_entries e ON e.patient_id = n.patient_id""",
    "DROP TABLE credit_import_entries",
]


def _create_credits(cur, *, batch: CreditImport, actor) -> None:
    """The import's credits, from its lines, in a few statements whatever their number (the caller
    holds the patients' locks): credits, their history, the journal."""
    reason = batch.reason or "Credits imported from CSV"
    if batch.needs_approval:
        reason = f"{reason}; approved by {actor.get_username()}"
    params = {"batch": batch.pk, "practice": batch.practice_id, "now": timezone.now(), "user": actor.pk,
              "created_by": batch.created_by_id, "memo": f"{reason} ({batch.filename})", "reason": reason,
              "filename": batch.filename}
    for sql in CREATE_SQL[:3]:
        cur.execute(sql, params)
    cur.execute(_credit_history_sql(), params)
    for sql in CREATE_SQL[3:]:
        cur.execute(sql, params)
    cur.execute("DROP TABLE credit_import_new")


def import_rows_of(batch: CreditImport):
    """The lines of an import in file order, with their patient and credit."""
    return CreditImportRow.objects.filter(credit_import=batch).select_related("patient", "credit").order_by("line")
