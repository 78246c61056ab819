"""Separation of duties through the API (issue 9): the amounts one token may move alone, manual
credits and CSV imports that wait for a manager, refunds added up per patient and issued at once
when no approval is needed (the service's decision, as in the admin)."""

from datetime import date
from decimal import Decimal as D

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from credits import services as credit_services
from credits.models import Credit, CreditImport, ManualCreditRequest, Refund
from ledger.models import Membership
from tests.api.conftest import error_of, make_api
from tests.credits.test_invariants import check_duties, check_invariants, counts

pytestmark = pytest.mark.django_db


def test_a_manual_credit_of_2147483648_is_refused_with_its_field(api, world):
    """Issue 9: POST /credits/manual accepted 2,147,483,648.00 without approval."""
    pat = world.patient()
    before = counts()
    r = api.post("/credits/manual", {"patient": pat.pk, "amount": "2147483648.00", "reason": "old system"})
    assert r.status_code == 400
    err = error_of(r)
    assert (err["code"], err["field"]) == ("above_maximum", "amount")
    assert "100,000.00 one operation may move" in err["message"]
    assert counts() == before


def test_a_manual_credit_above_the_limit_waits_for_a_manager_token(api, manager_api, world):
    pat = world.patient()
    r = api.post("/credits/manual", {"patient": pat.pk, "amount": "1500.00", "reason": "Carried over"})
    assert r.status_code == 202, r.content
    req = r.json()
    assert (req["state"], req["needs_approval"], req["credit"], req["amount"]) == ("pending", True, None, "1500.00")
    assert api.get("/credits", {"patient": pat.pk}).json()["results"] == []
    queue = api.get("/manual-credits", {"state": "pending"}).json()["results"]
    assert [q["id"] for q in queue] == [req["id"]]
    assert api.get("/manual-credits", {"state": "nonsense"}).status_code == 400

    r = api.post(f"/manual-credits/{req['id']}/approve", {"reason": "ok"})
    assert r.status_code == 403 and error_of(r)["code"] == "permission_denied"  # a billing token
    r = manager_api.post(f"/manual-credits/{req['id']}/approve", {"reason": "Conversion report"})
    assert r.status_code == 200, r.content
    done = r.json()
    assert (done["state"], done["decision_note"]) == ("approved", "Conversion report") and done["credit"]
    credit = api.get(f"/credits/{done['credit']}").json()
    assert (credit["state"], credit["on_hand"], credit["source"]) == ("available", "1500.00", "manual")
    r = manager_api.post(f"/manual-credits/{req['id']}/reject", {"reason": "late"})
    assert r.status_code == 409 and error_of(r)["code"] == "rule_violation"
    check_duties(world.practice.pk)


def test_a_manager_cannot_approve_their_own_manual_credit_through_another_token(manager_api, world):
    pat = world.patient()
    req = manager_api.post("/credits/manual", {"patient": pat.pk, "amount": "5000.00", "reason": "mine"}).json()
    second = make_api(world.practice, role=Membership.Role.MANAGER, name="second-token", person=world.manager)
    r = second.post(f"/manual-credits/{req['id']}/approve", {})
    assert r.status_code == 403 and "own manual credit" in error_of(r)["message"]
    r = second.post(f"/manual-credits/{req['id']}/reject", {"reason": "mine too"})
    assert r.status_code == 403
    assert ManualCreditRequest.objects.get(pk=req["id"]).state == "pending"


def test_another_practice_sees_and_decides_nothing(api, other_api, world):
    pat = world.patient()
    req = api.post("/credits/manual", {"patient": pat.pk, "amount": "5000.00", "reason": "old"}).json()
    assert other_api.get(f"/manual-credits/{req['id']}").status_code == 404
    assert other_api.get("/manual-credits").json()["results"] == []
    their_manager = make_api(other_api.practice, role=Membership.Role.MANAGER, name="their-boss")
    assert their_manager.post(f"/manual-credits/{req['id']}/approve", {}).status_code == 404


# --- refunds -------------------------------------------------------------------------------------------------

