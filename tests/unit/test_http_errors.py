"""ragline.http.errors: every error answers over HTTP as over gRPC, the code mapped as Google's
API guidelines map it, in the AIP-193 JSON shape with the same details."""

from __future__ import annotations

import logging
import re

import grpc
import pytest

from ragline import errors
from ragline.grpc_status import status_for
from ragline.http.errors import HTTP_STATUS, http_error

pytestmark = pytest.mark.unit


def test_every_grpc_code_has_an_http_status_as_the_guidelines_give() -> None:
    assert set(HTTP_STATUS) == set(grpc.StatusCode)
    assert {c.name: s for c, s in HTTP_STATUS.items()} == {
        "OK": 200,
        "INVALID_ARGUMENT": 400,
        "FAILED_PRECONDITION": 400,
        "OUT_OF_RANGE": 400,
        "UNAUTHENTICATED": 401,
        "PERMISSION_DENIED": 403,
        "NOT_FOUND": 404,
        "ALREADY_EXISTS": 409,
        "ABORTED": 409,
        "RESOURCE_EXHAUSTED": 429,
        "CANCELLED": 499,
        "UNIMPLEMENTED": 501,
        "UNAVAILABLE": 503,
        "DEADLINE_EXCEEDED": 504,
        "INTERNAL": 500,
        "UNKNOWN": 500,
        "DATA_LOSS": 500,
    }


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (errors.NotFound("job 'x' does not exist"), 404),
        (errors.Unauthenticated("this call carries no API key"), 401),
        (errors.PermissionDenied("needs the `admin` scope", scope="admin"), 403),
        (errors.FailedPrecondition("job 'x' is already completed"), 400),
        (errors.ResourceExhausted("document too large"), 429),
        (errors.StoreUnavailable("Redis did not answer"), 503),
        (errors.DependencyFailed("the indexer failed"), 500),
        (errors.ConfigurationError("set X"), 400),
    ],
)
def test_an_error_answers_with_the_grpc_code_and_message(exc: Exception, status: int) -> None:
    answer = http_error(exc)
    code, message = status_for(exc)
    assert answer.status == status
    assert answer.body == {
        "error": {"code": status, "status": code.name, "message": message, "details": []}
    }
    assert answer.headers == {}


def test_invalid_argument_carries_a_bad_request_naming_the_field() -> None:
    answer = http_error(errors.InvalidArgument("documents[2].content_type", "is not supported"))
    assert answer.status == 400
    assert answer.body["error"]["details"] == [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [
                {"field": "documents[2].content_type", "description": "is not supported"}
            ],
        }
    ]


def test_a_full_queue_says_when_to_retry_in_the_details_and_the_header() -> None:
    answer = http_error(errors.ResourceExhausted("the chunk queue is full", retry_after_s=2.5))
    assert answer.status == 429
    assert answer.headers == {"Retry-After": "3"}
    assert answer.body["error"]["details"] == [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.500s"}
    ]


def test_an_unexpected_error_is_500_naming_a_reference_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR):
        answer = http_error(KeyError("secret internals"))
    assert answer.status == 500
    message = answer.body["error"]["message"]
    assert "secret internals" not in message
    ref = re.search(r"ref (\w+)", message)
    assert ref is not None and ref.group(1) in caplog.text
