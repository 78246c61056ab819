"""The adjudication API's remaining routes (issue 11 item 10): confirming the balance, reviewing the
source, case documents (upload, list, download), the refund work list and its refund, and unclaimed
property (list, letter, turn-over, holder report). Each calls the service the admin uses; another
practice's token gets 404 with nothing written, billing turning over gets 403, bad input a 400 (or
413 for a file too large) with nothing written, and a POST with the same Idempotency-Key runs once."""

import csv
import io
from datetime import date
from decimal import Decimal as D

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from adjudication import letters
from adjudication.models import Case, CaseDocument, CaseEvent, RefundPolicy, UnclaimedProperty
from credits import services as credit_services
from credits.models import Credit, Refund
from ledger.models import Membership
from tests.adjudication.test_unclaimed import dormant_credit, listed, noon
from tests.api.conftest import error_of, make_api
from tests.api.test_adjudication_api import patient_case, written

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def today():
    with time_machine.travel("2026-03-10 15:00 +00:00", tick=False):
        yield


def upload(api, case, name="eob.pdf", content=PDF, reason="The payer's EOB", **kw):
    return api.post(f"/cases/{case.pk}/documents", {"file": SimpleUploadedFile(name, content), "reason": reason},
                    fmt="multipart", **kw)


# --- confirm balance, review source ------------------------------------------------------------------

def test_confirm_balance_and_review_source_are_on_the_record(api, world, today):
    case = patient_case(world, "120.00")
    r = api.post(f"/cases/{case.pk}/confirm-balance", {"reason": "Checked the ledger"})
    assert r.status_code == 201, r.content
    assert (r.json()["kind"], r.json()["data"]["amount"]) == ("balance_confirmed", "120.00")
    r = api.post(f"/cases/{case.pk}/review-source", {"reason": "Month end", "findings": "Paid twice at the desk"})
    assert r.status_code == 201, r.content
    body = r.json()
    assert (body["kind"], body["text"]) == ("source_reviewed", "Paid twice at the desk")
    assert body["data"]["source"]["credit"] == case.credit_id
    kinds = [e["kind"] for e in api.get(f"/cases/{case.pk}/events").json()["results"]]
    assert kinds == ["balance_confirmed", "source_reviewed"]


def test_confirm_balance_of_money_gone_is_409_and_missing_reason_400(api, world, today):
    case = patient_case(world, "120.00")
    before = written(case.pk)
    for path, body, field in [("confirm-balance", {}, "reason"), ("review-source", {"findings": "x"}, "reason"),
                              ("review-source", {"reason": "x"}, "findings")]:
        r = api.post(f"/cases/{case.pk}/{path}", body)
        assert r.status_code == 400 and error_of(r)["field"] == field, (path, r.content)
    credit_services.credit_remove(credit_id=case.credit_id, amount="120.00", actor=world.clerk,
                                  reason="Refunded outside settle")
    r = api.post(f"/cases/{case.pk}/confirm-balance", {"reason": "x"})
    assert r.status_code == 409 and error_of(r)["code"] == "balance_gone", r.content
    assert written(case.pk) == before


# --- documents ------------------------------------------------------------------------------------------

def test_document_upload_list_and_download(api, world, today):
    case = patient_case(world)
    r = upload(api, case)
    assert r.status_code == 201, r.content
    doc = r.json()
    assert (doc["filename"], doc["content_type"], doc["size"]) == ("eob.pdf", "application/pdf", len(PDF))
    listed_docs = api.get(f"/cases/{case.pk}/documents").json()["results"]
    assert [d["id"] for d in listed_docs] == [doc["id"]]
    r = api.get(f"/cases/{case.pk}/documents/{doc['id']}/file")
    assert r.status_code == 200
    assert b"".join(r.streaming_content) == PDF
    assert r["Content-Type"] == "application/pdf"
    assert r["Content-Disposition"].startswith("attachment") and "eob.pdf" in r["Content-Disposition"]
    assert CaseEvent.objects.filter(case=case, kind="document").count() == 1
    r = api.get(f"/cases/{case.pk}/documents/987654/file")
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"


