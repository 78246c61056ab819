import json as _json

from django.core.management.base import BaseCommand, CommandError

from credits.nightly import DEFAULT_BATCH
from ledger.models import Practice
from remittances.nightly import nightly_run


class Command(BaseCommand):
    help = ("Run the nightly steps for one practice now: post pending remittances, release the locked credits of "
            "balanced encounters, apply usable credits (DOMAIN rule 6). --dry-run previews and writes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("--practice", type=int, required=True, help="practice id")
        parser.add_argument("--dry-run", action="store_true", help="show what would be applied; write nothing")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)

    def handle(self, *args, practice, dry_run, json: bool, batch_size, **options):
        if not Practice.objects.filter(pk=practice).exists():
            raise CommandError(f"unknown practice {practice}")
        result = nightly_run(practice_id=practice, dry_run=dry_run, batch_size=batch_size)
        out = result.as_dict()
        if dry_run:
            out["lines"] = [{"patient": p, "encounter": e, "credit": c, "amount": str(a), "locked": lk}
                            for p, e, c, a, lk in result.lines]
        if json:
            self.stdout.write(_json.dumps(out))
            return
        verb = "would apply" if dry_run else "applied"
        self.stdout.write(f"practice {practice}: {result.status}; {result.patients_seen} patients; {verb} "
                          f"{result.application_count} applications, {result.applied_total}; released "
                          f"{result.released_credits} locked credits; {result.remittances_posted} remittances posted")
        for line in out.get("lines", [])[:50]:
            self.stdout.write(f"  patient {line['patient']} DoS {line['encounter']} <- credit {line['credit']} "
                              f"{line['amount']}{' (locked)' if line['locked'] else ''}")
