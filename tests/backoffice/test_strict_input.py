"""Strict input in the back-office (issue 9, "Found" 4 and 5): the admin's money fields read amounts with
the one money parser (Django's DecimalField took "１００", "1_000" and "5e-1"), dates are ISO and in range,
and an 835 with an amount beyond the money columns is refused with where it is (it was a DataError).
Each refusal is a form error with the parser's message, and nothing is written."""

from datetime import date

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from credits.models import Credit, Refund, WriteOff
from ledger.models import Encounter, JournalEntry, Patient, Payment, Practice
from remittances.models import RemittanceClaim, RemittanceFile
from remittances.x12.generator import ClaimSpec, generate_835

pytestmark = pytest.mark.django_db

LOOSE = [
    ("１００", "'１００' has digits that are not ASCII 0-9"),
    ("1_000", "'1_000' has a thousands separator"),
    ("5e-1", "'5e-1' is in exponent notation"),
    ("+5.00", "'+5.00' has a '+' sign"),
    (" 5.00", "' 5.00' has spaces"),
    (".5", "'.5' needs digits on both sides of the decimal point"),
    ("1000000000000.00", "'1000000000000.00' is out of range"),
    ("-5.00", "'-5.00' has a minus sign; the amount must not be negative"),
]


def url(name, *args):
    return reverse(f"admin:{name}", args=args)


def written() -> dict:
    return {m.__name__: m.objects.count()
            for m in (Payment, Credit, Refund, WriteOff, JournalEntry, Encounter, Patient, RemittanceClaim)}


def form_error(response, field: str) -> str:
    assert response.status_code == 200, response.status_code  # the form again, not a redirect or a 500
    return " ".join(response.context["form"].errors[field])


@pytest.mark.parametrize("text,message", LOOSE)
def test_loose_amounts_are_form_errors_on_every_money_page(client, office, world, text, message):
    ana, credit, dos = office["ana"], office["ana_credit"], office["ana_dos"]
    client.force_login(world.manager)
    before = written()
    pages = [
        (url("ledger_patient_credit_add", ana.pk), {"amount": text, "encounter": "", "note": "Old system"}),
        (url("ledger_patient_credit_remove", ana.pk, credit.pk), {"amount": text, "reason": "Refunded by hand"}),
        (url("ledger_patient_credit_refund", ana.pk, credit.pk), {"amount": text, "method": "check",
                                                                   "reference": "", "reason": "Overpaid"}),
        (url("ledger_patient_writeoff", ana.pk, dos.pk), {"amount": text, "reason_code": "small_balance",
                                                           "note": "Small"}),
        (url("ledger_patient_payment", ana.pk), {"dos": [dos.pk], "amount": text, "channel": "cash",
                                                  "reason": "At the desk"}),
        (url("ledger_patient_payment", ana.pk), {"dos": [dos.pk], "apply_credits": "on",
                                                  f"credit_{credit.pk}": text, "channel": "cash",
                                                  "reason": "At the desk"}),
    ]
    for page, data in pages:
        response = client.post(page, data)
        field = next(k for k in data if k == "amount" or k.startswith("credit_"))
        assert message in form_error(response, field), (page, response.context["form"].errors)
    assert written() == before


def test_strict_amounts_still_work_on_the_forms(client, office, world):
    ana = office["ana"]
    client.force_login(world.clerk)
    response = client.post(url("ledger_patient_credit_add", ana.pk), {"amount": "0025.5", "encounter": "",
                                                                       "note": "Old system"})
    assert response.status_code == 302
    assert Credit.objects.get(patient=ana, source="manual").amount == 25.5


def test_the_form_refuses_more_than_a_credit_has_on_hand(client, office, world):
    ana, credit = office["ana"], office["ana_credit"]
    client.force_login(world.clerk)
    before = written()
    response = client.post(url("ledger_patient_credit_remove", ana.pk, credit.pk),
                           {"amount": "100.01", "reason": "Refunded by hand"})
    assert "The amount must be at most 100.00." in form_error(response, "amount")
    assert written() == before


