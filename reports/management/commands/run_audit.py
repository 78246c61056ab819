"""`manage.py run_audit --practice N --kind books|work [--reason ...]`: one audit run as the schedule
runs it (no acting user), then its checks and findings; the last line is one JSON object."""

import json
import time

from django.core.management.base import BaseCommand, CommandError

from ledger.errors import SettleError
from reports.audits.runner import run_audit
from reports.models import AuditFinding, AuditRun


class Command(BaseCommand):
    help = ("Run the audit of the books (daily checks) or of the adjudication work (weekly checks) for one practice, "
            "as the schedule does, and record it. Prints each check with its findings and milliseconds, then the "
            "run's finding count; the last line is one JSON object {run, practice, kind, status, findings, seconds}.")

    def add_arguments(self, parser):
        parser.add_argument("--practice", type=int, required=True, help="the practice's id")
        parser.add_argument("--kind", required=True, choices=AuditRun.Kind.values)
        parser.add_argument("--reason", default="", help="kept on the run (default: Scheduled audit)")

    def handle(self, *args, practice, kind, reason, **options):
        started = time.perf_counter()
        try:
            run = run_audit(practice_id=practice, kind=kind, reason=reason)
        except SettleError as exc:
            raise CommandError(exc.message) from exc
        seconds = time.perf_counter() - started
        for name, summary in (run.checks or {}).items():
            if "error" in summary:
                line = f"FAILED: {summary['error']}"
            else:
                more = summary.get("findings", 0) - summary.get("recorded", summary.get("findings", 0))
                line = f"{summary.get('findings', 0)} found" + (f" ({more} not recorded)" if more > 0 else "")
            label = AuditFinding.Kind(name).label if name in AuditFinding.Kind.values else name
            self.stdout.write(f"{label}: {line}, {summary.get('ms', 0)} ms")
        self.stdout.write(f"{run}: {run.get_status_display().lower()}, {run.finding_count} finding"
                          f"{'s' if run.finding_count != 1 else ''}")
        self.stdout.write(json.dumps({"run": run.pk, "practice": run.practice_id, "kind": run.kind,
                                      "status": run.status, "findings": run.finding_count,
                                      "seconds": round(seconds, 3)}))
