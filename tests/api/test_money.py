"""Payments (with credits at checkout), credits (manual, purchase, move, unlock, remove, refunds)
and refunds (approve, reject, issue) through the API."""

from datetime import date

import pytest

from credits.models import Credit, Refund
from ledger.models import Payment
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db


def test_payment_by_check_pays_the_balance_and_the_rest_is_available(api, world):
    pat = world.patient()
    enc, _ = world.visit(pat, date(2026, 1, 10), claim=False, estimated_pr="30.00")
    r = api.post("/payments", {"patient": pat.pk, "encounter": enc.pk, "amount": "45.00", "channel": "check",
                               "check_number": "1042"})
    assert r.status_code == 201, r.content
    out = r.json()
    assert out["payment"]["amount"] == "45.00" and out["payment"]["check_number"] == "1042"
    assert [(a["encounter"], a["amount"]) for a in out["applications"]] == [(enc.pk, "30.00")]
    assert [(c["state"], c["on_hand"]) for c in out["credits"]] == [("available", "15.00")]
    assert [p["id"] for p in api.get("/payments", {"patient": pat.pk, "channel": "check"}).json()["results"]] == \
        [out["payment"]["id"]]
    assert api.get(f"/payments/{out['payment']['id']}").json()["amount"] == "45.00"


def test_preselect_and_checkout_with_preselected_credits(api, world):
    pat = world.patient()
    jun8, claim = world.visit(pat, date(2026, 6, 8))
    world.pay(pat, "25.00", encounter=jun8, channel="cash")  # held, locked to 8 June
    from credits import services as credit_services

    avail = credit_services.manual_credit_add(patient_id=pat.pk, amount="100.00", reason="Carried over",
                                              actor=world.clerk)
    world.remit(claim, pr="60.00", paid="100.00")
    r = api.get(f"/patients/{pat.pk}/preselect", {"encounter_ids": str(jun8.pk)})
    assert r.status_code == 200, r.content
    pre = r.json()
    assert (pre["owed"], pre["covered"], pre["enough"]) == ("60.00", "60.00", True)
    locked = Credit.objects.get(patient=pat, source="held_payment")
    assert pre["credits"] == [{"credit": locked.pk, "amount": "25.00"}, {"credit": avail.pk, "amount": "35.00"}]

    r = api.post("/payments/checkout", {"patient": pat.pk, "encounter_ids": [jun8.pk],
                                        "use_preselected_credits": True})
    assert r.status_code == 201, r.content
    out = r.json()
    assert (out["owed"], out["charged"], out["payment"]) == ("60.00", "0.00", None)
    assert sorted(a["amount"] for a in out["applications"]) == ["25.00", "35.00"]
    assert api.get(f"/encounters/{jun8.pk}").json()["balance"] == "0.00"


def test_checkout_with_chosen_credits_charges_the_rest_to_the_card(api, world):
    pat = world.patient()
    enc, _ = world.visit(pat, date(2026, 2, 2), claim=False, estimated_pr="90.00")
    from credits import services as credit_services

    c = credit_services.manual_credit_add(patient_id=pat.pk, amount="40.00", reason="Goodwill", actor=world.clerk)
    r = api.post("/payments/checkout", {"patient": pat.pk, "encounter_ids": [enc.pk],
                                        "credits": [{"credit": c.pk, "amount": "30.00"}],
                                        "channel": "portal", "card_token": "tok_visa"})
    assert r.status_code == 201, r.content
    out = r.json()
    assert (out["owed"], out["charged"], out["payment"]["amount"]) == ("90.00", "60.00", "60.00")
    assert api.get(f"/credits/{c.pk}").json()["on_hand"] == "10.00"
    r = api.post("/payments/checkout", {"patient": pat.pk, "encounter_ids": [enc.pk],
                                        "credits": [{"credit": c.pk, "amount": "5.00"}],
                                        "use_preselected_credits": True})
    assert r.status_code == 400 and error_of(r)["field"] == "credits"
    other = world.patient()
    r = api.post("/payments/checkout", {"patient": other.pk, "encounter_ids": [enc.pk]})
    assert r.status_code == 404 and error_of(r)["field"] == "encounter_ids"


