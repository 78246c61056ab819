"""One error shape everywhere, the status codes integrators branch on, and money in and out."""

import base64
import json
from datetime import date

import pytest

from api.models import IdempotencyRecord
from ledger import services
from ledger.models import Patient
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
    r = api.post("/credits/manual", {"patient": pat.pk, "amount": amount, "reason": "Carried over"})
    if ok:
        assert r.status_code == 201, r.content
        assert isinstance(r.json()["amount"], str) and r.json()["amount"].count(".") == 1
    else:
        assert r.status_code == 400, r.content
        assert error_of(r)["field"] == "amount"


def test_a_json_float_gets_a_clear_message(api, world):
    r = api.post("/credits/manual", {"patient": world.patient().pk, "amount": 12.5, "reason": "x"})
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


# --- hostile input: never a 500 (issue 9) ----------------------------------------------------------------

@pytest.mark.parametrize("text, at", [
    ("[" * 100_000 + "]" * 100_000, 64), ('{"a":' * 50_000 + "1" + "}" * 50_000, 320), ("[" * 100_000, 64),
    ('[{"x": "]]]"}, ' + "[" * 70, 78),
])
def test_json_nested_100000_deep_is_a_400_not_a_recursion_error(api, text, at):
    """Before issue 9: RecursionError in the JSON parser, a 500."""
    r = api.client.post(V1 + "/patients", data=text, content_type="application/json", HTTP_IDEMPOTENCY_KEY="deep-1")
    assert r.status_code == 400, r.content[:200]
    assert error_of(r) == {"code": "parse_error", "field": None, "message": "JSON parse error: arrays and objects "
                           f"nested deeper than 64 levels (at character {at})"}
    assert not Patient.objects.exists() and not IdempotencyRecord.objects.exists()


def test_nesting_is_counted_outside_strings_and_up_to_the_limit(api):
    r = api.post("/patients", {"account_number": "[[[{" * 8, "first_name": "{[" * 50, "last_name": "B"})
    assert r.status_code == 201, r.content  # brackets inside a string are text
    ok = "[" * 64 + "]" * 64
    r = api.client.post(V1 + "/patients", data=ok, content_type="application/json")
    assert r.status_code == 400 and error_of(r)["code"] != "parse_error"  # read, then refused as not an object
    r = api.client.post(V1 + "/patients", data="[" + ok + "]", content_type="application/json")
    assert r.status_code == 400 and error_of(r)["code"] == "parse_error"


@pytest.mark.parametrize("size", [1024 * 1024 + 1, 3 * 1024 * 1024])
def test_a_json_body_over_1_mb_is_a_413_in_the_error_shape(api, size):
    """Before issue 9, a 3 MB body raised RequestDataTooBig: a 500."""
    shape = json.dumps({"account_number": "P-1", "first_name": "", "last_name": "B"})
    text = json.dumps({"account_number": "P-1", "first_name": "x" * (size - len(shape)), "last_name": "B"})
    assert len(text) == size
    r = api.client.post(V1 + "/patients", data=text, content_type="application/json", HTTP_IDEMPOTENCY_KEY="big")
    assert r.status_code == 413
    assert error_of(r) == {"code": "too_large", "field": None,
                           "message": "the JSON body is larger than the 1048576 bytes allowed"}
    assert not Patient.objects.exists() and not IdempotencyRecord.objects.exists()


def test_django_refusing_a_body_it_will_not_read_is_a_413_too(api, settings):
    """A body past DATA_UPLOAD_MAX_MEMORY_SIZE makes Django raise RequestDataTooBig when DRF reads it."""
    settings.SETTLE_API_MAX_JSON_BYTES = 10 * 1024 * 1024  # so that Django's own limit (2.5 MB) is the one hit
    text = json.dumps({"account_number": "P-1", "first_name": "x" * 3_000_000, "last_name": "B"})
    r = api.client.post(V1 + "/patients", data=text, content_type="application/json")
    assert r.status_code == 413 and error_of(r)["code"] == "too_large"
    assert not Patient.objects.exists()


