import json
import os
import tempfile
import time
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from credits.csv_import import credit_import_approve, credit_import_create
from credits.models import Credit
from ledger.benchdata import new_practice, peak_mb
from ledger.models import Membership


class Command(BaseCommand):
    help = ("Benchmark the credit CSV import (credits/csv_import.py): a practice of its own with one patient per line "
            "(a fifth of the lines locked to a visit by date_of_service), a CSV file written to a temporary file, "
            "then credit_import_create on it: validation, the stage table, the credits, their history and the journal. "
            "With --approval the import waits for a manager and the approval (which creates the credits) is timed "
            "too. Last line: one JSON object (rows, seconds, rows_per_s, peak_mb).")

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=100_000)
        parser.add_argument("--approval", action="store_true",
                            help="Import above the practice's limit: it waits; a second manager approves it.")

    def handle(self, *args, rows, approval, **options):
        if rows < 1 or rows > settings.SETTLE_CSV_IMPORT_MAX_ROWS:
            raise CommandError(f"--rows must be between 1 and SETTLE_CSV_IMPORT_MAX_ROWS "
                               f"({settings.SETTLE_CSV_IMPORT_MAX_ROWS})")
        settings.DEBUG = False  # no query log counted as the benchmark's memory
        t0 = time.perf_counter()
        practice, importer, approver = self._books(rows, approval=approval)
        path = self._write_csv(practice.pk, rows)
        size = os.path.getsize(path)
        self.stdout.write(f"built {rows} patients and a {size / 1e6:.1f} MB CSV file in {time.perf_counter() - t0:.1f} s "
                          f"(practice {practice.pk})")
        try:
            with open(path, "rb") as data:
                t0 = time.perf_counter()
                result = credit_import_create(practice_id=practice.pk, data=data, filename=f"bench-{rows}.csv",
                                            actor=importer, reason="Benchmark import")
                import_s = time.perf_counter() - t0
        finally:
            os.unlink(path)
        approve_s = 0.0
        if approval:
            assert result.pending, "the benchmark import should wait for approval"
            t0 = time.perf_counter()
            credit_import_approve(import_id=result.batch.pk, actor=approver, reason="Benchmark approval")
            approve_s = time.perf_counter() - t0
        created = Credit.objects.filter(practice=practice, source=Credit.Source.IMPORT).count()
        if created != rows:
            raise CommandError(f"expected {rows} credits, found {created}")
        seconds = import_s + approve_s
        rate = rows / seconds if seconds else 0.0
        self.stdout.write(f"import: {rows} lines ({result.batch.total}) in {import_s:.2f} s"
                          + (f", approval {approve_s:.2f} s" if approval else "") + f" = {rate:,.0f} rows/s")
        self.stdout.write(json.dumps({
            "rows": rows, "seconds": round(seconds, 3), "import_seconds": round(import_s, 3),
            "approve_seconds": round(approve_s, 3), "rows_per_s": round(rate, 1), "peak_mb": peak_mb(),
        }))

    def _books(self, rows: int, *, approval: bool):
        practice, _ = new_practice("import")
        # within the limit the import is created at once; with --approval it waits for the second manager
        practice.manual_credit_approval_limit = Decimal("1.00") if approval else Decimal("999999999999.99")
        practice.save(update_fields=["manual_credit_approval_limit"])
        User = get_user_model()
        stamp = time.time_ns()
        importer = User.objects.create(username=f"bench-importer-{stamp}", is_staff=True)
        approver = User.objects.create(username=f"bench-approver-{stamp}", is_staff=True)
        Membership.objects.create(user=importer, practice=practice, role=Membership.Role.BILLING)
        Membership.objects.create(user=approver, practice=practice, role=Membership.Role.MANAGER)
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("""
                INSERT INTO ledger_patient (practice_id, account_number, first_name, last_name, email, member_id,
                                            exclude_from_auto_apply, created_at)
                SELECT %s, 'I' || lpad(g::text, 8, '0'), 'Pat', 'Import' || g, '', '', false, now()
                  FROM generate_series(1, %s) g""", [practice.pk, rows])
            # every fifth patient has a visit on 2026-01-05: their line locks the credit to it (no claim, no PR:
            # nothing to book for the visit itself)
            cur.execute("""
                INSERT INTO ledger_encounter (practice_id, patient_id, date_of_service, description, charge,
                                              estimated_pr, remittance_pr, applied_amount, written_off_amount,
                                              created_at)
                SELECT practice_id, id, date '2026-01-05', 'Office visit', 0, 0, NULL, 0, 0, now()
                  FROM ledger_patient WHERE practice_id = %s AND substr(account_number, 2)::int %% 5 = 0""",
                        [practice.pk])
        return practice, importer, approver

    @staticmethod
    def _write_csv(practice_id: int, rows: int) -> str:
        fd, path = tempfile.mkstemp(prefix="bench-import-", suffix=".csv")
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write("account_number,amount,note,date_of_service\n")
            for i in range(1, rows + 1):
                amount = f"{(i * 37) % 9000 // 100 + 1}.{i % 100:02d}"
                dos = "2026-01-05" if i % 5 == 0 else ""
                out.write(f"I{i:08d},{amount},Carried over from the old system (balance {i}),{dos}\n")
        return path
