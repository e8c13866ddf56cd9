"""status_for: each ragline error maps to its gRPC code; anything else is INTERNAL with a reference."""

from __future__ import annotations

import logging
import re

import grpc
import pytest

from ragline import errors
from ragline.grpc_status import status_for

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (errors.InvalidArgument("config.chunk_size", "must be positive"), "INVALID_ARGUMENT"),
        (errors.PermanentTaskError("cannot parse"), "INVALID_ARGUMENT"),
        (errors.NotFound("job 'x' does not exist"), "NOT_FOUND"),
        (errors.FailedPrecondition("the job already completed"), "FAILED_PRECONDITION"),
        (errors.ResourceExhausted("queue full"), "RESOURCE_EXHAUSTED"),
        (errors.TransientError("try later"), "UNAVAILABLE"),
        (errors.BrokerUnavailable("redis down"), "UNAVAILABLE"),
        (errors.StoreUnavailable("milvus down"), "UNAVAILABLE"),
        (errors.DependencyUnavailable("embedder down"), "UNAVAILABLE"),
        (errors.ConfigurationError("set RAGLINE_X"), "FAILED_PRECONDITION"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else v,
)
def test_ragline_errors_map_to_their_code_with_their_message(
    exc: errors.RaglineError, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    got_code, message = status_for(exc)
    assert got_code == grpc.StatusCode[code]
    assert message == str(exc)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_invalid_argument_message_names_the_field() -> None:
    _, message = status_for(errors.InvalidArgument("documents[1].content", "is empty"))
    assert message == "documents[1].content: is empty"


def test_a_plain_ragline_error_is_not_unknown() -> None:
    code, _ = status_for(errors.RaglineError("odd"))
    assert code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.OK)


@pytest.mark.parametrize(
    "exc",
    [RuntimeError("secret path /etc/x"), KeyError("k"), ValueError(), ZeroDivisionError("boom")],
    ids=lambda e: type(e).__name__,
)
def test_unexpected_exceptions_are_internal_with_a_logged_reference(
    exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="ragline.grpc_status")
    code, message = status_for(exc)
    assert code == grpc.StatusCode.INTERNAL
    assert code != grpc.StatusCode.UNKNOWN
    match = re.search(r"ref ([0-9a-f]{12})", message)
    assert match, message
    ref = match.group(1)
    # The client sees the reference, not the exception's own words.
    assert "secret" not in message
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 1
    assert ref in logged[0].getMessage()
    assert logged[0].exc_info is not None
    assert logged[0].exc_info[1] is exc


def test_each_unexpected_error_gets_its_own_reference(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="ragline.grpc_status")
    refs = {status_for(RuntimeError("x"))[1] for _ in range(5)}
    assert len(refs) == 5
