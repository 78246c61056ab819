"""The reports of issue 12 item 4 (workstream D2): aging, refunds register, write-offs, case log, holder report, audit report."""
