"""One error shape everywhere, the status codes integrators branch on, and money in and out."""

from datetime import date

import pytest

from ledger import services
from tests.api.conftest import V1, error_of

pytestmark = pytest.mark.django_db


def test_validation_errors_name_the_first_field(api):
    r = api.post("/patients", {"first_name": "Ann", "last_name": "Lee"})
    assert r.status_code == 400
    assert error_of(r) == {"code": "required", "message": "account_number: This field is required.",
                           "field": "account_number"}


def test_nested_fields_are_named_with_a_dotted_path(api, world):
    pat = world.patient()
    enc, _ = world.visit(pat, date(2026, 1, 5), claim=False, estimated_pr="10.00")
    r = api.post("/payments/checkout", {"patient": pat.pk, "encounter_ids": [enc.pk],
                                        "credits": [{"credit": 1, "amount": "abc"}]})
    assert r.status_code == 400 and error_of(r)["field"] == "credits.0.amount"


@pytest.mark.parametrize("amount, ok", [
    ("50.00", True), ("50", True), (50, True), ("0.5", True),
    (50.5, False), (5e1, False), ("50.001", False), ("abc", False), (True, False), ("", False), (None, False),
])
def test_money_is_a_decimal_string_or_a_whole_number(api, world, amount, ok):
    pat = world.patient()
    r = api.post("/credits/manual", {"patient": pat.pk, "amount": amount, "note": "Carried over"})
    if ok:
        assert r.status_code == 201, r.content
        assert isinstance(r.json()["amount"], str) and r.json()["amount"].count(".") == 1
    else:
        assert r.status_code == 400, r.content
        assert error_of(r)["field"] == "amount"


def test_a_json_float_gets_a_clear_message(api, world):
    r = api.post("/credits/manual", {"patient": world.patient().pk, "amount": 12.5, "note": "x"})
    assert "as strings" in error_of(r)["message"]


def test_nan_and_unreadable_json_are_parse_errors(api):
    r = api.client.post(V1 + "/patients", data='{"account_number": NaN}', content_type="application/json")
    assert r.status_code == 400 and error_of(r)["code"] == "parse_error"
    r = api.client.post(V1 + "/patients", data='{"account_number": ', content_type="application/json")
    assert r.status_code == 400 and error_of(r)["code"] == "parse_error"


def test_unsupported_media_type(api):
    r = api.client.post(V1 + "/patients", data="account_number=1", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 415 and error_of(r)["code"] == "unsupported_media_type"


def test_unknown_paths_and_methods(api):
    r = api.get("/nothing-here")
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"
    r = api.get("/patients/")  # no trailing slashes
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"
    r = api.client.delete(V1 + "/patients")
    assert r.status_code == 405 and error_of(r)["code"] == "method_not_allowed"
    r = api.get("/patients/abc")
    assert r.status_code == 404


def test_unknown_and_empty_query_parameters_are_refused(api):
    r = api.get("/credits", {"stat": "available"})
    assert r.status_code == 400 and error_of(r) == {"code": "unknown_parameter", "field": "stat",
                                                    "message": "unknown query parameter 'stat'"}
    r = api.get("/credits", {"patient": ""})
    assert r.status_code == 400 and error_of(r)["field"] == "patient"
    r = api.get("/credits", {"state": "spent"})
    assert r.status_code == 400 and error_of(r)["field"] == "state"
    r = api.get("/credits", {"limit": 500})
    assert r.status_code == 400 and error_of(r)["field"] == "limit"
    r = api.get("/credits", {"cursor": "garbage"})
    assert r.status_code == 400 and error_of(r)["field"] == "cursor"


def test_rule_violations_are_409_with_the_service_code(api, world):
    pat = world.patient()
    enc, _ = world.visit(pat, date(2026, 3, 3))
    held = world.pay(pat, "50.00", encounter=enc).credits[0]
    r = api.post(f"/credits/{held.pk}/refunds", {"amount": "50.00", "reason": "Patient asked"})
    assert r.status_code == 409
    err = error_of(r)
    assert (err["code"], err["field"]) == ("rule_violation", "credit") and "unlock it" in err["message"]


def test_duplicates_are_409(api):
    body = {"account_number": "P-7", "first_name": "A", "last_name": "B"}
    assert api.post("/patients", body).status_code == 201
    r = api.post("/patients", body)
    assert r.status_code == 409 and error_of(r)["code"] == "duplicate" and error_of(r)["field"] == "account_number"
    r = api.post("/payers", {"name": "Twice", "payer_type": "commercial"})
    assert r.status_code == 201
    r = api.post("/payers", {"name": "Twice", "payer_type": "commercial"})  # caught by the database rule
    assert r.status_code == 409 and error_of(r)["code"] == "duplicate"


def test_a_declined_card_is_402(api, world):
    pat = world.patient()
    r = api.post("/payments", {"patient": pat.pk, "amount": "20.00", "channel": "portal", "card_token": "tok_decline"})
    assert r.status_code == 402 and error_of(r)["code"] == "card_declined"
    r = api.post("/payments", {"patient": pat.pk, "amount": "20.00", "channel": "portal"})
    assert r.status_code == 400 and error_of(r)["field"] == "card_token"


def test_a_bug_is_a_500_in_the_same_shape(api, world, monkeypatch):
    def boom(**kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(services, "patient_create", boom)
    r = api.post("/patients", {"account_number": "P-1", "first_name": "A", "last_name": "B"})
    assert r.status_code == 500 and error_of(r)["code"] == "server_error"
