"""Reconciliation as of a date (workstream B; DOMAIN rule 20)."""
