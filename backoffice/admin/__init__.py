"""The Django admin back-office: importing this package registers every model admin."""

from backoffice.admin import (  # noqa: F401
    adjudication,
    adjudication_rules,
    base,
    books,
    credits,
    lists,
    remittances,
    reports_audits,
    reports_cms838,
    reports_exports,
    reports_reviews,
    tokens,
)
