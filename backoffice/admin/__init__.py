"""The Django admin back-office: importing this package registers every model admin."""

from backoffice.admin import adjudication, adjudication_rules, base, books, credits, lists, remittances, tokens  # noqa: F401
