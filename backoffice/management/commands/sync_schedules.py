from django.core.management.base import BaseCommand
from django.utils import timezone

from config import schedules


class Command(BaseCommand):
    help = "Create or update the django-q2 schedules from config/schedules.py (idempotent; run on every deploy)."

    def handle(self, *args, **options):
        changes = schedules.sync(now=timezone.now())
        for kind in ("created", "updated", "deleted"):
            for name in changes[kind]:
                self.stdout.write(f"{kind}: {name}")
        self.stdout.write(f"schedules: {len(changes['created'])} created, {len(changes['updated'])} updated, "
                          f"{len(changes['deleted'])} deleted, {len(changes['unchanged'])} unchanged")
