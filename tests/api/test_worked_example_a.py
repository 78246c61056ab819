"""DOMAIN.md worked example A, driven only through the API, as an EHR would: copay held, then
settled by the remittance (an 835 upload) and the nightly run, and the rest refunded to the card."""

import uuid

import pytest

from credits.selectors import credit_liability
from ledger.models import JournalEntry
from remittances.x12.generator import ClaimSpec, generate_835

pytestmark = pytest.mark.django_db

PAYER_ID = "1999999999"


def post(api, path, data, status=201, **kw):
    r = api.post(path, data, key=str(uuid.uuid4()), **kw)
    assert r.status_code == status, r.content
    return r.json()


def test_example_a_through_the_api(api):
    payer = post(api, "/payers", {"name": "Acme Health", "payer_type": "commercial", "payer_identifier": PAYER_ID})
    patient = post(api, "/patients", {"account_number": "A-1", "first_name": "Ada", "last_name": "Lovelace"})
    visit = post(api, "/encounters", {"patient": patient["id"], "date_of_service": "2026-03-03", "charge": "200.00"})
    claim = post(api, "/claims", {"encounter": visit["id"], "payer": payer["id"], "claim_number": "A-0303"})
    assert (claim["state"], claim["finalized"], claim["billed_amount"]) == ("submitted", False, "200.00")

    # $50 at the front desk by card reader: the claim is open, so it is held, locked to 3 March
    paid = post(api, "/payments", {"patient": patient["id"], "encounter": visit["id"], "amount": "50.00",
                                   "channel": "card_reader", "card_token": "tok_visa"})
    assert paid["payment"]["processor_reference"].startswith("sbx_ch_")
    assert paid["applications"] == []
    (held,) = paid["credits"]
    assert (held["state"], held["source"], held["on_hand"], held["locked_encounter"]) == \
        ("locked", "held_payment", "50.00", visit["id"])
    assert api.get(f"/patients/{patient['id']}").json()["locked_credit"] == "50.00"

    # the remittance: PR $20, sent as an 835 file
    era = generate_835(specs=[ClaimSpec("A-0303", charge="200.00", paid="150.00",
                                        patient_responsibility=[("2", "20.00")])], payer_id=PAYER_ID)
    f = post(api, "/remittance-files", {"file": _upload(era)}, fmt="multipart")
    assert (f["status"], f["claim_count"], f["claims_by_state"]) == ("posted", 1, {"posted": 1})
    assert api.get(f"/claims/{claim['id']}").json()["state"] == "paid"
    enc = api.get(f"/encounters/{visit['id']}").json()
    assert (enc["remittance_pr"], enc["pr"], enc["balance"], enc["locked_credit"]) == ("20.00", "20.00", "20.00",
                                                                                       "50.00")

    # preview, then the nightly run: $20 of the locked credit pays 3 March, the other $30 becomes available
    preview = post(api, "/nightly-runs/preview", {}, status=200)
    assert [(ln["credit"], ln["encounter"], ln["amount"], ln["locked"]) for ln in preview["lines"]] == \
        [(held["id"], visit["id"], "20.00", True)]
    run = post(api, "/nightly-runs", {})
    assert (run["status"], run["applied_total"], run["application_count"]) == ("succeeded", "20.00", 1)
    assert api.get(f"/nightly-runs/{run['id']}").json()["applied_total"] == "20.00"
    credit = api.get(f"/credits/{held['id']}").json()
    assert (credit["state"], credit["on_hand"], credit["applied_amount"]) == ("available", "30.00", "20.00")
    assert api.get(f"/encounters/{visit['id']}").json()["balance"] == "0.00"
    available = api.get("/credits", {"patient": patient["id"], "state": "available"}).json()["results"]
    assert [c["id"] for c in available] == [held["id"]]

    # the patient asks for the $30 back: to the card, approved (under the threshold) and issued at once
    issued = post(api, f"/credits/{held['id']}/refunds", {"amount": "30.00", "reason": "Patient asked for the rest"})
    assert (issued["method"], issued["state"], issued["payment"], issued["issue_error"]) == \
        ("original_payment", "issued", paid["payment"]["id"], None)
    assert issued["reference"].startswith("sbx_re_")
    credit = api.get(f"/credits/{held['id']}").json()
    assert (credit["state"], credit["on_hand"], credit["refunded_amount"]) == ("refunded", "0.00", "30.00")
    assert api.get(f"/payments/{paid['payment']['id']}").json()["refunded_amount"] == "30.00"
    final = api.get(f"/patients/{patient['id']}").json()
    assert (final["due_now"], final["pending_payer"], final["available_credit"], final["locked_credit"]) == \
        ("0.00", "0.00", "0.00", "0.00")
    assert credit_liability(patient["id"]) == 0
    # the history names the integration as the actor
    assert JournalEntry.objects.filter(kind="refund", created_by=api.token.user).count() == 1


def _upload(data: bytes, name="era-a.835"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="application/octet-stream")
