import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from ledger.access import system_user
from ledger.errors import SettleError
from ledger.models import Practice
from ledger.remittances import remittance_post_file, remittance_receive


class _DryRun(Exception):
    pass


class Progress:
    """A plain progress bar on stderr for large files (only on a terminal)."""

    def __init__(self, total: int, label: str, stream=sys.stderr):
        self.total, self.done, self.label, self.stream = max(total, 1), 0, label, stream
        self.enabled = stream.isatty() and total >= 1000

    def __call__(self, n: int) -> None:
        self.done += n
        if self.enabled:
            width = 30
            filled = int(width * self.done / self.total)
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}")
            self.stream.flush()
            if self.done >= self.total:
                self.stream.write("\n")


class Command(BaseCommand):
    help = ("Import payer remittance files (X12 835): read each file, store it, and post its claims. "
            "A file that cannot be read is refused whole with the segment and position of the fault; the same "
            "file or payment twice posts nothing.")

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", help="835 files")
        parser.add_argument("--practice", type=int, required=True, help="practice id")
        parser.add_argument("--dry-run", action="store_true", help="read, match and post, then roll everything back")
        parser.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
        parser.add_argument("--user", help="username to act as (default: the system user)")

    def handle(self, *args, files, practice, dry_run, json: bool, user, **options):
        if not Practice.objects.filter(pk=practice).exists():
            raise CommandError(f"unknown practice {practice}")
        actor = system_user()
        if user:
            from django.contrib.auth import get_user_model

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
                out = self._one(data, path.name, practice, actor, dry_run)
            except SettleError as exc:
                raise CommandError(f"{name}: {exc.message}") from None
            out["file"] = str(name)
            failed |= out["status"] == "refused"
            if json:
                import json as _json

                self.stdout.write(_json.dumps(out))
            else:
                self._print(out, dry_run)
        if failed:
            sys.exit(1)

    def _one(self, data, filename, practice, actor, dry_run) -> dict:
        out = {}
        try:
            with transaction.atomic():
                received = remittance_receive(practice_id=practice, data=data, filename=filename, actor=actor)
                out = received.as_dict()
                if received.status == "received":
                    progress = Progress(received.file.claim_count, filename)
                    posted = remittance_post_file(file_id=received.file.pk, actor=actor, progress=progress)
                    out["posted"] = posted.by_state
                    out["payer_credits"] = posted.payer_credits
                if dry_run:
                    raise _DryRun
        except _DryRun:
            out["dry_run"] = True
        return out

    def _print(self, out: dict, dry_run: bool) -> None:
        prefix = "(dry run) " if dry_run else ""
        self.stdout.write(f"{prefix}{out['file']}: {out['status']}; {out['transactions']} payments, {out['claims']} "
                          f"claims, paid {out['paid_total']}, PLB {out['plb_total']}")
        for state, n in sorted(out.get("posted", {}).items()):
            self.stdout.write(f"  {state}: {n}")
        for w in out["warnings"]:
            where = f"segment {w['segment']} ({w.get('segment_id', '')}) at byte {w['position']}: " if w.get("segment") \
                else ""
            self.stdout.write(f"  warning: {where}{w['message']}")
        for e in out["errors"]:
            self.stdout.write(f"  error: segment {e['segment']} ({e['segment_id']}) at byte {e['position']}: "
                              f"{e['message']}")
