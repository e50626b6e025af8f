from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator

from core.schema import ERROR_COMPONENT


def test_openapi_schema_is_valid_and_generates_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))

    schema = yaml.safe_load(out.read_text())
    assert schema["openapi"].startswith("3.")
    assert {"/api/bounties", "/api/bounties/search", "/api/wallet/deposits", "/api/auth/token"} <= set(
        schema["paths"]
    )
    assert "bearerAuth" in schema["components"]["securitySchemes"]


@pytest.mark.django_db
def test_docs_page_and_schema_are_served(api_client):
    assert api_client.get("/api/docs").status_code == 200
    assert api_client.get("/api/schema").status_code == 200


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def test_every_operation_documents_its_errors_in_the_one_error_shape_under_an_area_tag(schema):
    areas = {tag["name"] for tag in schema["tags"]}
    assert areas == {"auth", "profiles", "bounties", "applications", "wallet", "messaging"}
    error_ref = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    for label, operation in operations(schema):
        assert len(operation["tags"]) == 1 and operation["tags"][0] in areas, label
        errors = {code: response for code, response in operation["responses"].items() if code >= "400"}
        assert {"429", "503"} <= set(errors), label
        for code, response in errors.items():
            if code == "414":  # gunicorn's own answer, before the API: not in the error shape
                assert "content" not in response, label
                continue
            assert response["content"] == {"application/json": {"schema": error_ref}}, (label, code)
        for code in ("429", "503"):
            assert errors[code]["headers"]["Retry-After"]["required"] is True, (label, code)
    error = schema["components"]["schemas"][ERROR_COMPONENT]
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["required"] == ["code", "message", "fields"]


def test_error_statuses_follow_each_operation_s_authentication_body_ids_and_rules(schema):
    documented = {label: set(operation["responses"]) for label, operation in operations(schema)}

    # Public reads still refuse an invalid token; registering and logging in never look at one.
    assert {"401", "404"} <= documented["GET /api/bounties/{id}"]
    assert "401" in documented["GET /api/bounties"]
    assert "401" not in documented["POST /api/auth/register"]
    assert "401" not in documented["POST /api/auth/token"]
    # A body: validation, wrong content type, too large.
    assert {"400", "413", "415"} <= documented["PATCH /api/profiles/{id}"]
    assert "400" not in documented["GET /api/me"]
    # A query string can outgrow gunicorn's request line (it answers 414 itself).
    assert "414" in documented["GET /api/bounties"]
    assert "414" not in documented["GET /api/me"]
    # Idempotent POSTs, and only those, answer 422.
    with_422 = {label for label, codes in documented.items() if "422" in codes}
    assert with_422 == {
        "POST /api/bounties",
        "POST /api/bounties/{bounty_pk}/requests",
        "POST /api/bounties/{id}/complete",
        "POST /api/bounties/{id}/cancel",
        "POST /api/wallet/deposits",
        "POST /api/wallet/withdrawals",
        "POST /api/conversations",
        "POST /api/conversations/{conversation_pk}/messages",
    }
    # Business rules: ownership (403) and state (409).
    assert {"403", "409"} <= documented["POST /api/requests/{id}/accept"]
    assert "409" in documented["POST /api/wallet/deposits"]
    assert "403" not in documented["POST /api/conversations/{conversation_pk}/messages"]
    assert "404" not in documented["GET /api/wallet"]


def test_fields_that_can_be_null_or_empty_are_declared_so(schema):
    components = schema["components"]["schemas"]
    for component, name in [
        ("BountyList", "deadline"),
        ("BountyList", "hunter_id"),
        ("BountyDetail", "hunter_username"),
        ("Transaction", "bounty_id"),
        ("Conversation", "bounty_id"),
        ("Conversation", "last_message"),
        ("LastMessage", "sender_id"),
        ("LastMessage", "sender_username"),
    ]:
        assert components[component]["properties"][name].get("nullable") is True, (component, name)
    assert components["Conversation"]["properties"]["last_message"]["allOf"] == [
        {"$ref": "#/components/schemas/LastMessage"}
    ]
    # Blank values come back as "", which format uri / email would reject.
    for component in ("PublicProfile", "PrivateProfile"):
        assert "format" not in components[component]["properties"]["avatar_url"]
    assert "format" not in components["PrivateProfile"]["properties"]["email"]
