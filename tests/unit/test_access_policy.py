"""access.policy: the one table of scopes per IngestService RPC, and the check against it."""

from __future__ import annotations

import pytest

from ragline.access.policy import (
    ALL_SCOPES,
    AUTH_OFF_CALLER,
    METHOD_SCOPES,
    Caller,
    Scope,
    authorize,
    bind_caller,
    current_caller,
    parse_scopes,
    with_implied,
)
from ragline.errors import ConfigurationError, PermissionDenied
from ragline_client.v1 import ingest_service_pb2

pytestmark = pytest.mark.unit

RPCS = [m.name for m in ingest_service_pb2.DESCRIPTOR.services_by_name["IngestService"].methods]


def test_every_rpc_of_the_service_has_a_scope_and_the_table_names_no_other() -> None:
    missing = [rpc for rpc in RPCS if rpc not in METHOD_SCOPES]
    assert not missing, f"add these IngestService RPCs to access.policy.METHOD_SCOPES: {missing}"
    assert set(METHOD_SCOPES) == set(RPCS)


def test_the_scopes_are_those_the_issue_gives() -> None:
    by_scope = {s: {rpc for rpc, needed in METHOD_SCOPES.items() if needed == s} for s in Scope}
    assert by_scope == {
        Scope.INGEST: {"Ingest", "IngestBatch", "CancelJob", "DeleteDocument"},
        Scope.READ: {"GetJob", "WatchJob", "Search", "GetDocument"},
        Scope.ADMIN: {"ListDeadLetters", "RequeueDeadLetters", "PurgeDeadLetters"},
        Scope.OPERATOR: set(),
    }


def _caller(*scopes: Scope) -> Caller:
    return Caller(tenant="acme", scopes=with_implied(scopes), key_id="0123456789ab")


@pytest.mark.parametrize("rpc", RPCS)
@pytest.mark.parametrize("held", list(Scope), ids=str)
def test_a_key_may_call_exactly_the_rpcs_of_its_scopes(rpc: str, held: Scope) -> None:
    caller = _caller(held)
    needed = METHOD_SCOPES[rpc]
    allowed = needed == held or (held == Scope.OPERATOR and needed == Scope.ADMIN)
    if allowed:
        authorize(caller, rpc)
        return
    with pytest.raises(PermissionDenied) as caught:
        authorize(caller, rpc)
    assert caught.value.scope == needed.value
    message = str(caught.value)
    assert f"`{needed}` scope" in message and f"--scopes {needed}" in message
    assert rpc in message and "0123456789ab" in message


def test_operator_implies_admin_only() -> None:
    assert with_implied([Scope.OPERATOR]) == {Scope.OPERATOR, Scope.ADMIN}
    assert _caller(Scope.OPERATOR).is_operator
    assert not _caller(Scope.ADMIN).is_operator


def test_an_rpc_missing_from_the_table_is_refused_even_to_every_scope() -> None:
    with pytest.raises(PermissionDenied, match="not open to any API key"):
        authorize(Caller("acme", ALL_SCOPES, "0123456789ab"), "SomeNewRpc")
    with pytest.raises(PermissionDenied):
        authorize(AUTH_OFF_CALLER, "/other.Service/Ingest")


def test_with_auth_off_the_caller_is_the_default_tenant_with_every_scope() -> None:
    assert Caller(tenant="default", scopes=frozenset(Scope), key_id=None) == AUTH_OFF_CALLER
    for rpc in RPCS:
        authorize(AUTH_OFF_CALLER, rpc)


def test_unknown_scopes_are_refused_listing_the_valid_ones() -> None:
    assert parse_scopes(["ingest", " read"], "--scopes") == {Scope.INGEST, Scope.READ}
    with pytest.raises(ConfigurationError) as caught:
        parse_scopes(["ingest", "write"], "--scopes")
    assert str(caught.value) == (
        "--scopes: unknown scope 'write'; the scopes are ingest, read, admin, operator"
    )
    with pytest.raises(ConfigurationError, match="at least one scope"):
        parse_scopes([], "--scopes")


def test_there_is_no_current_caller_outside_a_call() -> None:
    import contextvars

    with pytest.raises(RuntimeError, match="access interceptor"):
        contextvars.Context().run(current_caller)
    caller = _caller(Scope.READ)

    def bound() -> Caller:
        bind_caller(caller)
        return current_caller()

    assert contextvars.Context().run(bound) is caller
