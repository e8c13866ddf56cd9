"""The OpenAPI document: built from the route table and the descriptors, checked in current."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragline.http.openapi import REGENERATE, build_document, render
from ragline.http.routes import ROUTES

pytestmark = pytest.mark.unit

CHECKED_IN = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_the_checked_in_document_is_current() -> None:
    assert CHECKED_IN.read_text() == render(), f"docs/openapi.json is stale: run `{REGENERATE}`"


def test_every_route_documents_its_answer_its_errors_and_the_key() -> None:
    doc = build_document()
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        **doc["components"]["securitySchemes"]["bearerAuth"],
        "type": "http",
        "scheme": "bearer",
    }
    assert doc["security"] == [{"bearerAuth": []}]
    for route in ROUTES:
        operation = doc["paths"][route.path][route.method.lower()]
        ok = operation["responses"]["200"]["content"]
        if route.streaming:
            assert list(ok) == ["text/event-stream"]
        else:
            assert ok["application/json"]["schema"] == {
                "$ref": f"#/components/schemas/{route.response.name}"
            }
        errors = {c: r for c, r in operation["responses"].items() if c >= "400"}
        assert {"400", "401", "403", "404", "429", "500", "503"} <= set(errors)
        for answer in errors.values():
            assert answer["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }


def test_messages_follow_the_proto3_json_mapping() -> None:
    schemas = build_document()["components"]["schemas"]
    job = schemas["Job"]["properties"]
    assert job["documentVersion"] == {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"}
    assert job["createTime"] == {"type": "string", "format": "date-time"}
    assert job["state"] == {"$ref": "#/components/schemas/JobState"}
    assert "JOB_STATE_COMPLETED" in schemas["JobState"]["enum"]
    ingest = schemas["IngestRequest"]["properties"]
    assert ingest["content"] == {"type": "string", "format": "byte"}
    assert schemas["DocumentMetadata"]["properties"]["attributes"] == {
        "type": "object",
        "additionalProperties": {"type": "string"},
    }
    assert schemas["SearchResponse"]["properties"]["hits"]["type"] == "array"
