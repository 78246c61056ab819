import ast
import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.module_loading import import_string

from config import schedules


class Command(BaseCommand):
    help = "Run one scheduled job now, by its schedule name (see config/schedules.py), in this process."

    def add_arguments(self, parser):
        parser.add_argument("name", help="schedule name, e.g. nightly-practice-1")

    def handle(self, *args, name, **options):
        wanted = schedules.desired_schedules(now=timezone.now())
        if name not in wanted:
            raise CommandError(f"no job named {name!r}; known: {', '.join(sorted(wanted)) or '(none)'}")
        job = wanted[name]
        func = import_string(job["func"])
        # django-q2 keeps a schedule's arguments as the repr() of a Python literal (a practice id here):
        # read it back as a literal, never by evaluating code
        parsed = ast.literal_eval(job["args"]) if job["args"] else ()
        result = func(*(parsed if isinstance(parsed, tuple) else (parsed,)))
        self.stdout.write(json.dumps(result, default=str))