def test_credits_list_and_filter(api, world):
    pat = world.patient()
    enc, _ = world.visit(pat, date(2026, 3, 3))
    held = world.pay(pat, "50.00", encounter=enc).credits[0]
    from credits import services as credit_services

    manual = credit_services.manual_credit_add(patient_id=pat.pk, amount="5.00", reason="x", actor=world.clerk)
    ids = lambda **q: [c["id"] for c in api.get("/credits", q).json()["results"]]
    assert ids(state="locked") == [held.pk]
    assert ids(state=["locked", "available"]) == [manual.pk, held.pk]
    assert ids(source="manual") == [manual.pk]
    assert ids(locked_encounter=enc.pk) == [held.pk]
    assert ids(patient=pat.pk, source="held_payment") == [held.pk]


def test_manual_credit_move_unlock_remove(api, world):
    pat = world.patient()
    enc, _ = world.visit(pat, date(2026, 3, 3))
    r = api.post("/credits/manual", {"patient": pat.pk, "amount": "200.00", "reason": "carried over from old system"})
    assert r.status_code == 201
    c = r.json()
    assert (c["source"], c["state"], c["payment"]) == ("manual", "available", None)
    r = api.post("/credits/manual", {"patient": pat.pk, "amount": "10.00", "reason": " "})
    assert r.status_code == 400 and error_of(r)["field"] == "reason"

    r = api.post(f"/credits/{c['id']}/move", {"to_encounter": enc.pk, "reason": "For the March visit"})
    assert r.status_code == 200 and (r.json()["state"], r.json()["locked_encounter"]) == ("locked", enc.pk)
    r = api.post("/credits/unlock", {"credit_ids": [c["id"]], "reason": "Payer will never answer"})
    assert r.status_code == 200 and r.json() == {"unlocked": 1}
    assert api.get(f"/credits/{c['id']}").json()["state"] == "available"
    r = api.post(f"/credits/{c['id']}/move", {"to_encounter": None, "reason": "x"})
    assert r.status_code == 409 and error_of(r)["code"] == "rule_violation"
    r = api.post("/credits/unlock", {"reason": "x"})
    assert r.status_code == 400 and error_of(r)["field"] == "credit_ids"

    r = api.post(f"/credits/{c['id']}/remove", {"amount": "50.00", "reason": "Refunded outside settle"})
    assert r.status_code == 200 and (r.json()["on_hand"], r.json()["removed_amount"]) == ("150.00", "50.00")


def test_unlock_by_patient(api, world):
    pat = world.patient()
    enc, _ = world.visit(pat, date(2026, 3, 3))
    world.pay(pat, "50.00", encounter=enc)
    r = api.post("/credits/unlock", {"patient_ids": [pat.pk], "reason": "Payer never answers"})
    assert r.json() == {"unlocked": 1}


def test_credit_purchase(api, world):
    pat = world.patient()
    r = api.post("/credits/purchase", {"patient": pat.pk, "amount": "75.00", "channel": "portal",
                                       "card_token": "tok_visa"})
    assert r.status_code == 201, r.content
    (c,) = r.json()["credits"]
    assert (c["source"], c["state"], c["on_hand"]) == ("purchased", "available", "75.00")


def test_refund_above_threshold_needs_another_manager(api, manager_api, world):
    pat = world.patient()
    enc, _ = world.visit(pat, date(2026, 1, 1), claim=False)
    paid = world.pay(pat, "150.00", encounter=enc, channel="portal")
    credit = paid.credits[0]
    r = api.post(f"/credits/{credit.pk}/refunds", {"amount": "150.00", "reason": "Overpaid"})
    assert r.status_code == 201, r.content
    refund = r.json()
    assert (refund["state"], refund["needs_approval"], refund["method"]) == ("requested", True, "original_payment")
    r = api.post(f"/refunds/{refund['id']}/issue", {})
    assert r.status_code == 409
    r = api.post(f"/refunds/{refund['id']}/approve", {"reason": "ok"})
    assert r.status_code == 403 and error_of(r)["code"] == "permission_denied"
    r = manager_api.post(f"/refunds/{refund['id']}/approve", {"reason": "Checked the EOB"})
    assert r.status_code == 200 and r.json()["state"] == "approved"
    r = api.post(f"/refunds/{refund['id']}/issue", {})
    assert r.status_code == 200 and r.json()["state"] == "issued"
    assert Payment.objects.get(pk=paid.payment.pk).refunded_amount == 150
    assert [x["id"] for x in api.get("/refunds", {"state": "issued"}).json()["results"]] == [refund["id"]]


