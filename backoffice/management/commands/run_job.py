import json

from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string

from config import schedules


class Command(BaseCommand):
    help = "Run one scheduled job now, by its schedule name (see config/schedules.py), in this process."

    def add_arguments(self, parser):
        parser.add_argument("name", help="schedule name, e.g. nightly-practice-1")

    def handle(self, *args, name, **options):
        from django.utils import timezone

        wanted = schedules.desired_schedules(now=timezone.now())
        if name not in wanted:
            raise CommandError(f"no job named {name!r}; known: {', '.join(sorted(wanted)) or '(none)'}")
        job = wanted[name]
        func = import_string(job["func"])
        args = [eval(job["args"], {}, {})] if job["args"] else []  # args are repr() of ints we wrote ourselves
        result = func(*args)
        self.stdout.write(json.dumps(result, default=str))