def test_document_refusals_in_the_error_shape_with_nothing_written(api, world, today):
    case = patient_case(world)
    before = written(case.pk)
    for name, content, code in [("scan.pdf", b"\x89PNG\r\n\x1a\n....", "wrong_type"),
                                ("notes.html", b"<html></html>", "wrong_type"), ("blob.bin", b"\x00\x01\x02", "wrong_type"),
                                ("empty.pdf", b"", "empty")]:
        r = upload(api, case, name, content)
        assert r.status_code == 400, (name, r.content)
        assert (error_of(r)["code"], error_of(r)["field"]) == (code, "file"), name
    r = upload(api, case, reason="")
    assert r.status_code == 400 and error_of(r)["field"] == "reason", r.content
    with override_settings(SETTLE_CASE_DOCUMENT_MAX_BYTES=16):
        r = upload(api, case)
    assert r.status_code == 413 and (error_of(r)["code"], error_of(r)["field"]) == ("too_large", "file"), r.content
    assert written(case.pk) == before
    assert not CaseDocument.objects.exists()
    assert upload(api, case).status_code == 201
    r = upload(api, case, "again.pdf")  # the same bytes on the same case
    assert r.status_code == 409 and error_of(r)["code"] == "duplicate", r.content
    assert CaseDocument.objects.count() == 1


