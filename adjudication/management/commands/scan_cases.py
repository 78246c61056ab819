import json

from django.core.management.base import BaseCommand, CommandError

from adjudication.scan import DEFAULT_BATCH, scan_practice
from ledger.models import Practice


class Command(BaseCommand):
    help = ("Run the credit-balance scan of one practice now (adjudication/scan.py): open a case for every credit "
            "balance without one, resolve the cases whose money is gone, list unclaimed property. Prints the result "
            "as one JSON object. Running it twice opens nothing the second time.")

    def add_arguments(self, parser):
        parser.add_argument("--practice", type=int, required=True, help="practice id")
        parser.add_argument("--reason", default="Scan from the command line", help="kept on every row it writes")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)

    def handle(self, *args, practice, reason, batch_size, **options):
        if not Practice.objects.filter(pk=practice).exists():
            raise CommandError(f"unknown practice {practice}")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        result = scan_practice(practice_id=practice, reason=reason, batch_size=batch_size)
        self.stdout.write(json.dumps(result.as_dict()))
