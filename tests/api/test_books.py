"""Payers, patients, encounters and claims through the API: create, read, filter, page, and the
claim transitions (payer decision, resubmission)."""

from datetime import date

import pytest

from credits.models import Credit
from ledger.models import Payer
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db


def test_payers(api, world):
    r = api.post("/payers", {"name": "Medicare TX", "payer_type": "medicare", "payer_identifier": "MCR"})
    assert r.status_code == 201
    assert r.json()["payer_type"] == "medicare"
    listed = api.get("/payers", {"payer_type": "medicare"}).json()["results"]
    assert [p["name"] for p in listed] == ["Medicare TX"]
    assert api.get(f"/payers/{world.payer.pk}").json()["name"] == world.payer.name
    r = api.post("/payers", {"name": "X", "payer_type": "martian"})
    assert r.status_code == 400 and error_of(r)["field"] == "payer_type"
    # a Medicare contractor says which part it pays (the CMS-838 is one report per part); only Medicare has one
    r = api.post("/payers", {"name": "Novitas JL", "payer_type": "medicare", "medicare_part": "B"})
    assert (r.status_code, r.json()["medicare_part"]) == (201, "B")
    r = api.post("/payers", {"name": "Aetna", "payer_type": "commercial", "medicare_part": "A"})
    assert r.status_code == 400 and error_of(r)["field"] == "medicare_part"
    assert not Payer.objects.filter(name="Aetna").exists()


def test_patients_create_read_filter(api, world):
    r = api.post("/patients", {"account_number": "EHR-1", "first_name": "Ada", "last_name": "Byron",
                               "date_of_birth": "1990-12-10", "email": "ada@example.com", "member_id": "M1"})
    assert r.status_code == 201, r.content
    p = r.json()
    assert (p["due_now"], p["pending_payer"], p["available_credit"], p["locked_credit"]) == ("0.00",) * 4
    assert "balance" not in p  # split into due_now and pending_payer (issue 10)
    pat = world.patient(last_name="Other")
    enc, _ = world.visit(pat, date(2026, 2, 1), claim=False, estimated_pr="30.00")
    world.pay(pat, "40.00", encounter=enc, channel="check")
    got = api.get(f"/patients/{pat.pk}").json()
    assert (got["due_now"], got["pending_payer"], got["available_credit"]) == ("0.00", "0.00", "10.00")
    assert [x["id"] for x in api.get("/patients", {"has_available_credit": "true"}).json()["results"]] == [pat.pk]
    assert [x["id"] for x in api.get("/patients", {"account_number": "EHR-1"}).json()["results"]] == [p["id"]]
    assert [x["id"] for x in api.get("/patients", {"last_name": "byron"}).json()["results"]] == [p["id"]]
    r = api.post("/patients", {"account_number": "EHR-2", "first_name": "A", "last_name": "B", "email": "nope"})
    assert r.status_code == 400 and error_of(r)["field"] == "email"


def test_lists_are_cursor_paged_newest_first(api, world):
    ids = [world.patient().pk for _ in range(5)]
    page = api.get("/patients", {"limit": 2}).json()
    assert [p["id"] for p in page["results"]] == ids[::-1][:2]
    seen = [p["id"] for p in page["results"]]
    while page["next"]:
        page = api.client.get(page["next"]).json()
        seen += [p["id"] for p in page["results"]]
    assert seen == ids[::-1]


def test_patient_auto_apply_exclusion(api, world):
    pat = world.patient()
    r = api.post(f"/patients/{pat.pk}/auto-apply", {"excluded": True, "reason": "Asked for a refund instead"})
    assert r.status_code == 200 and r.json()["exclude_from_auto_apply"] is True
    r = api.post(f"/patients/{pat.pk}/auto-apply", {"excluded": False})
    assert r.status_code == 400 and error_of(r)["field"] == "reason"