def _practice_form_data(client, practice) -> dict:
    """What the practice settings page would post back unchanged."""
    context = client.get(url("ledger_practice_change", practice.pk)).context
    form = context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = str(value)
    for inline in context["inline_admin_formsets"]:  # the memberships shown below the settings
        management = inline.formset.management_form
        data |= {management.add_prefix(name): management[name].value() for name in management.fields}
    return data


@pytest.mark.parametrize("text,message", LOOSE)
def test_practice_settings_money_uses_the_parser(client, world, text, message):
    client.force_login(world.manager)
    data = _practice_form_data(client, world.practice) | {"refund_approval_threshold": text}
    response = client.post(url("ledger_practice_change", world.practice.pk), data)
    assert response.status_code == 200
    assert message in " ".join(response.context["adminform"].form.errors["refund_approval_threshold"])
    assert Practice.objects.get(pk=world.practice.pk).refund_approval_threshold == 100


def test_practice_settings_take_a_strict_amount(client, world):
    client.force_login(world.manager)
    data = _practice_form_data(client, world.practice) | {"refund_approval_threshold": "150.5",
                                                          "reason": "New threshold"}
    response = client.post(url("ledger_practice_change", world.practice.pk), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert str(Practice.objects.get(pk=world.practice.pk).refund_approval_threshold) == "150.50"


@pytest.mark.parametrize("day,message", [
    ("1850-01-01", "1850-01-01 is out of range; a date of birth is between 1900-01-01 and today"),
    ("2999-01-01", "2999-01-01 is out of range"),
    ("0001-01-01", "0001-01-01 is out of range"),
    ("２０２０-01-01", "is not a date; write it as YYYY-MM-DD"),
    ("01/02/2020", "is not a date; write it as YYYY-MM-DD"),
    ("2020-02-30", "is not a date of the calendar"),
])
def test_patient_dates_of_birth_are_iso_and_in_range(client, world, day, message):
    client.force_login(world.clerk)
    before = written()
    response = client.post(url("ledger_patient_add"), {
        "practice": world.practice.pk, "account_number": "N-1", "first_name": "Nia", "last_name": "North",
        "date_of_birth": day, "email": "", "member_id": "", "reason": "New patient"})
    assert response.status_code == 200
    assert message in " ".join(response.context["adminform"].form.errors["date_of_birth"])
    assert written() == before


def test_a_patient_with_an_iso_date_of_birth_is_added(client, world):
    client.force_login(world.clerk)
    response = client.post(url("ledger_patient_add"), {
        "practice": world.practice.pk, "account_number": "N-2", "first_name": "Nia", "last_name": "North",
        "date_of_birth": "1980-05-17", "email": "", "member_id": "", "reason": "New patient"})
    assert response.status_code == 302
    assert Patient.objects.get(account_number="N-2").date_of_birth == date(1980, 5, 17)


def test_an_835_with_an_amount_beyond_the_columns_is_refused_not_a_500(client, office, world):
    """The admin upload crashed with DataError on CLP04 = 1000000000000.00; the file is now refused with the
    segment, element and byte, like any unreadable file, and nothing of it is stored but the refusal."""
    data = generate_835(specs=[ClaimSpec("ANA-9", charge="100.00", paid="60.00")], interchange_control_number=9)
    data = data.replace(b"CLP*ANA-9*1*100.00*60.00*", b"CLP*ANA-9*1*100.00*1000000000000.00*")
    client.force_login(world.clerk)
    before = written()
    response = client.post(url("remittances_remittancefile_upload"), {
        "practice": world.practice.pk, "files": [SimpleUploadedFile("big.835", data)]})
    assert response.status_code == 200
    assert [r["status"] for r in response.context["results"]] == ["refused"]
    refused = RemittanceFile.objects.get(filename="big.835")
    (err,) = refused.errors
    assert (err["segment_id"], err["element"], err["position"]) == ("CLP", 4, data.index(b"CLP*ANA-9"))
    assert "invalid claim payment amount '1000000000000.00': is out of range" in err["message"]
    assert written() == before
