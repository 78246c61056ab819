"""CSV exports are safe to open in a spreadsheet (issue 9, "Found" 8): text cells that a spreadsheet
would read as a formula get a leading single quote (the OWASP rule); amounts stay plain numbers."""

import csv
import io
from datetime import date
from decimal import Decimal as D

import pytest
from django.urls import reverse

from ledger.exports import csv_lines, export_cell, safe_text

pytestmark = pytest.mark.django_db

HOSTILE = ['=HYPERLINK("http://x","y")', "+1", "-2", "@SUM(A1)", "\t=1", "\r=1"]


def _rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


@pytest.mark.parametrize("how", ["export_view", "export_action"])
def test_patient_responsibility_export_neutralises_formulas_and_keeps_amounts_numbers(client, world, how):
    ids = []
    for i, name in enumerate(HOSTILE):
        pat = world.patient(last_name=name, first_name=name, account_number=f"-{i}" if i % 2 else f"=A{i}")
        world.visit(pat, date(2026, 1, 5), charge="100.00", estimated_pr="12.50", claim=False)
        ids.append(pat.pk)
    plain = world.patient(last_name="Avila", first_name="Ana", account_number="A-100")
    world.visit(plain, date(2026, 1, 5), charge="100.00", estimated_pr="30.00", claim=False)
    client.force_login(world.clerk)
    if how == "export_view":
        response = client.get(reverse("admin:credits_patientresponsibility_export"), {"balance": "all"})
    else:
        response = client.post(reverse("admin:credits_patientresponsibility_changelist"),
                               {"action": "export_csv", "_selected_action": ids + [plain.pk]})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    header, *rows = _rows(response)
    assert header == ["account_number", "last_name", "first_name", "practice", "due_now", "pending_payer",
                      "available_credit", "locked_credit"]
    by_name = {r[1]: r for r in rows}
    assert set(by_name) == {"'" + n for n in HOSTILE} | {"Avila"}
    for name in HOSTILE:
        account, last, first, practice, owed, pending, available, locked = by_name["'" + name]
        assert last == first == "'" + name  # shown as the text it is, never run
        assert account.startswith("'") and account[1:] in {f"-{i}" for i in range(6)} | {f"=A{i}" for i in range(6)}
        assert (owed, pending, available, locked) == ("12.50", "0.00", "0.00", "0.00")  # numbers, no quote
    assert by_name["Avila"] == ["A-100", "Avila", "Ana", "Main Street Clinic", "30.00", "0.00", "0.00", "0.00"]
    for row in rows:  # nothing a spreadsheet would evaluate
        for cell in row[:4]:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row


def test_export_cells_text_is_neutralised_numbers_are_not():
    for text in HOSTILE + ["-5.00", "=1+2", "\n=1", "＝1+1"]:
        assert export_cell(text) == "'" + text
    assert safe_text("Smith-Jones") == "Smith-Jones" and safe_text("") == ""
    assert export_cell(D("-5.00")) == "-5.00"  # a negative amount stays a number a spreadsheet adds up
    assert export_cell(D("1E+2")) == "100" and export_cell(D("0.00")) == "0.00"
    assert export_cell(-3) == -3 and export_cell(None) == ""
    assert export_cell(date(2026, 3, 1)) == "2026-03-01"
    lines = list(csv_lines(["name", "amount"], [['=HYPERLINK("http://x","y")', D("-5.00")], ["-2", D("7.10")]]))
    assert lines == ['name,amount\r\n', '"\'=HYPERLINK(""http://x"",""y"")",-5.00\r\n', "'-2,7.10\r\n"]
