"""Measure the patient portal's pages on large books (issue 13: p95 <= 150 ms at 100,000 patients
and 1,000,000 credits, a query count that does not grow with the visits or credits).

    python manage.py bench_portal --patients 100000 --credits-per-patient 10 [--requests 40] [--reuse]

Builds synthetic books in a practice of their own (ledger/benchdata.py; `--reuse` takes the newest
bench practice of that size), gives --requests random patients a portal login, and times each page
as those patients (Django's test client, in process: middleware, sessions, queries, templates; no
network) after a warm-up. One patient also gets 20 times the visits and credits of the others: its
query counts beside an ordinary patient's show the counts do not grow. The last line is one JSON
object: {"patients", "credits", "build_s", "requests", "pages": {name: {"p50_ms", "p95_ms", "max_ms",
"queries", "queries_big"}}}."""

import json
import random
import statistics
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import connection, reset_queries
from django.test import Client
from django.urls import reverse

from credits.models import Credit
from ledger.benchdata import build_books
from ledger.models import Encounter, Patient, Practice
from portal.access import SESSION_CODE_OK, SESSION_SIGNED_IN

PAGES = {  # name: (url name, needs a visit id)
    "home": ("portal:home", False),
    "visit": ("portal:visit", True),
    "credits": ("portal:credits", False),
    "payments": ("portal:payments", False),
    "statements": ("portal:statements", False),
    "refunds": ("portal:refunds", False),
    "pay": ("portal:pay", False),
    "buy": ("portal:buy", False),
    "statement_pdf": ("portal:statement_pdf", False),
    "login": ("portal:login", False),  # these two as a visitor not signed in
    "guest": ("portal:guest", False),
}
ANONYMOUS = {"login", "guest"}


class Command(BaseCommand):
    help = "Time the patient portal's pages on large synthetic books."

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, default=100_000)
        parser.add_argument("--credits-per-patient", type=int, default=10)
        parser.add_argument("--requests", type=int, default=40)
        parser.add_argument("--reuse", action="store_true", help="use the newest bench practice of this size")
        parser.add_argument("--seed", type=int, default=13)

    def _practice(self, patients, credits_per_patient, reuse):
        if reuse:
            for p in Practice.objects.filter(name__startswith="bench-books-").order_by("-pk"):
                if Patient.objects.filter(practice=p).count() == patients:
                    return p, 0.0
        self.stdout.write(f"building {patients:,} patients with {credits_per_patient} credits each...")
        started = time.perf_counter()
        practice, _ = build_books(patients=patients, credits_per_patient=credits_per_patient)
        build_s = time.perf_counter() - started
        self.stdout.write(f"built in {build_s:.1f} s")
        return practice, build_s

    def _client(self, patient) -> Client:
        User = get_user_model()
        if patient.user_id is None:
            user = User.objects.create(username=f"bench-patient-{patient.pk}", email=f"p{patient.pk}@bench.invalid")
            Patient.objects.filter(pk=patient.pk).update(user=user)
            patient.user = user
        client = Client(HTTP_HOST="localhost")
        client.force_login(patient.user, backend="django.contrib.auth.backends.ModelBackend")
        session = client.session
        session[SESSION_SIGNED_IN] = int(time.time())
        session[SESSION_CODE_OK] = True
        session.save()
        return client

    def _big_patient(self, practice, credits_per_patient):
        """A patient with 20x the visits and credits: copies of the first patient's rows, written without
        journal lines (a bench practice is only read; its books are not audited)."""
        big = Patient.objects.filter(practice=practice).order_by("pk").first()
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM ledger_encounter WHERE patient_id = %s", [big.pk])
            if cur.fetchone()[0] < 20:
                cur.execute("""
                    INSERT INTO ledger_encounter (practice_id, patient_id, date_of_service, description, charge,
                                                  estimated_pr, remittance_pr, applied_amount, written_off_amount,
                                                  created_at)
                    SELECT practice_id, patient_id, date_of_service - (k * 30), description, charge, estimated_pr,
                           remittance_pr, applied_amount, written_off_amount, created_at
                      FROM ledger_encounter e CROSS JOIN generate_series(1, 19) k WHERE e.patient_id = %s""",
                            [big.pk])
                cur.execute("""
                    INSERT INTO credits_credit (source, state, amount, on_hand, refund_hold, applied_amount,
                                                refunded_amount, removed_amount, note, created_at, created_by_id,
                                                locked_encounter_id, origin_encounter_id, patient_id, payment_id,
                                                practice_id)
                    SELECT source, state, amount, on_hand, refund_hold, applied_amount, refunded_amount,
                           removed_amount, note, created_at - (k * interval '1 day'), created_by_id,
                           locked_encounter_id, origin_encounter_id, patient_id, payment_id, practice_id
                      FROM credits_credit c CROSS JOIN generate_series(1, 19) k WHERE c.patient_id = %s""",
                            [big.pk])
        return big

    def handle(self, *args, patients, credits_per_patient, requests, reuse, seed, **options):
        practice, build_s = self._practice(patients, credits_per_patient, reuse)
        with connection.cursor() as cur:
            cur.execute("VACUUM ANALYZE credits_patientresponsibility")
            cur.execute("ANALYZE ledger_patient")
        n_credits = Credit.objects.filter(practice=practice).count()
        settings.DEBUG = False
        rng = random.Random(seed)
        sample = list(Patient.objects.filter(practice=practice).order_by("?")[:requests])
        clients = [(p, self._client(p), Encounter.objects.filter(patient=p).values_list("pk", flat=True).first())
                   for p in sample]
        big = self._big_patient(practice, credits_per_patient)
        big_client = self._client(big)
        big_visit = Encounter.objects.filter(patient=big).values_list("pk", flat=True).first()

        def url_of(name, visit):
            url_name, needs_visit = PAGES[name]
            return reverse(url_name, args=[visit] if needs_visit else [])

        def count(client, url):
            connection.force_debug_cursor = True
            reset_queries()
            response = client.get(url)
            n = len(connection.queries)
            connection.force_debug_cursor = False
            assert response.status_code == 200, (url, response.status_code)
            return n

        visitor = Client(HTTP_HOST="localhost")
        out = {}
        for name in PAGES:
            pool = [(None, visitor, None)] if name in ANONYMOUS else clients
            for p, client, visit in pool[:3]:  # warm-up
                assert client.get(url_of(name, visit)).status_code == 200, (name, p.pk)
            times = []
            for _ in range(requests):
                p, client, visit = rng.choice(pool)
                url = url_of(name, visit)
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, (name, url, response.status_code)
            p, client, visit = pool[0]
            big_pair = (visitor, None) if name in ANONYMOUS else (big_client, big_visit)
            times.sort()
            out[name] = {"p50_ms": round(statistics.median(times), 1),
                         "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1),
                         "max_ms": round(times[-1], 1), "queries": count(client, url_of(name, visit)),
                         "queries_big": count(big_pair[0], url_of(name, big_pair[1]))}
            self.stdout.write(f"{name:16s} p50 {out[name]['p50_ms']:7.1f} ms   p95 {out[name]['p95_ms']:7.1f} ms   "
                              f"max {out[name]['max_ms']:7.1f} ms   {out[name]['queries']} queries "
                              f"({out[name]['queries_big']} for a patient with 20x the visits)")
        self.stdout.write(json.dumps({"patients": patients, "credits": n_credits, "build_s": round(build_s, 1),
                                      "requests": requests, "pages": out}))