def test_three_refunds_of_100_through_the_api(api, manager_api, world):
    pat = world.patient()
    c = credit_services.manual_credit_add(patient_id=pat.pk, amount="300.00", reason="old", actor=world.clerk)
    states = [api.post(f"/credits/{c.pk}/refunds", {"amount": "100.00", "reason": "by check",
                                                    "reference": f"CHK {n}"}).json()
              for n in (1, 2, 3)]
    assert [(s["state"], s["needs_approval"], s["reference"]) for s in states] == \
        [("issued", False, "CHK 1"), ("requested", True, ""), ("requested", True, "")]
    r = manager_api.post(f"/refunds/{states[1]['id']}/approve", {"reason": "ok"})
    assert r.status_code == 200 and r.json()["state"] == "approved"
    r = api.post(f"/refunds/{states[1]['id']}/issue", {"reference": "CHK 2"})
    assert r.status_code == 200 and r.json()["state"] == "issued"
    check_invariants(world.practice.pk)


def test_a_card_refund_below_the_threshold_is_issued_at_once(api, world):
    pat = world.patient()
    credit = world.pay(pat, "80.00", channel="portal").credits[0]
    r = api.post(f"/credits/{credit.pk}/refunds", {"amount": "30.00", "reason": "asked"})
    assert r.status_code == 201, r.content
    body = r.json()
    assert (body["state"], body["method"], body["issue_error"]) == ("issued", "original_payment", None)
    assert body["reference"].startswith("sbx_re_")
    assert api.get(f"/credits/{credit.pk}").json()["refunded_amount"] == "30.00"
    r = api.post(f"/credits/{credit.pk}/refunds", {"amount": "10.00", "reason": "x", "reference": "C" * 101})
    assert r.status_code == 400 and error_of(r)["field"] == "reference"


# --- CSV imports -----------------------------------------------------------------------------------------------

def upload(client, name, body: bytes, **extra):
    return client.post("/credit-imports", {"file": SimpleUploadedFile(name, body), **extra}, fmt="multipart")


def test_csv_import_through_the_api(api, manager_api, world):
    ana = world.patient(account_number="A-1")
    world.visit(ana, date(2026, 1, 10))
    bad = b"account_number,amount,note,date_of_service\nA-1,1e400,x,\nNOPE,1.00,x,\nA-1,1.00,x,2026-01-11\n"
    before = counts()
    r = upload(api, "bad.csv", bad)
    assert r.status_code == 400
    err = error_of(r)
    assert err["field"] == "file" and err["message"].startswith("bad.csv: 3 problem(s); nothing was imported")
    for needle in ("line 2: amount: '1e400' is in exponent notation", "line 3: unknown patient account number",
                   "line 4: the patient has no visit on 2026-01-11"):
        assert needle in err["message"]
    assert counts() == before

    r = upload(api, "small.csv", b"account_number,amount,note\nA-1,25.00,old balance\n", reason="Conversion")
    assert r.status_code == 201, r.content
    assert (r.json()["state"], r.json()["rows"], r.json()["total"], r.json()["reason"]) == \
        ("imported", 1, "25.00", "Conversion")
    assert upload(api, "small-again.csv", b"account_number,amount,note\nA-1,25.00,old balance\n").status_code == 409

    big = upload(api, "big.csv", b"account_number,amount,note\nA-1,2500.00,old balance\n").json()
    assert (big["state"], big["needs_approval"]) == ("pending", True)
    assert [i["id"] for i in api.get("/credit-imports", {"state": "pending"}).json()["results"]] == [big["id"]]
    assert api.post(f"/credit-imports/{big['id']}/approve", {}).status_code == 403
    r = manager_api.post(f"/credit-imports/{big['id']}/approve", {"reason": "Checked"})
    assert r.status_code == 200 and r.json()["state"] == "imported"
    amounts = sorted(c.amount for c in Credit.objects.filter(patient=ana, source="import"))
    assert amounts == [D("25.00"), D("2500.00")]
    assert CreditImport.objects.get(pk=big["id"]).decided_by == world.manager
    check_invariants(world.practice.pk)
    check_duties(world.practice.pk)


def test_practice_limits_through_the_api(manager_api, world):
    r = manager_api.patch("/practice", {"max_operation_amount": "10000000.01", "reason": "more"})
    assert r.status_code == 400 and error_of(r)["field"] == "max_operation_amount"
    r = manager_api.patch("/practice", {"manual_credit_approval_limit": "250.00", "approval_window_days": 60,
                                        "max_operation_amount": "20000.00", "reason": "Tighter limits"})
    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["manual_credit_approval_limit"], body["approval_window_days"], body["max_operation_amount"]) == \
        ("250.00", 60, "20000.00")
    assert Refund.objects.count() == 0