def test_refund_by_check_and_reject(api, manager_api, world):
    from credits import services as credit_services

    pat = world.patient()
    c = credit_services.manual_credit_add(patient_id=pat.pk, amount="200.00", reason="carried over from old system",
                                          actor=world.clerk)
    r = api.post(f"/credits/{c.pk}/refunds", {"amount": "50.00", "reason": "x", "method": "original_payment"})
    assert r.status_code == 409 and error_of(r)["field"] == "method"  # example F: no system payment behind it
    r = api.post(f"/credits/{c.pk}/refunds", {"amount": "50.00", "reason": "Patient moved away"})
    refund = r.json()
    assert (refund["method"], refund["state"]) == ("check", "approved")
    r = api.post(f"/refunds/{refund['id']}/issue", {})
    assert r.status_code == 400 and error_of(r)["field"] == "reference"
    r = api.post(f"/refunds/{refund['id']}/issue", {"reference": "CHK 5521"})
    assert r.status_code == 200 and r.json()["reference"] == "CHK 5521"

    big = api.post(f"/credits/{c.pk}/refunds", {"amount": "150.00", "reason": "All of it"}).json()
    r = api.post(f"/refunds/{big['id']}/reject", {"reason": "no"})
    assert r.status_code == 403  # needs approval: a manager rejects it
    r = manager_api.post(f"/refunds/{big['id']}/reject", {"reason": "Keep as credit, patient agreed"})
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    assert api.get(f"/credits/{c.pk}").json()["on_hand"] == "150.00"
    assert Refund.objects.filter(patient=pat).count() == 2


# --- strict input (issue 9, "Found" 5): one money parser, dates of service in range --------------------

def _written():
    from credits.models import Credit, Refund
    from ledger.models import Encounter, JournalEntry, Patient, Payment

    return {m.__name__: m.objects.count() for m in (Payment, Credit, Refund, JournalEntry, Encounter, Patient)}


LOOSE_MONEY = [  # each was accepted (stored as the number Python's Decimal() reads)
    ("1E2", "'1E2' is in exponent notation"),
    ("5e1", "'5e1' is in exponent notation"),
    ("1e-2", "'1e-2' is in exponent notation"),
    ("1_000", "'1_000' has a thousands separator"),
    ("５０", "'５０' has digits that are not ASCII 0-9"),
    ("٥٠", "'٥٠' has digits that are not ASCII 0-9"),
    ("+5.00", "'+5.00' has a '+' sign"),
    (" 5.00 ", "' 5.00 ' has spaces"),
    ("5.", "'5.' needs digits on both sides of the decimal point"),
    (".5", "'.5' needs digits on both sides of the decimal point"),
    ("1000000000000.00", "'1000000000000.00' is out of range (at most 999999999999.99 either way)"),
    ("-5.00", "'-5.00' has a minus sign; the amount must not be negative"),
]


@pytest.mark.parametrize("text,message", LOOSE_MONEY)
def test_loose_money_is_refused_everywhere_and_nothing_is_written(api, world, text, message):
    pat = world.patient()
    enc, _ = world.visit(pat, date(2026, 1, 10), claim=False, estimated_pr="30.00")
    credit = world.pay(pat, "80.00", channel="check").credits[0]
    before = _written()
    for path, body in [
        ("/payments", {"patient": pat.pk, "amount": text, "channel": "cash"}),
        ("/credits/manual", {"patient": pat.pk, "amount": text, "reason": "Carried over"}),
        ("/credits/purchase", {"patient": pat.pk, "amount": text, "channel": "portal", "card_token": "tok_visa"}),
        (f"/credits/{credit.pk}/refunds", {"amount": text, "reason": "Overpaid"}),
        (f"/credits/{credit.pk}/remove", {"amount": text, "reason": "Refunded outside settle"}),
        ("/encounters", {"patient": pat.pk, "date_of_service": "2026-02-01", "charge": text}),
        ("/payments/checkout", {"patient": pat.pk, "encounter_ids": [enc.pk],
                                "credits": [{"credit": credit.pk, "amount": text}]}),
    ]:
        r = api.post(path, body)
        assert r.status_code == 400, (path, r.content)
        err = error_of(r)
        field = "credits.0.amount" if path.endswith("checkout") else "charge" if path == "/encounters" else "amount"
        code = "out_of_range" if "out of range" in message else "invalid"
        assert (err["code"], err["field"]) == (code, field), (path, err)
        assert err["message"].startswith(f"{field}: {message}"), (path, err)
    assert _written() == before


