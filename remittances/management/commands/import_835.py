import json as _json
import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from ledger.access import system_user
from ledger.errors import SettleError
from ledger.models import Practice
from remittances.posting import POST_BATCH
from remittances.receive import remittance_file_import


class _DryRun(Exception):
    pass


class Progress:
    """A plain progress bar on stderr for large files (only on a terminal)."""
    def __init__(self, total: int, label: str, stream=sys.stderr):
        self.total, self.done, self.label, self.stream = max(total, 1), 0, label, stream

    def __call__(self, n: int) -> None:
        self.done += n
        if self.stream.isatty() and self.total >= 1000:
            width = 30
            filled = int(width * self.done / self.total)
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}")
            self.stream.flush()
            if self.done >= self.total:
                self.stream.write("\n")


class Command(BaseCommand):
    help = ("Import payer remittance files (X12 835): read each file, store it, and post its claims, one "
            "transaction per batch of claims. A file that cannot be read is refused whole with the segment and "
            "position of the fault; the same file or payment twice posts nothing; the same file again after an "
            "import that was killed mid-file finishes posting it.")

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", help="835 files")
        parser.add_argument("--practice", type=int, required=True, help="practice id")
        parser.add_argument("--dry-run", action="store_true", help="read, match and post, then roll everything back")
        parser.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
        parser.add_argument("--user", help="username to act as (default: the system user)")
        parser.add_argument("--batch-size", type=int, default=POST_BATCH,
                            help=f"claims per posting transaction (default {POST_BATCH})")

    def handle(self, *args, files, practice, dry_run, json: bool, user, batch_size, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        if not Practice.objects.filter(pk=practice).exists():
            raise CommandError(f"unknown practice {practice}")
        actor = system_user()
        if user:
            actor = get_user_model().objects.filter(username=user).first()
            if actor is None:
                raise CommandError(f"unknown user {user}")
        failed = False
        for name in files:
            path = Path(name)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise CommandError(f"{name}: {exc.strerror}") from None
            try:
                out = self._one(data, path.name, practice, actor, dry_run, batch_size)
            except SettleError as exc:
                raise CommandError(f"{name}: {exc.message}") from None
            out["file"] = str(name)
            failed |= out["status"] == "refused"
            if json:
                self.stdout.write(_json.dumps(out))
            else:
                self._print(out, dry_run)
        if failed:
            sys.exit(1)

    def _one(self, data, filename, practice, actor, dry_run, batch_size) -> dict:
        def run():
            return remittance_file_import(practice_id=practice, data=data, filename=filename, actor=actor,
                                     batch_size=batch_size, progress=Progress(0, filename)).as_dict()

        if not dry_run:
            # each batch of claims commits on its own (patients are locked one batch at a time); killed
            # mid-file, running the same command again finishes the file and posts nothing twice
            return run()
        out = {}
        try:
            with transaction.atomic():  # a dry run: everything in one transaction, rolled back
                out = run()
                raise _DryRun
        except _DryRun:
            out["dry_run"] = True
        return out

    def _print(self, out: dict, dry_run: bool) -> None:
        prefix = "(dry run) " if dry_run else ""
        self.stdout.write(f"{prefix}{out['file']}: {out['status']}; {out['transactions']} payments, {out['claims']} "
                          f"claims, paid {out['paid_total']}, PLB {out['plb_total']}")
        if out.get("resumed_file"):
            self.stdout.write(f"  finished posting file #{out['resumed_file']}: the same file was received before and "
                              "its posting had stopped mid-file")
        for state, n in sorted(out.get("posted", {}).items()):
            self.stdout.write(f"  {state}: {n}")
        for w in out["warnings"]:
            where = f"segment {w['segment']} ({w.get('segment_id', '')}) at byte {w['position']}: " if w.get("segment") \
                else ""
            self.stdout.write(f"  warning: {where}{w['message']}")
        for e in out["errors"]:
            self.stdout.write(f"  error: segment {e['segment']} ({e['segment_id']}) at byte {e['position']}: "
                              f"{e['message']}")
