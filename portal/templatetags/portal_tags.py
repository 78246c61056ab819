"""Display of money and dates on the portal's pages: 1,234.56 and MM/DD/YYYY, as in the back-office."""

from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def money(value) -> str:
    if value is None or value == "":
        return "—"
    return f"${Decimal(value):,.2f}"


@register.filter
def usdate(value) -> str:
    if not value:
        return "—"
    return f"{value:%m/%d/%Y}"
