"""Receiving payers' remittance files (X12 835), issue 3.

`remittance_file_receive` reads the whole file first (remittances/x12): a file that cannot be read is
recorded as refused with the segment and byte position of the fault, keeping only the first
`REFUSED_KEEP_BYTES` of it, and nothing else is written. A readable file is stored byte for byte with
one row per payment (transaction set), claim and PLB adjustment, in one transaction. The same bytes
again, or a payment already received (same sender ISA06, ISA13, ST02 and TRN02, also when repeated
inside one file), post nothing and are reported as duplicates (their bytes are not kept again: the
duplicate points at the original). `remittance_file_import` is receive-then-post, the one way in for
`import_835`, the admin upload and the API upload."""

import json
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction

from ledger.access import ensure_staff
from ledger.bulk import copy_rows, write_bytes
from ledger.errors import NotFound
from ledger.models import Payer, Practice
from ledger.money import ZERO
from remittances.models import (
    RemittanceAdjustment,
    RemittanceClaim,
    RemittanceFile,
    RemittanceTransaction,
)
from remittances.posting import PostResult, remittance_file_post
from remittances.x12 import errors as x12_errors
from remittances.x12.reader import Reader835

REFUSED_KEEP_BYTES = 64 * 1024  # what is kept of a refused file: its hash, size, the error and these first bytes


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


def remittance_file_receive(*, practice_id: int, data: bytes, filename: str, actor) -> ReceiveResult:
    """Read and store one 835 file (nothing is posted yet; see `remittance_file_post`)."""
    ensure_staff(actor, practice_id)
    practice = Practice.objects.filter(pk=practice_id).first()
    if practice is None:
        raise NotFound(f"unknown practice {practice_id}", field="practice")
    try:
        return _receive(practice, data, filename, actor)
    except IntegrityError:
        # the same file or payment was being stored by another request at this very moment: the unique
        # indexes made us wait for it and refused ours; read again, it is a duplicate now
        return _receive(practice, data, filename, actor)


def _receive(practice, data: bytes, filename: str, actor) -> ReceiveResult:
    reader = Reader835(data, filename=filename, keep_claims=False, keep_transactions=False)
    base = dict(practice=practice, filename=filename[:255], sha256=reader.sha256, size=len(data), received_by=actor)

    existing = RemittanceFile.objects.filter(practice=practice, sha256=reader.sha256,
                                             status__in=[RemittanceFile.Status.RECEIVED,
                                                         RemittanceFile.Status.POSTED]).defer("content").first()
    if existing is not None:
        dup = RemittanceFile.objects.create(status=RemittanceFile.Status.DUPLICATE, duplicate_of=existing, content=b"",
                                            transaction_count=existing.transaction_count,
                                            claim_count=existing.claim_count, paid_total=existing.paid_total,
                                            plb_total=existing.plb_total,
                                            warnings=[{"message": f"the same file was received on "
                                                                  f"{existing.received_at:%Y-%m-%d %H:%M} "
                                                                  f"(#{existing.pk}); nothing posted"}], **base)
        return ReceiveResult(file=dup, status="duplicate", warnings=dup.warnings)

    # one pass: read and store together, in a savepoint; a fault (or a file of duplicates only) rolls
    # all of it back and only the record of the refusal (or of the duplicate) is written
    try:
        with transaction.atomic():
            f, warnings = _store(practice, reader, data, base)
    except x12_errors.X12Error as exc:
        err = {"segment": exc.segment, "segment_id": exc.segment_id, "position": exc.position,
               "element": exc.element, "message": exc.message}
        refused = RemittanceFile.objects.create(status=RemittanceFile.Status.REFUSED, errors=[err],
                                                content=data[:REFUSED_KEEP_BYTES], **base)
        return ReceiveResult(file=refused, status="refused", errors=[err])
    except _OnlyDuplicates as only:
        dup = RemittanceFile.objects.create(status=RemittanceFile.Status.DUPLICATE, content=b"",
                                            duplicate_of_id=only.original_id, warnings=only.warnings,
                                            **only.totals, **base)
        return ReceiveResult(file=dup, status="duplicate", warnings=only.warnings)
    return ReceiveResult(file=f, status="received", warnings=warnings)


