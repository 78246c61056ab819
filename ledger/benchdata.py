"""Synthetic books for the benchmark commands, built with set-based SQL in a practice of their
own ("bench-..."), so benchmarks never touch real data. The journal stays balanced and agrees
with the rows it books (charges, remittance PR, credits), so the audits hold on bench data too.
Visits and credits get their "created" history row (by the system user, reason "bench"), as the
services write it, so reconciliation as of a date reads them. Each patient's setup is dated
(patient id mod 365) days back, journal entry and history alike, so the books have a year of days."""

import resource
import time

from django.db import connection, transaction

from ledger.access import system_user
from ledger.models import Payer, Practice


def new_practice(label: str) -> tuple[Practice, Payer]:
    practice = Practice.objects.create(name=f"bench-{label}-{time.time_ns()}", us_state="TX")
    payer = Payer.objects.create(practice=practice, name="Bench Payer", payer_type=Payer.Type.COMMERCIAL,
                                 payer_identifier="1999999999")
    return practice, payer


def build_books(*, patients: int, encounters_per_patient: int = 2, credits_per_patient: int = 3,
                finalized: bool = True, claim_prefix: str = "BCH") -> tuple[Practice, Payer]:
    """`patients` patients, each with `encounters_per_patient` visits (charge 200.00) with a claim
    each, and (with `finalized`) a remittance PR between 20 and 120 still owed; and
    `credits_per_patient` credits: the first locked to the patient's first visit, the rest
    available. Claim numbers are `<prefix>-<encounter id>`."""
    practice, payer = new_practice("books")
    user = system_user()
    p = {"practice": practice.pk, "payer": payer.pk, "n": patients, "e": encounters_per_patient,
         "c": credits_per_patient, "user": user.pk, "prefix": claim_prefix, "finalized": finalized}
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("""
            INSERT INTO ledger_patient (practice_id, account_number, first_name, last_name, email, member_id,
                                        exclude_from_auto_apply, created_at, address_line1, address_line2, city,
                                        us_state, postal_code)
            SELECT %(practice)s, 'B' || lpad(g::text, 8, '0'), 'Pat', 'Bench' || g, '', 'M' || g, false, now(),
                   g || ' Main St', '', 'Austin', 'TX', '78701'
              FROM generate_series(1, %(n)s) g""", p)
        cur.execute("""
            INSERT INTO ledger_encounter (practice_id, patient_id, date_of_service, description, charge, estimated_pr,
                                          remittance_pr, applied_amount, written_off_amount, created_at)
            SELECT %(practice)s, pt.id, date '2026-01-01' + (k * 7), 'Office visit', 200.00, 0.00,
                   CASE WHEN %(finalized)s THEN 20 + ((pt.id * 7 + k * 13) %% 101) END, 0, 0, now()
              FROM ledger_patient pt CROSS JOIN generate_series(1, %(e)s) k
             WHERE pt.practice_id = %(practice)s ORDER BY pt.id, k""", p)
        # fresh statistics before the joins below: planned on an "empty" encounter table, the credits'
        # LATERAL lookup of each patient's first visit scans every encounter per credit (hours at 1M)
        cur.execute("ANALYZE ledger_patient; ANALYZE ledger_encounter")
        cur.execute("""
            INSERT INTO ledger_claim (practice_id, encounter_id, payer_id, claim_number, payer_claim_number, state,
                                      billed_amount, paid_amount, adjustment_amount, patient_responsibility,
                                      remittance_count, submitted_at, finalized_at)
            SELECT %(practice)s, e.id, %(payer)s, %(prefix)s || '-' || e.id, '',
                   CASE WHEN %(finalized)s THEN 'paid' ELSE 'submitted' END, 200.00,
                   CASE WHEN %(finalized)s THEN 200.00 - e.remittance_pr ELSE 0 END, 0, e.remittance_pr,
                   CASE WHEN %(finalized)s THEN 1 ELSE 0 END, now(), CASE WHEN %(finalized)s THEN now() END
              FROM ledger_encounter e WHERE e.practice_id = %(practice)s ORDER BY e.id""", p)
        cur.execute("""
            INSERT INTO credits_credit (practice_id, patient_id, source, state, amount, on_hand, refund_hold,
                                        applied_amount, refunded_amount, removed_amount, locked_encounter_id,
                                        origin_encounter_id, payment_id, note, created_at, created_by_id)
            SELECT %(practice)s, pt.id, CASE WHEN k = 1 THEN 'held_payment' ELSE 'manual' END,
                   CASE WHEN k = 1 THEN 'locked' ELSE 'available' END, amt, amt, 0, 0, 0, 0,
                   CASE WHEN k = 1 THEN first_enc.id END, CASE WHEN k = 1 THEN first_enc.id END, NULL,
                   'bench', now() - make_interval(days => k), %(user)s
              FROM ledger_patient pt
              CROSS JOIN generate_series(1, %(c)s) k
              CROSS JOIN LATERAL (SELECT (10 + ((pt.id * 3 + k * 11) %% 50))::numeric(14,2) AS amt) a
              JOIN LATERAL (SELECT id FROM ledger_encounter WHERE patient_id = pt.id ORDER BY id LIMIT 1) first_enc
                ON true
             WHERE pt.practice_id = %(practice)s ORDER BY pt.id, k""", p)
        # their history ("created"), as every service writes it: reconciliation reads rows as of a date from it
        cur.execute("""
            INSERT INTO ledger_historicalencounter (id, date_of_service, description, charge, estimated_pr,
                   remittance_pr, applied_amount, written_off_amount, created_at, history_change_reason,
                   history_date, history_type, history_user_id, patient_id, practice_id)
            SELECT id, date_of_service, description, charge, estimated_pr, remittance_pr, applied_amount,
                   written_off_amount, created_at, 'bench', now() - make_interval(days => (patient_id %% 365)::int),
                   '+', %(user)s, patient_id, practice_id
              FROM ledger_encounter WHERE practice_id = %(practice)s""", p)
        cur.execute("""
            INSERT INTO credits_historicalcredit (id, source, state, amount, on_hand, refund_hold, applied_amount,
                   refunded_amount, removed_amount, note, created_at, history_change_reason, history_date,
                   history_type, created_by_id, history_user_id, locked_encounter_id, origin_encounter_id,
                   patient_id, payment_id, practice_id)
            SELECT id, source, state, amount, on_hand, refund_hold, applied_amount, refunded_amount, removed_amount,
                   note, created_at, 'bench', now() - make_interval(days => (patient_id %% 365)::int), '+',
                   created_by_id, %(user)s, locked_encounter_id,
                   origin_encounter_id, patient_id, payment_id, practice_id
              FROM credits_credit WHERE practice_id = %(practice)s""", p)
        # the journal: one setup entry per patient with its charges, PR and credits
        cur.execute("CREATE TEMP TABLE bench_entries (id bigint, patient_id bigint) ON COMMIT DROP")
        cur.execute("""
            WITH ins AS (INSERT INTO ledger_journalentry (practice_id, kind, memo, patient_id, created_by_id, created_at)
                         SELECT %(practice)s, 'charge', 'bench setup', id, %(user)s,
                                now() - make_interval(days => (id %% 365)::int)
                           FROM ledger_patient WHERE practice_id = %(practice)s ORDER BY id
                         RETURNING id, patient_id)
            INSERT INTO bench_entries SELECT id, patient_id FROM ins""", p)
        cur.execute("""
            INSERT INTO ledger_journalline (entry_id, practice_id, account, amount, patient_id, encounter_id, credit_id,
                                            payment_id, claim_id)
            SELECT be.id, %(practice)s, 'charges_receivable', e.charge, NULL::bigint, e.id, NULL::bigint, NULL::bigint, NULL::bigint
              FROM ledger_encounter e JOIN bench_entries be ON be.patient_id = e.patient_id
            UNION ALL
            SELECT be.id, %(practice)s, 'revenue', -e.charge, NULL, e.id, NULL, NULL, NULL
              FROM ledger_encounter e JOIN bench_entries be ON be.patient_id = e.patient_id
            UNION ALL
            SELECT be.id, %(practice)s, 'cash', cl.paid_amount, NULL, NULL, NULL, NULL, cl.id
              FROM ledger_claim cl JOIN ledger_encounter e ON e.id = cl.encounter_id
              JOIN bench_entries be ON be.patient_id = e.patient_id WHERE cl.paid_amount <> 0
            UNION ALL
            SELECT be.id, %(practice)s, 'charges_receivable', -cl.paid_amount, NULL, e.id, NULL, NULL, cl.id
              FROM ledger_claim cl JOIN ledger_encounter e ON e.id = cl.encounter_id
              JOIN bench_entries be ON be.patient_id = e.patient_id WHERE cl.paid_amount <> 0
            UNION ALL
            SELECT be.id, %(practice)s, 'patient_receivable', e.remittance_pr, e.patient_id, e.id, NULL, NULL, NULL
              FROM ledger_encounter e JOIN bench_entries be ON be.patient_id = e.patient_id
             WHERE COALESCE(e.remittance_pr, 0) <> 0
            UNION ALL
            SELECT be.id, %(practice)s, 'charges_receivable', -e.remittance_pr, NULL, e.id, NULL, NULL, NULL
              FROM ledger_encounter e JOIN bench_entries be ON be.patient_id = e.patient_id
             WHERE COALESCE(e.remittance_pr, 0) <> 0
            UNION ALL
            SELECT be.id, %(practice)s, 'credit_adjustments', c.amount, c.patient_id, NULL, NULL, NULL, NULL
              FROM credits_credit c JOIN bench_entries be ON be.patient_id = c.patient_id
            UNION ALL
            SELECT be.id, %(practice)s, CASE WHEN c.state = 'locked' THEN 'credits_locked' ELSE 'credits_available' END,
                   -c.amount, c.patient_id, c.locked_encounter_id, c.id, NULL, NULL
              FROM credits_credit c JOIN bench_entries be ON be.patient_id = c.patient_id""", p)
        cur.execute("ANALYZE ledger_patient; ANALYZE ledger_encounter; ANALYZE ledger_claim; ANALYZE credits_credit")
    return practice, payer


def peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
