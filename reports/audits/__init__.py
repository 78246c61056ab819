"""The audits (DOMAIN rule 20): `runner.py` runs and records them; `books.py` holds the daily checks
of the books, `work.py` the weekly checks of the adjudication work. Importing this package registers
every check."""

from reports.audits import books, work  # noqa: F401  (registers the checks)
from reports.audits.runner import run_audit  # noqa: F401
