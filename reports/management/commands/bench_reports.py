"""Measure the managers' reports on large books (issue 12 item 8).

    python manage.py bench_reports --patients 100000 [--credits-per-patient 10] [--requests 20] [--reuse]

Builds synthetic books in practices of their own (ledger/benchdata.py: per patient two visits with
claims and open balances, a credit locked to the first visit, the others available) and scans them
so every credit balance has its open case (what the aging report lists). Then it measures:

* the daily books job's figures for the dashboard: the closed days' balances (BalanceDay) and the
  open cases counted (OpenCasesSnapshot), in seconds;
* the dashboard page (Django's test client in process, a manager signed in): p50/p95/max of
  --requests requests after a warm-up, and the same for measures() + trend() alone;
* an audit run of each kind (seconds, findings);
* the aging export in CSV and XLSX (seconds, rows, bytes, the peak resident memory of a forked
  child process that writes it), on the big practice and on one a tenth its size: the peaks are
  about the same, memory does not grow with the rows.

The last line is one JSON object."""

import json
import os
import statistics
import tempfile
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, connections
from django.test import Client
from django.urls import NoReverseMatch, reverse

from adjudication.clocks import practice_today
from adjudication.models import Case
from adjudication.scan import scan_practice
from credits.models import Credit
from ledger.benchdata import build_books, peak_mb
from ledger.models import Membership, Patient, Practice
from reports.audits import run_audit
from reports.exports.base import ExportParams, get
from reports.exports.writers import write
from reports.measures import balance_days_fill, measures, open_cases_snapshot_take, trend


def timings(fn, n: int) -> dict:
    fn()  # warm-up
    ms = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1000)
    ms.sort()
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return {"p50_ms": round(statistics.median(ms), 1), "p95_ms": round(p95, 1), "max_ms": round(ms[-1], 1)}


