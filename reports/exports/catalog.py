"""Importing this module registers every exportable report (reports/apps.py ready() does)."""

from reports import cms838, reconciliation  # noqa: F401  (the CMS-838 form; reconciliation as of a date)
from reports.exports import definitions  # noqa: F401  (aging, refunds, write-offs, case log, holder, audit)
