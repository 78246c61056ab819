"""The managers' exports (issue 12 item 4): `base.py` is the registry of reports (columns and rows),
`writers.py` writes one as CSV, XLSX or PDF, `jobs.py` runs an export as a django-q2 task with its
progress; `definitions.py` and reports/cms838.py register the reports."""