class _OnlyDuplicates(Exception):
    def __init__(self, *, totals: dict, warnings: list, original_id):
        self.totals, self.warnings, self.original_id = totals, warnings, original_id


COPY_CHUNK = 5000


def _store(practice, reader, data: bytes, base: dict):
    """Read the file once, storing as it goes: the file, each new payment (transaction set) when
    its first claim or its end is read, its claims (COPY, by chunks: memory stays flat as files
    grow) and PLB rows. Payments already received are skipped with a warning. Raises X12Error
    for an unreadable file and _OnlyDuplicates when nothing of it is new."""
    f = RemittanceFile.objects.create(status=RemittanceFile.Status.RECEIVED, content=b"", **base)
    write_bytes(RemittanceFile._meta.db_table, "content", f.pk, data)  # the file, byte for byte
    payers = {p.payer_identifier: p for p in Payer.objects.filter(practice=practice).exclude(payer_identifier="")}
    rows: dict[int, RemittanceTransaction | None] = {}  # id() of the reader's payment -> its row (None: duplicate)
    seen, headers, dup_warnings, first_dup, chunk = set(), [], [], None, []

    def payment_row(t):
        nonlocal first_dup
        if id(t) in rows:
            return rows[id(t)]
        sender = _sender_of(reader, t)
        key = _tx_key(sender, t.interchange_control_number, t.control_number, t.trace_number)
        earlier = None if key in seen else RemittanceTransaction.objects.filter(
            practice=practice, sender_id=key[0], interchange_control=key[1], control_number=key[2],
            trace_number=key[3]).values_list("file_id", flat=True).first()
        if key in seen or earlier is not None:
            first_dup = first_dup or earlier or f.pk
            dup_warnings.append({"segment": t.segment, "segment_id": "ST", "position": t.position, "code": "duplicate",
                                 "message": f"payment {t.trace_number or '(no TRN02)'} of interchange "
                                            f"{t.interchange_control_number or '-'} was already received "
                                            f"{'earlier in this file' if key in seen else 'in an earlier file'}; "
                                            "skipped"})
            rows[id(t)] = None
            return None
        seen.add(key)
        payer_id = t.trace_payer_id or (t.payer.id if t.payer else "")
        rows[id(t)] = RemittanceTransaction.objects.create(
            file=f, practice=practice, sender_id=sender, interchange_control=t.interchange_control_number or "",
            control_number=t.control_number or "", trace_number=t.trace_number or "",
            payer_name=t.payer_name[:200], payer_identifier=payer_id[:80],
            payer=payers.get(payer_id) or payers.get(t.payer.id if t.payer else "") or
            Payer.objects.filter(practice=practice, name__iexact=t.payer_name).first(),
            payment_method=t.payment_method[:8], payment_date=t.payment_date, total_paid=t.signed_total_paid,
            plb_total=ZERO, claim_count=0, segment=t.segment)
        return rows[id(t)]

    def flush_claims():
        copy_rows("ledger_remittanceclaim", CLAIM_COPY_COLUMNS, chunk)
        chunk.clear()

    for item in reader._run():
        if type(item).__name__ == "Claim":
            tx = payment_row(item.transaction)
            if tx is not None:  # a duplicate payment's claims are not stored
                chunk.append(_claim_row(item, f.pk, tx.pk, practice.pk))
                if len(chunk) >= COPY_CHUNK:
                    flush_claims()
            continue
        t = item  # a payment read to its SE: its counts, totals and PLB rows are known now
        headers.append(t)
        tx = payment_row(t)
        if tx is not None:
            flush_claims()  # its claims go in before anything refers to them
            RemittanceTransaction.objects.filter(pk=tx.pk).update(total_paid=t.signed_total_paid,
                                                                  plb_total=t.plb_total, claim_count=t.claim_count)
            RemittanceAdjustment.objects.bulk_create([
                RemittanceAdjustment(transaction=tx, practice=practice, code=p.code[:8], reference=p.reference[:80],
                                     amount=p.amount, segment=p.segment) for p in t.plb])
    flush_claims()
    warnings = [_warning_dict(w) for w in reader.warnings] + dup_warnings
    totals = dict(transaction_count=len(headers), claim_count=sum(t.claim_count for t in headers),
                  paid_total=sum((t.signed_total_paid for t in headers), ZERO),
                  plb_total=sum((t.plb_total for t in headers), ZERO),
                  skipped_transactions=reader.skipped_transactions, duplicate_transactions=len(dup_warnings))
    if headers and len(dup_warnings) == len(headers):
        raise _OnlyDuplicates(totals=totals, warnings=warnings,
                              original_id=first_dup if first_dup != f.pk else None)
    RemittanceFile.objects.filter(pk=f.pk).update(warnings=warnings, **totals)
    f.refresh_from_db(fields=["warnings", *totals])
    return f, warnings


