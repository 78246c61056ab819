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

    avail = credit_services.credit_add_manual(patient_id=pat.pk, amount="100.00", note="Carried over",
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

    c = credit_services.credit_add_manual(patient_id=pat.pk, amount="40.00", note="Goodwill", actor=world.clerk)
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

    manual = credit_services.credit_add_manual(patient_id=pat.pk, amount="5.00", note="x", actor=world.clerk)
    ids = lambda **q: [c["id"] for c in api.get("/credits", q).json()["results"]]
    assert ids(state="locked") == [held.pk]
    assert ids(state=["locked", "available"]) == [manual.pk, held.pk]
    assert ids(source="manual") == [manual.pk]
    assert ids(locked_encounter=enc.pk) == [held.pk]
    assert ids(patient=pat.pk, source="held_payment") == [held.pk]


def test_manual_credit_move_unlock_remove(api, world):
    pat = world.patient()
    enc, _ = world.visit(pat, date(2026, 3, 3))
    r = api.post("/credits/manual", {"patient": pat.pk, "amount": "200.00", "note": "carried over from old system"})
    assert r.status_code == 201
    c = r.json()
    assert (c["source"], c["state"], c["payment"]) == ("manual", "available", None)
    r = api.post("/credits/manual", {"patient": pat.pk, "amount": "10.00", "note": " "})
    assert r.status_code == 400 and error_of(r)["field"] == "note"

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
    r = api.post(f"/refunds/{refund['id']}/approve", {"note": "ok"})
    assert r.status_code == 403 and error_of(r)["code"] == "permission_denied"
    r = manager_api.post(f"/refunds/{refund['id']}/approve", {"note": "Checked the EOB"})
    assert r.status_code == 200 and r.json()["state"] == "approved"
    r = api.post(f"/refunds/{refund['id']}/issue", {})
    assert r.status_code == 200 and r.json()["state"] == "issued"
    assert Payment.objects.get(pk=paid.payment.pk).refunded_amount == 150
    assert [x["id"] for x in api.get("/refunds", {"state": "issued"}).json()["results"]] == [refund["id"]]


def test_refund_by_check_and_reject(api, manager_api, world):
    from credits import services as credit_services

    pat = world.patient()
    c = credit_services.credit_add_manual(patient_id=pat.pk, amount="200.00", note="carried over from old system",
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
    r = api.post(f"/refunds/{big['id']}/reject", {"note": "no"})
    assert r.status_code == 403  # needs approval: a manager rejects it
    r = manager_api.post(f"/refunds/{big['id']}/reject", {"note": "Keep as credit, patient agreed"})
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    assert api.get(f"/credits/{c.pk}").json()["on_hand"] == "150.00"
    assert Refund.objects.filter(patient=pat).count() == 2