def test_an_835_upload_over_its_limit_is_a_413_naming_the_file(api, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from remittances.models import RemittanceFile
    from remittances.x12.generator import ClaimSpec, generate_835

    data = generate_835(specs=[ClaimSpec(f"C-{i}") for i in range(20)], payer_id="P")
    settings.SETTLE_API_MAX_835_BYTES = len(data) - 1  # the file is read, then refused by its size
    r = api.post("/remittance-files", {"file": SimpleUploadedFile("a.835", data)}, fmt="multipart")
    assert r.status_code == 413
    assert error_of(r) == {"code": "too_large", "field": "file",
                           "message": f"the file is larger than the {len(data) - 1} bytes allowed"}
    settings.SETTLE_API_MAX_835_BYTES = 100  # the body cannot fit: refused from its Content-Length, unread
    r = api.post("/remittance-files", {"file": SimpleUploadedFile("a.835", data * 400)}, fmt="multipart")
    assert r.status_code == 413 and error_of(r)["field"] == "file"
    assert not RemittanceFile.objects.exists()


@pytest.mark.parametrize("cursor", [
    "zzz", "%ff", "%00", base64.b64encode(b"junk").decode(), base64.b64encode(b"p=abc").decode(),
    base64.b64encode(b"o=x").decode(), base64.b64encode(b"r=7").decode(), base64.b64encode(b"p=1&p=2").decode(),
    base64.b64encode(b"p=99999999999999999999").decode(), base64.b64encode(b"p=-1").decode(),
    base64.b64encode(b"x=1").decode(), base64.b64encode(b"\xff\xfe").decode(), "cD0x!",
])
def test_a_garbage_cursor_is_a_400_naming_the_cursor(api, world, cursor):
    """Before issue 9, base64 of `p=abc` reached the query: ValueError, a 500."""
    world.patient()
    r = api.client.get(f"{V1}/patients?cursor={cursor}")
    assert r.status_code == 400, r.content
    err = error_of(r)
    assert (err["code"], err["field"]) == ("invalid", "cursor") and "next" in err["message"]


def test_the_cursors_the_api_gives_still_work(api, world):
    ids = sorted((world.patient().pk for _ in range(5)), reverse=True)
    seen, url = [], f"{V1}/patients?limit=2"
    while url:
        body = api.client.get(url).json()
        seen += [p["id"] for p in body["results"]]
        url = body["next"]
    assert seen == ids
    previous = api.client.get(f"{V1}/patients?limit=2").json()["next"]
    back = api.client.get(api.client.get(previous).json()["previous"]).json()
    assert [p["id"] for p in back["results"]] == ids[:2]


@pytest.mark.parametrize("path", ["/api/v1/remittance-files/e%0A", "/api/v1/patients/1%0A", "/api/v1/token%0A",
                                  "/api/v1%0A", "/api/nothing%0A", "/api/v2/patients", "/api/v1/%0A%0D"])
def test_odd_paths_are_a_json_404(api, path):
    """Before issue 9, a path ending in a newline fell through the catch-all to Django's HTML 404."""
    r = api.client.get(path)
    assert r.status_code == 404 and r["Content-Type"] == "application/json"
    assert error_of(r)["code"] == "not_found"


def test_django_error_pages_under_api_are_json(api, client):
    """Django's own HTML error pages (here the 400 of a Host header it does not serve, raised by a middleware
    before any view) become the error shape under /api/, and only there."""
    r = api.client.get(V1 + "/token", HTTP_HOST="evil.example")
    assert r.status_code == 400 and r["Content-Type"] == "application/json"
    assert error_of(r)["code"] == "bad_request"
    r = client.get("/admin/login/", HTTP_HOST="evil.example")
    assert r.status_code == 400 and "json" not in r["Content-Type"]