def test_encounters(api, world):
    pat = world.patient()
    r = api.post("/encounters", {"patient": pat.pk, "date_of_service": "2026-04-10", "charge": "180.00",
                                 "estimated_pr": "25.00", "description": "Follow-up"})
    assert r.status_code == 201, r.content
    e = r.json()
    assert (e["pr"], e["balance"], e["remittance_pr"], e["has_open_claim"]) == ("25.00", "25.00", None, False)
    world.visit(pat, date(2026, 1, 1), claim=False)
    assert [x["date_of_service"] for x in api.get("/encounters", {"patient": pat.pk, "date_from": "2026-02-01"})
            .json()["results"]] == ["2026-04-10"]
    assert [x["id"] for x in api.get("/encounters", {"has_balance": "true"}).json()["results"]] == [e["id"]]
    r = api.post("/encounters", {"patient": pat.pk, "date_of_service": "2026-04-10", "charge": "10.00",
                                 "estimated_pr": "20.00"})
    assert r.status_code == 400 and error_of(r)["field"] == "estimated_pr"
    r = api.post("/encounters", {"patient": 999999, "date_of_service": "2026-04-10", "charge": "10.00"})
    assert r.status_code == 404 and error_of(r)["field"] == "patient"


def test_claims_submit_result_and_filter(api, world):
    pat = world.patient()
    enc, _ = world.visit(pat, date(2026, 5, 5), claim=False)
    world.pay(pat, "40.00", encounter=enc, channel="cash")  # no claim yet: pays the estimated PR of 0 -> credit
    r = api.post("/claims", {"encounter": enc.pk, "payer": world.payer.pk, "claim_number": "C-55"})
    assert r.status_code == 201, r.content
    claim = r.json()
    assert (claim["state"], claim["billed_amount"], claim["patient"]) == ("submitted", "200.00", pat.pk)
    r = api.post("/claims", {"encounter": enc.pk, "payer": world.payer.pk, "claim_number": "C-55"})
    assert r.status_code == 409 and error_of(r)["code"] == "duplicate"

    r = api.post(f"/claims/{claim['id']}/result", {"outcome": "paid", "paid_amount": "150.00",
                                                   "adjustment_amount": "20.00", "patient_responsibility": "30.00",
                                                   "reason": "EOB 2026-05-20"})
    assert r.status_code == 200, r.content
    out = r.json()
    assert (out["claim"]["state"], out["claim"]["finalized"], out["encounter"]["pr"]) == ("paid", True, "30.00")
    assert api.get("/claims", {"state": "paid", "patient": pat.pk}).json()["results"][0]["id"] == claim["id"]
    assert api.get("/claims", {"state": "denied"}).json()["results"] == []
    r = api.post(f"/claims/{claim['id']}/result", {"outcome": "sideways", "reason": "x"})
    assert r.status_code == 400 and error_of(r)["field"] == "outcome"


def test_claim_resubmit_locks_the_patient_money(api, world):
    pat = world.patient()
    enc, claim = world.visit(pat, date(2026, 7, 2))
    world.remit(claim, pr="80.00", paid="100.00")
    world.pay(pat, "80.00", encounter=enc, channel="check")
    r = api.post(f"/claims/{claim.pk}/resubmit", {"reason": "Corrected coding"})
    assert r.status_code == 200, r.content
    out = r.json()
    assert out["claim"]["state"] == "resubmitted"
    (credit,) = out["credits_created"]
    assert (credit["state"], credit["source"], credit["on_hand"], credit["locked_encounter"]) == \
        ("locked", Credit.Source.RESUBMISSION, "80.00", enc.pk)
    r = api.post(f"/claims/{claim.pk}/result", {"outcome": "pending", "reason": "Payer pended"})
    assert r.status_code == 200
    r = api.post(f"/claims/{claim.pk}/result", {"outcome": "reversed", "reason": "x"})
    assert r.status_code == 409 and error_of(r)["code"] == "rule_violation"
