"""Rate limiting per token, and the OpenAPI schema and its documentation pages."""

import pytest
import yaml
from django.core.management import call_command
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db


@override_settings(SETTLE_API_RATE="3/minute")
def test_too_many_requests_get_429_with_retry_after(api, other_api):
    for _ in range(3):
        assert api.get("/token").status_code == 200
    r = api.get("/token")
    assert r.status_code == 429 and error_of(r)["code"] == "throttled"
    assert 1 <= int(r["Retry-After"]) <= 60
    assert other_api.get("/token").status_code == 200  # counted per token


def test_the_schema_is_valid_openapi_3_and_serves_as_yaml_and_json(client):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
    r = client.get("/api/schema/")
    assert r.status_code == 200
    schema = yaml.safe_load(r.content)
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)
    assert client.get("/api/schema/?format=json").json()["info"]["title"] == "settle API"


def test_every_operation_is_documented_with_its_errors():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            assert op.get("summary"), where
            assert op["security"] == [{"bearerAuth": []}], where
            codes = set(op["responses"])
            assert {"400", "401", "429"} <= codes, where
            assert any(c.startswith("2") for c in codes), where
            if "{id}" in path:
                assert "404" in codes, where
            if method == "post":
                assert {"409", "422"} <= codes, where
                assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in op["parameters"]), where
            for code, resp in op["responses"].items():
                if code[0] in "45":
                    assert resp["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_money_is_never_a_json_number_in_responses():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    money = {"amount", "on_hand", "balance", "applied_total", "charge", "paid_amount", "refunded_amount", "owed",
             "due_now", "pending_payer"}
    checked = 0
    for name, component in schema["components"]["schemas"].items():
        if name.endswith("Request"):
            continue  # input: a decimal string or a whole number
        for prop, spec in component.get("properties", {}).items():
            if prop in money:
                assert spec["type"] == "string" and spec["format"] == "decimal", (name, prop)
                checked += 1
    assert checked > 20


def test_the_documentation_pages_load_their_assets_locally(client):
    for page in ("/api/docs/", "/api/redoc/"):
        r = client.get(page)
        assert r.status_code == 200
        html = r.content.decode()
        assert "cdn.jsdelivr" not in html and "/static/drf_spectacular_sidecar/" in html
    assert client.get("/api/docs/").content.decode().count("/api/schema/") >= 1
