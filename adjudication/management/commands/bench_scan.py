import json
import time
import tracemalloc

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from adjudication.models import Case
from adjudication.scan import DEFAULT_BATCH, scan_practice
from credits.nightly import nightly_apply
from ledger.access import system_user
from ledger.benchdata import build_books, peak_mb


class Command(BaseCommand):
    help = ("Benchmark the credit-balance scan: build synthetic books in a practice of their own (per patient two "
            "visits with a claim and an open balance, a credit locked to the first visit and available credits; a "
            "payer credit on every 20th patient's first claim, every 50th patient's second visit paid beyond its "
            "charge), run a first scan, a rescan that finds nothing new, then (unless --no-close) the nightly "
            "application and a scan that resolves the cases whose money it used. Prints the seconds of each scan, "
            "the cases opened and closed, and the peak memory (Python allocations by tracemalloc, and the process's "
            "peak RSS). Last line: one JSON object.")

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, default=100_000)
        parser.add_argument("--credits-per-patient", type=int, default=2,
                            help="the first is locked to the patient's first visit, the rest available")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
        parser.add_argument("--no-close", action="store_true", help="skip the nightly application and the closing scan")

    def handle(self, *args, patients, credits_per_patient, batch_size, no_close, **options):
        if patients < 1 or credits_per_patient < 1 or batch_size < 1:
            raise CommandError("--patients, --credits-per-patient and --batch-size must be at least 1")
        settings.DEBUG = False  # Django would keep every statement in memory and count it as ours
        t0 = time.perf_counter()
        practice, payer = build_books(patients=patients, encounters_per_patient=2,
                                      credits_per_patient=credits_per_patient, claim_prefix="SCN")
        payer_credits, overpaid = self._more_books(practice.pk, payer.pk)
        build_s = time.perf_counter() - t0
        available = patients * (credits_per_patient - 1)
        self.stdout.write(f"built {patients} patients, {available} available and {patients} locked credits, "
                          f"{payer_credits} payer credits, {overpaid} visits paid beyond their charge in "
                          f"{build_s:.1f} s (practice {practice.pk})")

        tracemalloc.start()
        first, first_s, first_mb = self._scan(practice.pk, batch_size)
        self.stdout.write(f"first scan: {first.opened} cases opened ({first.opened_patient_credits} patient credits, "
                          f"{first.opened_payer_credits} payer credits, {first.opened_encounters} visits), "
                          f"{first.clocks_updated} clocks, in {first_s:.2f} s = {first.opened / first_s:,.0f} cases/s; "
                          f"Python peak {first_mb:.1f} MB")
        again, again_s, again_mb = self._scan(practice.pk, batch_size)
        self.stdout.write(f"rescan: {again.opened} opened, {again.closed} closed in {again_s:.2f} s; "
                          f"Python peak {again_mb:.1f} MB")
        out = {
            "patients": patients, "batch_size": batch_size, "cases_opened": first.opened,
            "first_scan_s": round(first_s, 3), "rescan_s": round(again_s, 3), "rescan_opened": again.opened,
            "first_python_peak_mb": round(first_mb, 1), "rescan_python_peak_mb": round(again_mb, 1),
        }
        if not no_close:
            t1 = time.perf_counter()
            run = nightly_apply(practice_id=practice.pk, batch_size=2000)
            nightly_s = time.perf_counter() - t1
            closing, closing_s, closing_mb = self._scan(practice.pk, batch_size)
            self.stdout.write(f"nightly application: {run.application_count} applications in {nightly_s:.1f} s; "
                              f"then the scan resolved {closing.closed} cases whose money is gone in {closing_s:.2f} s; "
                              f"Python peak {closing_mb:.1f} MB")
            out.update({"closed": closing.closed, "closing_scan_s": round(closing_s, 3),
                        "closing_python_peak_mb": round(closing_mb, 1)})
        tracemalloc.stop()
        out["open_cases"] = Case.objects.filter(practice_id=practice.pk).exclude(state="resolved").count()
        out["peak_rss_mb"] = peak_mb()
        out["steps"] = {"first": first.steps, "rescan": again.steps, **({} if no_close else {"closing": closing.steps})}
        self.stdout.write(json.dumps(out))

    def _scan(self, practice_id: int, batch_size: int):
        tracemalloc.reset_peak()
        t0 = time.perf_counter()
        result = scan_practice(practice_id=practice_id, reason="Benchmark scan", batch_size=batch_size)
        seconds = time.perf_counter() - t0
        return result, seconds, tracemalloc.get_traced_memory()[1] / 1e6

    def _more_books(self, practice_id: int, payer_id: int) -> tuple[int, int]:
        """Payer credits (paid twice) on every 20th patient's first claim and a payment beyond the
        charge on every 50th patient's second visit, with their journal lines (the books stay
        balanced and agree with the rows)."""
        p = {"practice": practice_id, "payer": payer_id, "user": system_user().pk}
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("""
                CREATE TEMP TABLE bench_claims ON COMMIT DROP AS
                SELECT cl.id, e.patient_id, row_number() OVER (PARTITION BY e.patient_id ORDER BY e.id) AS k,
                       dense_rank() OVER (ORDER BY e.patient_id) AS n, cl.paid_amount
                  FROM ledger_claim cl JOIN ledger_encounter e ON e.id = cl.encounter_id
                 WHERE cl.practice_id = %(practice)s""", p)
            cur.execute("""
                INSERT INTO credits_payercredit (practice_id, payer_id, claim_id, payer_claim_number, reason, amount,
                                                 resolved_amount, state, note, reference, created_at, created_by_id)
                SELECT %(practice)s, %(payer)s, b.id, 'PCN-' || b.id, 'duplicate_payment', b.paid_amount, 0, 'open',
                       'bench', '', now() - interval '3 days', %(user)s
                  FROM bench_claims b WHERE b.k = 1 AND b.n %% 20 = 0 AND b.paid_amount > 0 ORDER BY b.id""", p)
            payer_credits = cur.rowcount
            # the payer pays 230.00 on a 200.00 visit (its PR stays owed: the visit is paid beyond its charge)
            cur.execute("""UPDATE ledger_claim cl SET paid_amount = 230.00
                             FROM bench_claims b WHERE b.id = cl.id AND b.k = 2 AND b.n %% 50 = 0""", p)
            overpaid = cur.rowcount
            cur.execute("""
                WITH entry AS (INSERT INTO ledger_journalentry (practice_id, kind, memo, patient_id, created_by_id,
                                                                created_at)
                               VALUES (%(practice)s, 'payer_credit', 'bench payer credits and overpayments', NULL,
                                       %(user)s, now()) RETURNING id)
                INSERT INTO ledger_journalline (entry_id, practice_id, account, amount, patient_id, encounter_id,
                                                credit_id, payment_id, claim_id)
                SELECT entry.id, %(practice)s, 'contractual_adjustments', pc.amount, NULL::bigint, NULL::bigint,
                       NULL::bigint, NULL::bigint, pc.claim_id
                  FROM credits_payercredit pc, entry WHERE pc.practice_id = %(practice)s
                UNION ALL
                SELECT entry.id, %(practice)s, 'payer_credits', -pc.amount, NULL, NULL, NULL, NULL, pc.claim_id
                  FROM credits_payercredit pc, entry WHERE pc.practice_id = %(practice)s
                UNION ALL
                SELECT entry.id, %(practice)s, 'cash', 230.00 - b.paid_amount, NULL, NULL, NULL, NULL, b.id
                  FROM bench_claims b, entry WHERE b.k = 2 AND b.n %% 50 = 0
                UNION ALL
                SELECT entry.id, %(practice)s, 'charges_receivable', b.paid_amount - 230.00, NULL, cl.encounter_id,
                       NULL, NULL, b.id
                  FROM bench_claims b JOIN ledger_claim cl ON cl.id = b.id, entry WHERE b.k = 2 AND b.n %% 50 = 0""",
                        p)
            cur.execute("ANALYZE credits_payercredit; ANALYZE ledger_claim; ANALYZE adjudication_case")
        return payer_credits, overpaid
