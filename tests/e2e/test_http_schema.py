"""schemathesis against the live gateway's /openapi.json: requests generated from the document,
valid ones and invalid ones, each answer checked: never a 5xx, a status code and content type
the document lists for the operation, and a body its schema allows.

Bounded and repeatable: a fixed number of examples per operation and mode, derandomized. Every
operation is run, WatchJob included: its generated job ids are unknown, so it answers at once
(404) rather than streaming. (schemathesis' own pytest plugin cannot read this pytest's node
ids, so each operation is one parametrized test that draws its cases with hypothesis.)
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, checks

from ragline.http.openapi import build_document
from tests.stack import Stack

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    pytest.mark.parametrize("stack", ["redis"], indirect=True),
    pytest.mark.xdist_group(__name__),
]

# A deeper run: RAGLINE_TEST_HTTP_EXAMPLES=200 (20 keeps `make test` quick).
EXAMPLES_PER_OPERATION = int(os.environ.get("RAGLINE_TEST_HTTP_EXAMPLES", "20"))
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
OPERATIONS = [
    (method.upper(), path) for path, item in build_document()["paths"].items() for method in item
]


@pytest.fixture(scope="module")
def live_schema(stack: Stack) -> Any:
    return schemathesis.openapi.from_url(f"{stack.http_url}/openapi.json")


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_answer_conforms_to_the_document(
    live_schema: Any, stack: Stack, method: str, path: str
) -> None:
    operation = live_schema[path][method]
    cases = st.one_of(operation.as_strategy(mode) for mode in GenerationMode)

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_conform(case: Any) -> None:
        case.call_and_validate(base_url=stack.http_url, checks=CHECKS, timeout=60)

    answers_conform()