def test_signed_money_takes_a_minus_but_nothing_else_loose(api, world):
    """A payer's take-back is negative: the minus is accepted there, the rest of the grammar holds."""
    pat = world.patient()
    _, claim = world.visit(pat, date(2026, 1, 10))
    before = _written()
    for text, message in LOOSE_MONEY[:-1]:
        r = api.post(f"/claims/{claim.pk}/result", {"outcome": "paid", "paid_amount": text, "reason": "835"})
        assert r.status_code == 400 and error_of(r)["message"].startswith(f"paid_amount: {message}"), r.content
    assert _written() == before


def test_json_whole_numbers_stay_money_and_fractions_stay_refused(api, world):
    pat = world.patient()
    r = api.post("/credits/manual", {"patient": pat.pk, "amount": 50, "reason": "Carried over"})
    assert r.status_code == 201 and r.json()["amount"] == "50.00"
    for amount in (50.5, 1e2, 10**13, True):
        r = api.post("/credits/manual", {"patient": pat.pk, "amount": amount, "reason": "Carried over"})
        assert r.status_code == 400 and error_of(r)["field"] == "amount", (amount, r.content)
    err = error_of(api.post("/credits/manual", {"patient": pat.pk, "amount": 10**13, "reason": "x"}))
    assert err["code"] == "out_of_range" and "out of range" in err["message"]
    err = error_of(api.post("/credits/manual", {"patient": pat.pk, "amount": "5.001", "reason": "x"}))
    assert err["code"] == "max_decimal_places" and "fractions of a cent" in err["message"]


@pytest.mark.parametrize("day,message", [
    ("0001-01-01", "date_of_service: 0001-01-01 is out of range; a date of service is between 1900-01-01 and "),
    ("9999-12-31", "date_of_service: 9999-12-31 is out of range; a date of service is between 1900-01-01 and "),
    ("2026-02-30", "date_of_service: '2026-02-30' is not a date of the calendar"),
    ("20260301", "date_of_service: '20260301' is not a date; write it as YYYY-MM-DD"),
    ("2026-W09-1", "date_of_service: '2026-W09-1' is not a date; write it as YYYY-MM-DD"),
    ("２０２６-03-01", "date_of_service: '２０２６-03-01' is not a date; write it as YYYY-MM-DD"),
])
def test_dates_of_service_out_of_range_or_not_iso_are_refused(api, world, day, message):
    pat = world.patient()
    before = _written()
    r = api.post("/encounters", {"patient": pat.pk, "date_of_service": day, "charge": "100.00"})
    assert r.status_code == 400, r.content
    err = error_of(r)
    assert err["field"] == "date_of_service" and err["message"].startswith(message), err
    assert _written() == before


def test_a_date_of_birth_in_the_future_is_refused(api, world):
    before = _written()
    r = api.post("/patients", {"account_number": "N-1", "first_name": "A", "last_name": "B",
                               "date_of_birth": "2999-01-01"})
    assert r.status_code == 400 and error_of(r)["field"] == "date_of_birth", r.content
    assert "out of range; a date of birth is between 1900-01-01 and today" in error_of(r)["message"]
    assert _written() == before


def test_an_835_with_an_amount_beyond_the_columns_is_refused_with_where(api, world):
    """The same file the admin upload crashed on (DataError): refused, with segment, element and byte."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from remittances.models import RemittanceClaim
    from remittances.x12.generator import ClaimSpec, generate_835

    data = generate_835(specs=[ClaimSpec("BIG-1", charge="100.00", paid="60.00")])
    data = data.replace(b"CLP*BIG-1*1*100.00*60.00*", b"CLP*BIG-1*1*100.00*1000000000000.00*")
    before = _written()
    r = api.post("/remittance-files", {"file": SimpleUploadedFile("big.835", data)}, fmt="multipart")
    assert r.status_code == 201, r.content
    f = r.json()
    assert f["status"] == "refused" and f["claim_count"] == 0
    (err,) = f["errors"]
    assert (err["segment_id"], err["element"], err["position"]) == ("CLP", 4, data.index(b"CLP*BIG-1"))
    assert "'1000000000000.00': is out of range" in err["message"]
    assert _written() == before and not RemittanceClaim.objects.exists()
