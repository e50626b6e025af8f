from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command


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