class Command(BaseCommand):
    help = "Time the dashboard, the audits and the aging export (CSV, XLSX) on large synthetic books."

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, default=100_000)
        parser.add_argument("--credits-per-patient", type=int, default=10)
        parser.add_argument("--requests", type=int, default=20)
        parser.add_argument("--reuse", action="store_true", help="use the newest scanned bench practices of the sizes")

    def handle(self, *args, patients, credits_per_patient, requests, reuse, **options):
        if patients < 10 or credits_per_patient < 1 or requests < 1:
            raise CommandError("--patients must be at least 10, --credits-per-patient and --requests at least 1")
        settings.DEBUG = False  # Django would keep every statement in memory and count it as ours
        big, big_build = self._books(patients, credits_per_patient, reuse)
        small, _ = self._books(patients // 10, credits_per_patient, reuse)
        n_credits = Credit.objects.filter(practice=big).count()
        out = {"patients": patients, "credits": n_credits, "build_s": round(big_build, 1),
               "open_cases": Case.objects.filter(practice=big).exclude(state=Case.State.RESOLVED).count()}
        self.stdout.write(f"practice {big.pk}: {patients:,} patients, {n_credits:,} credits, "
                          f"{out['open_cases']:,} open cases")

        t0 = time.perf_counter()
        days = balance_days_fill(practice_id=big.pk)
        fill_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        open_cases_snapshot_take(practice_id=big.pk)
        snap_s = time.perf_counter() - t0
        out.update({"balance_days_fill_s": round(fill_s, 2), "open_cases_snapshot_s": round(snap_s, 2)})
        self.stdout.write(f"the daily books job's figures: {days} closed days' balances in {fill_s:.2f} s, "
                          f"the open cases counted in {snap_s:.2f} s")
        out["dashboard"] = self._dashboard(big, requests)
        for kind in ("books", "work"):
            t0 = time.perf_counter()
            run = run_audit(practice_id=big.pk, kind=kind, reason="Benchmark")
            seconds = time.perf_counter() - t0
            out[f"audit_{kind}_s"] = round(seconds, 2)
            out[f"audit_{kind}_findings"] = run.finding_count
            slowest = max(run.checks.items(), key=lambda kv: kv[1].get("ms", 0))
            self.stdout.write(f"audit of the {kind}: {run.status}, {run.finding_count} findings in {seconds:.2f} s "
                              f"(slowest check {slowest[0]}: {slowest[1].get('ms')} ms)")

        out["aging_export"] = {}
        for label, practice in (("big", big), ("tenth", small)):
            for fmt in ("csv", "xlsx"):
                figures = self._export(practice, fmt)
                out["aging_export"][f"{fmt}_{label}"] = figures
                self.stdout.write(f"aging {fmt.upper()} ({label}): {figures['rows']:,} rows, "
                                  f"{figures['bytes'] / 1e6:.1f} MB in {figures['seconds']:.1f} s "
                                  f"({figures['rows'] / max(figures['seconds'], 0.001):,.0f} rows/s), peak RSS "
                                  f"{figures['peak_rss_mb']:.1f} MB (from {figures['start_rss_mb']:.1f} MB)")
        out["peak_rss_mb"] = peak_mb()
        self.stdout.write(json.dumps(out))

    def _books(self, patients: int, credits_per_patient: int, reuse: bool):
        if reuse:
            for p in Practice.objects.filter(name__startswith="bench-books-").order_by("-pk"):
                if Patient.objects.filter(practice=p).count() == patients \
                        and Case.objects.filter(practice=p).exists():
                    return p, 0.0
        self.stdout.write(f"building {patients:,} patients with {credits_per_patient} credits each, then the scan...")
        t0 = time.perf_counter()
        practice, _ = build_books(patients=patients, credits_per_patient=credits_per_patient, claim_prefix="RPT")
        scan = scan_practice(practice_id=practice.pk, reason="Benchmark scan")
        with connection.cursor() as cur:
            cur.execute("ANALYZE adjudication_case; ANALYZE credits_credit; ANALYZE ledger_journalline")
        seconds = time.perf_counter() - t0
        self.stdout.write(f"built and scanned ({scan.opened:,} cases opened) in {seconds:.1f} s")
        return practice, seconds

    def _dashboard(self, practice: Practice, requests: int) -> dict:
        today = practice_today(practice)
        start = today - timedelta(days=29)

        def direct():
            measures(practice_id=practice.pk, date_from=start, date_to=today)
            trend(practice_id=practice.pk, end=today)

        figures = {"measures_and_trend": timings(direct, requests)}
        self.stdout.write(f"measures() + trend(): p95 {figures['measures_and_trend']['p95_ms']} ms")
        try:
            url = reverse("admin:reports_dashboard")
        except NoReverseMatch:
            self.stdout.write("the dashboard page is not installed: page not timed")
            return figures
        user, _ = get_user_model().objects.get_or_create(username=f"bench-manager-{practice.pk}",
                                                         defaults={"is_staff": True})
        Membership.objects.get_or_create(user=user, practice=practice, defaults={"role": Membership.Role.MANAGER})
        client = Client(HTTP_HOST="localhost")
        client.force_login(user)
        query = {"date_from": start.isoformat(), "date_to": today.isoformat()}

        def page():
            response = client.get(url, query)
            if response.status_code != 200:
                raise CommandError(f"the dashboard answered {response.status_code}")

        figures["page"] = timings(page, requests)
        self.stdout.write(f"dashboard page: p50 {figures['page']['p50_ms']} ms, p95 {figures['page']['p95_ms']} ms")
        return figures

    def _export(self, practice: Practice, fmt: str) -> dict:
        """The aging export written to a file in a child process of its own (forked), so its peak
        resident memory (os.wait4's ru_maxrss) is the export's alone: start with the Django
        process's footprint, then whatever the writing adds."""
        connections.close_all()  # the child opens its own connection
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            os.close(read_end)
            code = 0
            try:
                figures = self._export_here(practice, fmt)
            except BaseException as exc:  # reported by the parent
                figures, code = {"error": repr(exc)}, 1
            with os.fdopen(write_end, "w") as pipe:
                pipe.write(json.dumps(figures))
            os._exit(code)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            figures = json.loads(pipe.read() or "{}")
        _, status, usage = os.wait4(pid, 0)
        if status or "error" in figures:
            raise CommandError(f"the {fmt} export failed: {figures.get('error', status)}")
        figures["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
        return figures

    def _export_here(self, practice: Practice, fmt: str) -> dict:
        defn = get("aging")
        params = ExportParams(practice_id=practice.pk, as_of=practice_today(practice))
        start_mb = peak_mb()
        rows = [0]

        def progress(n):
            rows[0] = n

        fd, path = tempfile.mkstemp(suffix=f".{fmt}")
        try:
            t0 = time.perf_counter()
            with os.fdopen(fd, "wb") as out:
                write(defn, params, fmt, out, progress=progress)
            seconds = time.perf_counter() - t0
            size = os.path.getsize(path)
        finally:
            os.unlink(path)
        return {"rows": rows[0], "seconds": round(seconds, 2), "bytes": size, "start_rss_mb": start_mb}
