"""835 uploads (posted, duplicate, refused), results per file and per claim, the unmatched queue
and matching by hand; nightly runs (preview, run, read)."""

from datetime import date

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from credits.models import NightlyRun
from remittances.x12.generator import ClaimSpec, generate_835
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db

PAYER_ID = "1999999999"


@pytest.fixture
def w(world):
    world.payer.payer_identifier = PAYER_ID
    world.payer.save()
    return world


def upload(api, data: bytes, name="era.835", **fields):
    return api.post("/remittance-files", {"file": SimpleUploadedFile(name, data), **fields}, fmt="multipart")


def era(*specs, icn=1):
    return generate_835(specs=list(specs), interchange_control_number=icn, check_number=f"CHK{icn}", payer_id=PAYER_ID)


def test_upload_posts_matches_and_queues_the_unmatched(api, w):
    pat = w.patient()
    _, claim = w.visit(pat, date(2026, 3, 3), number="M-1")
    data = era(ClaimSpec("M-1", charge="200.00", paid="150.00", patient_responsibility=[("2", "20.00")]),
               ClaimSpec("NOPE-9", charge="80.00", paid="50.00"))
    r = upload(api, data)
    assert r.status_code == 201, r.content
    f = r.json()
    assert (f["status"], f["claim_count"], f["claims_by_state"]) == ("posted", 2, {"posted": 1, "unmatched": 1})
    assert api.get(f"/remittance-files/{f['id']}").json()["paid_total"] == "200.00"
    claims = api.get(f"/remittance-files/{f['id']}/claims").json()["results"]
    assert sorted((c["claim_number"], c["state"]) for c in claims) == [("M-1", "posted"), ("NOPE-9", "unmatched")]
    assert api.get(f"/remittance-files/{f['id']}/claims", {"state": "posted"}).json()["results"][0]["claim"] == claim.pk

    queue = api.get("/remittance-claims", {"state": "unmatched"}).json()["results"]
    assert [c["claim_number"] for c in queue] == ["NOPE-9"]
    assert api.get("/remittance-claims", {"waiting": "true"}).json()["results"] == queue

    # staff find the claim under another number and match it by hand
    _, claim2 = w.visit(pat, date(2026, 3, 4), charge="80.00", number="M-2")
    r = api.post(f"/remittance-claims/{queue[0]['id']}/match", {"claim": claim2.pk, "reason": "Typo in CLP01"})
    assert r.status_code == 409 and error_of(r)["code"] == "mismatch"  # the 835's patient and DoS differ
    r = api.post(f"/remittance-claims/{queue[0]['id']}/match", {"claim": claim2.pk, "reason": "Typo in CLP01",
                                                                 "confirm_mismatch": True})
    assert r.status_code == 200, r.content
    assert (r.json()["state"], r.json()["claim"]) == ("posted", claim2.pk)
    r = api.post(f"/remittance-claims/{queue[0]['id']}/match", {"claim": claim2.pk, "reason": "again"})
    assert r.status_code == 409

    # the same file again posts nothing
    r = upload(api, data)
    assert (r.json()["status"], r.json()["duplicate_of"]) == ("duplicate", f["id"])


def test_an_unreadable_file_is_refused_with_where(api, w):
    r = upload(api, b"ISA*00*garbage~")
    assert r.status_code == 201
    f = r.json()
    assert f["status"] == "refused" and f["errors"][0]["message"]
    assert "position" in f["errors"][0]
    assert api.get("/remittance-files", {"status": "refused"}).json()["results"][0]["id"] == f["id"]


def test_upload_without_posting_and_bad_uploads(api, w):
    r = upload(api, era(ClaimSpec("Z-1")), post="false")
    assert r.status_code == 201 and r.json()["status"] == "received"
    r = api.post("/remittance-files", {"post": "true"}, fmt="multipart")
    assert r.status_code == 400 and error_of(r)["field"] == "file"
    r = api.post("/remittance-files", {"file": "not a file"})  # JSON
    assert r.status_code == 415


def test_nightly_preview_run_and_read(api, w):
    pat = w.patient()
    enc, claim = w.visit(pat, date(2026, 3, 3))
    held = w.pay(pat, "50.00", encounter=enc).credits[0]
    w.remit(claim, pr="20.00", paid="150.00")

    r = api.post("/nightly-runs/preview")
    assert r.status_code == 200, r.content
    pre = r.json()
    assert (pre["status"], pre["applied_total"], pre["lines_truncated"]) == ("succeeded", "20.00", False)
    assert pre["lines"] == [{"patient": pat.pk, "encounter": enc.pk, "credit": held.pk, "amount": "20.00",
                             "locked": True}]
    assert not NightlyRun.objects.exists()  # a preview writes nothing

    r = api.post("/nightly-runs", {"reason": "EHR end of day"})
    assert r.status_code == 201, r.content
    run = r.json()
    assert (run["status"], run["applied_total"], run["released_credits"], run["dry_run"]) == \
        ("succeeded", "20.00", 1, False)
    again = api.post("/nightly-runs").json()
    assert again["applied_total"] == "0.00"  # twice is once
    assert [x["id"] for x in api.get("/nightly-runs").json()["results"]] == [again["id"], run["id"]]
    assert api.get(f"/nightly-runs/{run['id']}").json()["application_count"] == 1
    assert api.get("/nightly-runs", {"status": "failed"}).json()["results"] == []
    assert NightlyRun.objects.get(pk=run["id"]).triggered_by == api.token.user  # the integration ran it


def test_apply_credits_by_hand_for_one_patient(api, w):
    w.practice.auto_apply = False
    w.practice.save()
    pat = w.patient()
    enc, claim = w.visit(pat, date(2026, 3, 3))
    w.pay(pat, "50.00", encounter=enc)
    w.remit(claim, pr="20.00", paid="150.00")
    assert api.post("/nightly-runs").json()["applied_total"] == "0.00"  # example G: auto-apply off
    r = api.post(f"/patients/{pat.pk}/apply-credits", {"reason": "Staff applied by hand"})
    assert r.status_code == 200, r.content
    assert (r.json()["applied_total"], r.json()["released_credits"]) == ("20.00", 1)
