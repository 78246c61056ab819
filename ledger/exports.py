"""Exports that are safe to open in a spreadsheet: every CSV export writes its cells through
`export_cell` (`csv_response` does it for a whole file); an XLSX export (none yet) writes its text
cells through `safe_text` and its amounts and counts as numeric cells.

Text cells follow the OWASP CSV-injection rule: a cell that starts with "=", "+", "-", "@", a tab
or a carriage return (or a line feed, or the full-width "＝＋－＠" some spreadsheets also read as a
formula) gets a single quote in front, so "=HYPERLINK(...)" is shown as text and never run. The
quote is part of the exported text (a patient named "-2" is exported as "'-2").

Numbers are not text: an amount (a Decimal) or a count (an int) is written as a plain number,
"-5.00" included, so a spreadsheet reads negative money as a number it can add up. These cells
come from the database's numeric columns, never from typed text, so they hold nothing but an
optional minus, digits and a decimal point. Dates are written as ISO YYYY-MM-DD."""

import csv
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal

from django.http import StreamingHttpResponse

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")


def safe_text(value: str) -> str:
    """A text cell a spreadsheet will not read as a formula."""
    return "'" + value if value.startswith(FORMULA_START) else value


def export_cell(value):
    """One cell of an export: a number stays a number, a date is ISO, anything else is safe text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a number for an export: {value}")
        return format(value, "f")  # plain digits: never an exponent ("1E+2")
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return safe_text(str(value))


class _Echo:
    def write(self, value):
        return value


def csv_lines(header: list[str], rows: Iterable[Iterable]) -> Iterator[str]:
    """The lines of a CSV file: the header, then each row, every cell through `export_cell`."""
    writer = csv.writer(_Echo())
    yield writer.writerow([safe_text(h) for h in header])
    for row in rows:
        yield writer.writerow([export_cell(v) for v in row])


def csv_response(filename: str, header: list[str], rows: Iterable[Iterable]) -> StreamingHttpResponse:
    """A streamed CSV download (memory stays flat: `rows` should be an iterator over the data)."""
    response = StreamingHttpResponse(csv_lines(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
