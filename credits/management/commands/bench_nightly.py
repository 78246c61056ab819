import json
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from credits.models import CreditApplication
from credits.nightly import DEFAULT_BATCH, nightly_apply
from ledger.benchdata import build_books, peak_mb


class Command(BaseCommand):
    help = ("Benchmark the nightly application: build synthetic books (3 credits and 2 open balances per patient) in "
            "a practice of their own, run the nightly run, and compare with PostgreSQL's raw rate for the minimum "
            "work (one set-based UPDATE of the credits and one INSERT of the applications, same row count, rolled "
            "back). Last line: one JSON object.")

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, default=100_000)
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)

    def handle(self, *args, patients, batch_size, **options):
        # measure production behaviour: with DEBUG on Django keeps the last 9,000 statements (bulk inserts
        # included) in memory, which would be counted as the benchmark's own memory
        settings.DEBUG = False
        t0 = time.perf_counter()
        practice, _ = build_books(patients=patients, encounters_per_patient=2, credits_per_patient=3)
        build_s = time.perf_counter() - t0
        self.stdout.write(f"built {patients} patients, {2 * patients} open balances, {3 * patients} credits "
                          f"in {build_s:.1f} s (practice {practice.pk})")

        t0 = time.perf_counter()
        result = nightly_apply(practice_id=practice.pk, batch_size=batch_size)
        seconds = time.perf_counter() - t0
        applications = result.application_count
        rate = applications / seconds if seconds else 0.0
        self.stdout.write(f"nightly run: {applications} applications ({result.applied_total}) and "
                          f"{result.released_credits} released in {seconds:.2f} s = {rate:,.0f} applications/s")

        raw_s = self._raw(practice.pk, result.run.pk)
        raw_rate = applications / raw_s if raw_s else 0.0
        ratio = rate / raw_rate if raw_rate else 0.0
        self.stdout.write(f"raw PostgreSQL, same rows (UPDATE credits + INSERT applications): {raw_s:.2f} s = "
                          f"{raw_rate:,.0f} rows/s; ratio {ratio:.2f}")
        self.stdout.write(json.dumps({
            "patients": patients, "applications": applications, "seconds": round(seconds, 3),
            "applications_per_s": round(rate, 1), "raw_per_s": round(raw_rate, 1), "ratio": round(ratio, 3),
            "peak_mb": peak_mb(),
        }))

    def _raw(self, practice_id: int, run_id: int) -> float:
        """The minimum work for the same applications (with its foreign-key checks), timed and rolled back."""
        rows = CreditApplication.objects.filter(nightly_run_id=run_id).count()
        if not rows:
            return 0.0
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("""CREATE TEMP TABLE raw_apps ON COMMIT DROP AS
                           SELECT practice_id, patient_id, encounter_id, amount, credit_id, reason, created_by_id
                             FROM credits_creditapplication WHERE nightly_run_id = %s""", [run_id])
            # foreign keys are checked at commit; this transaction rolls back, so check them now, as the run does
            cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
            t0 = time.perf_counter()
            cur.execute("""UPDATE credits_credit c SET applied_amount = c.applied_amount, on_hand = c.on_hand
                             FROM raw_apps a WHERE c.id = a.credit_id""")
            cur.execute("""INSERT INTO credits_creditapplication (practice_id, patient_id, encounter_id, amount,
                                   credit_id, reason, created_at, created_by_id)
                           SELECT practice_id, patient_id, encounter_id, amount, credit_id, reason, now(),
                                  created_by_id FROM raw_apps""")
            elapsed = time.perf_counter() - t0
            transaction.set_rollback(True)
        return elapsed