def test_document_upload_with_the_same_idempotency_key_twice_runs_once(api, world, today):
    case = patient_case(world)
    first = upload(api, case, key="doc-1")
    again = upload(api, case, key="doc-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert CaseDocument.objects.filter(case=case).count() == 1


# --- the refund work list ---------------------------------------------------------------------------------

@pytest.fixture
def work_list(world, today):
    world.practice.refund_approval_threshold = D("5000.00")
    world.practice.save()
    RefundPolicy.objects.create(practice=world.practice, name="Small credits", min_amount=D("1.00"),
                                max_amount=D("100.00"), min_age_days=0)
    small = patient_case(world, "40.00", channel="check")
    big = patient_case(world, "400.00", channel="check")
    return small, big


def test_refund_work_list_lists_with_the_band_and_refunds(api, world, work_list):
    small, _big = work_list
    r = api.get("/refund-work-list")
    assert r.status_code == 200, r.content
    (row,) = r.json()["results"]
    assert (row["id"], row["on_hand"], row["case"], row["policy_name"]) == (small.credit_id, "40.00", small.pk,
                                                                            "Small credits")
    assert (row["up_to_total"], row["band"], row["band_role"], row["needs_approval"]) == ("40.00", None, "billing",
                                                                                          False)
    r = api.post("/refund-work-list/refund", {"credit_ids": [small.credit_id], "reason": "Refund policy"})
    assert r.status_code == 201, r.content
    (refund,) = r.json()["refunds"]
    assert (refund["credit"], refund["amount"], refund["method"]) == (small.credit_id, "40.00", "check")
    assert Refund.objects.filter(credit_id=small.credit_id, amount=D("40.00")).count() == 1
    assert api.get("/refund-work-list").json()["results"] == []  # a refund in flight leaves the list


def test_refund_work_list_refusals_write_nothing(api, world, work_list, other_api):
    small, big = work_list
    theirs = make_api(other_api.practice, role=Membership.Role.MANAGER, name="intruder-manager")
    for who, body, status, field in [
        (api, {"credit_ids": [987654], "reason": "x"}, 404, "credit_ids"),  # unknown: not found, as any id
        (api, {"credit_ids": [small.credit_id]}, 400, "reason"),
        (api, {"credit_ids": [], "reason": "x"}, 400, "credit_ids"),
        (api, {"credit_ids": ["one"], "reason": "x"}, 400, "credit_ids.0"),
        (api, {"credit_ids": [big.credit_id], "reason": "x"}, 409, "credit_ids"),  # no policy lists it
        (theirs, {"credit_ids": [small.credit_id], "reason": "x"}, 404, "credit_ids"),
    ]:
        r = who.post("/refund-work-list/refund", body)
        assert r.status_code == status and error_of(r)["field"] == field, (body, r.content)
    assert not Refund.objects.exists()
    assert theirs.get("/refund-work-list").json()["results"] == []


# --- unclaimed property -------------------------------------------------------------------------------------

@pytest.fixture
def unclaimed(world, monkeypatch):
    monkeypatch.setattr(letters, "COMPRESS", False)
    credit = dormant_credit(world, "300.00")
    return listed(world, credit, date(2026, 3, 1))


def test_unclaimed_list_letter_turn_over_and_holder_report(api, manager_api, world, unclaimed):
    row = unclaimed
    with time_machine.travel(noon(date(2026, 4, 20)), tick=False):
        r = api.get("/unclaimed-property", {"state": "listed", "owner_state": "TX", "report_year": 2026})
        assert [x["id"] for x in r.json()["results"]] == [row.pk], r.content
        assert api.get("/unclaimed-property", {"state": "turned_over"}).json()["results"] == []
        assert api.get("/unclaimed-property", {"report_year": 2025}).json()["results"] == []
        r = api.get(f"/unclaimed-property/{row.pk}/letter")
        assert r.status_code == 404  # none sent yet
        r = api.post(f"/unclaimed-property/{row.pk}/send-letter", {"reason": "Due diligence"})
        assert r.status_code == 200, r.content
        assert (r.json()["state"], r.json()["letter_sent_on"], r.json()["has_letter"]) == ("letter_sent", "2026-04-20",
                                                                                           True)
        r = api.get(f"/unclaimed-property/{row.pk}/letter")
        assert r.status_code == 200 and r["Content-Type"] == "application/pdf"
        pdf = b"".join(r.streaming_content)
        assert pdf.startswith(b"%PDF") and b"$300.00" in pdf
    with time_machine.travel(noon(date(2026, 7, 1)), tick=False):
        before = (Credit.objects.get(pk=row.credit_id).on_hand, row.case.history.count())
        r = api.post(f"/unclaimed-property/{row.pk}/turn-over", {"reason": "Report"})
        assert r.status_code == 403 and error_of(r)["code"] == "permission_denied", r.content
        clerk = make_api(world.practice, name="clerk-token", person=world.clerk)
        r = clerk.post(f"/unclaimed-property/{row.pk}/turn-over", {"reason": "Report"})
        assert r.status_code == 403, r.content
        assert (Credit.objects.get(pk=row.credit_id).on_hand, row.case.history.count()) == before
        r = manager_api.post(f"/unclaimed-property/{row.pk}/turn-over", {})
        assert r.status_code == 400 and error_of(r)["field"] == "reason"
        r = manager_api.post(f"/unclaimed-property/{row.pk}/turn-over", {"reason": "2026 Texas holder report"})
        assert r.status_code == 200, r.content
        assert (r.json()["state"], r.json()["turned_over_on"]) == ("turned_over", "2026-07-01")
        assert Credit.objects.get(pk=row.credit_id).state == Credit.State.REMOVED
        assert Case.objects.get(pk=row.case_id).outcome == Case.Outcome.UNCLAIMED
        r = api.get("/unclaimed-property/holder-report", {"year": 2026, "us_state": "tx"})
        assert r.status_code == 200 and r["Content-Type"].startswith("text/csv"), r.content
        assert "attachment" in r["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(r.content.decode())))
        assert [(x["owner_name"], x["amount"], x["status"]) for x in rows] == [("Cruz, Dana", "300.00",
                                                                                "turned_over")]
        for bad in ({"year": "next"}, {}, {"year": 2026, "us_state": "ZZ"}, {"year": 1800}):
            r = api.get("/unclaimed-property/holder-report", bad)
            assert r.status_code == 400, (bad, r.content)


def test_another_practice_reaches_none_of_the_new_routes(world, other_api, unclaimed, today):
    case = patient_case(world)
    doc = CaseDocument.objects.get(pk=upload(make_api(world.practice), case).json()["id"])
    other = make_api(other_api.practice, role=Membership.Role.MANAGER, name="intruder-manager")
    before = (written(case.pk), UnclaimedProperty.objects.get(pk=unclaimed.pk).state, CaseDocument.objects.count(),
              CaseEvent.objects.count())
    for path in (f"/cases/{case.pk}/documents", f"/cases/{case.pk}/documents/{doc.pk}/file",
                 f"/unclaimed-property/{unclaimed.pk}", f"/unclaimed-property/{unclaimed.pk}/letter"):
        r = other.get(path)
        assert r.status_code == 404 and error_of(r)["code"] == "not_found", path
    for path, body in [(f"/cases/{case.pk}/confirm-balance", {"reason": "x"}),
                       (f"/cases/{case.pk}/review-source", {"reason": "x", "findings": "x"}),
                       (f"/unclaimed-property/{unclaimed.pk}/send-letter", {"reason": "x"}),
                       (f"/unclaimed-property/{unclaimed.pk}/turn-over", {"reason": "x"})]:
        r = other.post(path, body)
        assert r.status_code == 404 and error_of(r)["code"] == "not_found", path
    r = upload(other, case)
    assert r.status_code == 404, r.content
    assert other.get("/unclaimed-property").json()["results"] == []
    r = other.get("/unclaimed-property/holder-report", {"year": 2026})
    assert r.status_code == 200 and r.content.decode().count("\n") == 1  # the header line only
    after = (written(case.pk), UnclaimedProperty.objects.get(pk=unclaimed.pk).state, CaseDocument.objects.count(),
             CaseEvent.objects.count())
    assert after == before
