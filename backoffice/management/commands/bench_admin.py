"""Measure the back-office pages on large books: the patient-responsibility list (with each filter,
a search and a sort), the locked-credits list, a patient page and the payment screen.

    python manage.py bench_admin --patients 100000 --credits-per-patient 10 [--requests 40] [--reuse]

Builds synthetic books in a practice of their own (ledger/benchdata.py; `--reuse` takes the newest
bench practice of that size instead), signs in a manager of that practice with Django's test client
(in process: the whole request, middleware, sessions, queries and templates; no network), and
times each page --requests times after a warm-up. The last line is one JSON object:
{"patients", "credits", "build_s", "pages": {name: {"p50_ms", "p95_ms", "max_ms", "queries"}}}."""

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
from ledger.models import Membership, Patient, Practice


class Command(BaseCommand):
    help = "Time the back-office list pages and a patient page on large synthetic books."

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, default=100_000)
        parser.add_argument("--credits-per-patient", type=int, default=10)
        parser.add_argument("--requests", type=int, default=40)
        parser.add_argument("--reuse", action="store_true", help="use the newest bench practice of this size")
        parser.add_argument("--seed", type=int, default=5)

    def handle(self, *args, patients, credits_per_patient, requests, reuse, seed, **options):
        practice, build_s = None, 0.0
        if reuse:
            for p in Practice.objects.filter(name__startswith="bench-books-").order_by("-pk"):
                if Patient.objects.filter(practice=p).count() == patients:
                    practice = p
                    break
        if practice is None:
            self.stdout.write(f"building {patients:,} patients with {credits_per_patient} credits each...")
            started = time.perf_counter()
            practice, _ = build_books(patients=patients, credits_per_patient=credits_per_patient)
            build_s = time.perf_counter() - started
            self.stdout.write(f"built in {build_s:.1f} s")
        with connection.cursor() as cur:  # fresh statistics and visibility maps, as autovacuum would leave them
            cur.execute("VACUUM ANALYZE credits_patientresponsibility")
            cur.execute("ANALYZE ledger_patient")
        n_credits = Credit.objects.filter(practice=practice).count()
        user, _ = get_user_model().objects.get_or_create(username=f"bench-manager-{practice.pk}",
                                                         defaults={"is_staff": True})
        Membership.objects.get_or_create(user=user, practice=practice, defaults={"role": Membership.Role.MANAGER})
        client = Client(HTTP_HOST="localhost")
        client.force_login(user)
        settings.DEBUG = False  # no query log in memory while timing

        rng = random.Random(seed)
        ids = list(Patient.objects.filter(practice=practice).order_by("?").values_list("pk", flat=True)[:requests])
        a_name = Patient.objects.filter(pk=ids[0]).values_list("last_name", flat=True).get()
        responsibility = reverse("admin:credits_patientresponsibility_changelist")
        deep_page = max(1, min(50, patients // 100))  # page 50, or the last one on small books
        pages = {
            "responsibility": lambda: (responsibility, {}),
            "responsibility_available": lambda: (responsibility, {"credits": "available"}),
            "responsibility_locked": lambda: (responsibility, {"credits": "locked"}),
            "responsibility_both": lambda: (responsibility, {"credits": "both"}),
            "responsibility_search": lambda: (responsibility, {"q": a_name}),
            "responsibility_sorted_by_available": lambda: (responsibility, {"o": "-5"}),
            "responsibility_page_50": lambda: (responsibility, {"p": str(deep_page)}),
            "locked_credits": lambda: (reverse("admin:backoffice_lockedcredit_changelist"), {}),
            "patient_page": lambda: (reverse("admin:ledger_patient_change", args=[rng.choice(ids)]), {}),
            "payment_screen": lambda: (reverse("admin:ledger_patient_payment", args=[rng.choice(ids)]), {}),
        }
        out = {}
        for name, target in pages.items():
            url, params = target()
            for _ in range(3):  # warm-up: caches, plans, the buffer pool
                assert client.get(url, params).status_code == 200, (name, url)
            times = []
            for _ in range(requests):
                url, params = target()
                started = time.perf_counter()
                response = client.get(url, params)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, (name, url)
            connection.force_debug_cursor = True
            reset_queries()
            client.get(url, params)
            n_queries = len(connection.queries)
            connection.force_debug_cursor = False
            times.sort()
            out[name] = {"p50_ms": round(statistics.median(times), 1),
                         "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1),
                         "max_ms": round(times[-1], 1), "queries": n_queries}
            self.stdout.write(f"{name:36s} p50 {out[name]['p50_ms']:7.1f} ms   p95 {out[name]['p95_ms']:7.1f} ms   "
                              f"max {out[name]['max_ms']:7.1f} ms   {n_queries} queries")
        self.stdout.write(json.dumps({"patients": patients, "credits": n_credits, "build_s": round(build_s, 1),
                                      "requests": requests, "pages": out}))
