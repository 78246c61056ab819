"""Adjudication services (DOMAIN rules 15-19): one module per subject, each public function one
transaction, `case_<verb>(*, case, actor, reason, ...)`; shared pieces in core.py."""