def _sender_of(reader, t) -> str:
    for ic in reader.interchanges:
        if ic.control_number == t.interchange_control_number:
            return ic.sender_id or ""
    return ""


CLAIM_COPY_COLUMNS = ["file_id", "transaction_id", "practice_id", "claim_number", "status_code", "charge", "paid",
                      "patient_responsibility", "pr_adjustments", "other_adjustments", "payer_claim_number",
                      "patient_name", "member_id", "service_date", "adjustments", "segment", "position", "state",
                      "note"]


def _claim_row(c, file_id: int, tx_id: int, practice_id: int) -> tuple:
    pr_adj = c.adjustment_total_for("PR")
    patient = c.patient
    return (file_id, tx_id, practice_id, c.claim_id[:64], c.status_code[:4], c.charge, c.paid,
            c.patient_responsibility, pr_adj, c.adjustment_total - pr_adj, c.payer_claim_number[:64],
            (f"{patient.last}, {patient.first}" if patient else "")[:200], (patient.id if patient else "")[:80],
            c.statement_from or next((s.service_date for s in c.services if s.service_date), None),
            json.dumps([{"group": a.group, "reason": a.reason, "amount": str(a.amount)} for a in c.all_adjustments()]),
            c.segment, c.position, RemittanceClaim.State.PENDING, "")


@dataclass
class ImportResult:
    received: ReceiveResult
    posted: "PostResult | None" = None
    resumed_file_id: int | None = None  # a duplicate of a file whose posting had not finished: finished now

    def as_dict(self) -> dict:
        out = self.received.as_dict()
        if self.posted is not None:
            out["posted"] = self.posted.by_state
            out["payer_credits"] = self.posted.payer_credits
        if self.resumed_file_id is not None:
            out["resumed_file"] = self.resumed_file_id
        return out


def remittance_file_import(*, practice_id: int, data: bytes, filename: str, actor, post: bool = True,
                      batch_size: int | None = None, progress=None) -> ImportResult:
    """Receive a file and (with `post`) post it, batch by batch. The same file again while its first
    posting never finished (a process killed mid-file) finishes that posting: nothing twice, nothing
    left behind. The one way in for import_835, the admin upload and the API upload."""
    received = remittance_file_receive(practice_id=practice_id, data=data, filename=filename, actor=actor)
    result = ImportResult(received=received)
    if not post:
        return result
    target = None
    if received.status == "received":
        target = received.file.pk
    elif received.status == "duplicate" and received.file.duplicate_of_id is not None and \
            RemittanceFile.objects.filter(pk=received.file.duplicate_of_id,
                                          status=RemittanceFile.Status.RECEIVED).exists():
        target = result.resumed_file_id = received.file.duplicate_of_id
    if target is not None:
        if progress is not None:
            progress.total = max(1, RemittanceClaim.objects.filter(file_id=target,
                                                                   state=RemittanceClaim.State.PENDING).count())
        result.posted = remittance_file_post(file_id=target, actor=actor, progress=progress, batch_size=batch_size)
        if received.status == "received":
            received.file.refresh_from_db(fields=["status", "posted_at"])
            received.status = received.file.status
    return result
