"""The scopes, the one table of the scope each IngestService RPC needs, the caller of a call, and
the check that the caller may make it. Pure logic: no gRPC here (see access.interceptor)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from ragline.errors import ConfigurationError, PermissionDenied, Unauthenticated


class Scope(StrEnum):
    """What an API key may do. `operator` is the one scope that reaches across tenants."""

    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"
    OPERATOR = "operator"


ALL_SCOPES = frozenset(Scope)
# The scopes a held scope brings with it.
_IMPLIED: Mapping[Scope, frozenset[Scope]] = {Scope.OPERATOR: frozenset({Scope.ADMIN})}

# The scope each IngestService RPC needs, by the RPC's name. An RPC missing here is refused to
# every key (fail closed); tests/unit/test_access_policy.py walks the service's descriptor and
# fails when one is missing.
METHOD_SCOPES: Mapping[str, Scope] = MappingProxyType(
    {
        "Ingest": Scope.INGEST,
        "IngestBatch": Scope.INGEST,
        "CancelJob": Scope.INGEST,
        "DeleteDocument": Scope.INGEST,
        "GetJob": Scope.READ,
        "WatchJob": Scope.READ,
        "Search": Scope.READ,
        "GetDocument": Scope.READ,
        "ListDeadLetters": Scope.ADMIN,
        "RequeueDeadLetters": Scope.ADMIN,
        "PurgeDeadLetters": Scope.ADMIN,
    }
)


@dataclass(frozen=True)
class Caller:
    """Who makes the current call: the tenant its API key belongs to, the scopes it holds (with
    the ones they imply: an operator key holds `admin` too) and the key's public id (None with
    auth off)."""

    tenant: str
    scopes: frozenset[Scope]
    key_id: str | None

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes

    @property
    def is_operator(self) -> bool:
        """Whether the caller may see every tenant."""
        return Scope.OPERATOR in self.scopes


# With auth off (local use) every call is this caller: the tenant `default`, every scope.
AUTH_OFF_CALLER = Caller(tenant="default", scopes=ALL_SCOPES, key_id=None)


def with_implied(scopes: Iterable[Scope]) -> frozenset[Scope]:
    """`scopes` and every scope they imply."""
    held = frozenset(scopes)
    return held.union(*(_IMPLIED.get(s, frozenset()) for s in held))


def parse_scopes(names: Iterable[str], where: str) -> frozenset[Scope]:
    """The scopes named, or ConfigurationError naming `where` and listing the valid ones."""
    found = set()
    for name in names:
        try:
            found.add(Scope(name.strip()))
        except ValueError:
            raise ConfigurationError(
                f"{where}: unknown scope {name!r}; the scopes are {_valid_scopes()}"
            ) from None
    if not found:
        raise ConfigurationError(f"{where}: name at least one scope of {_valid_scopes()}")
    return frozenset(found)


def _valid_scopes() -> str:
    return ", ".join(s.value for s in Scope)


def authorize(caller: Caller, rpc: str) -> None:
    """Raises PermissionDenied unless `caller` may make the IngestService call named `rpc`."""
    needed = METHOD_SCOPES.get(rpc)
    if needed is None:
        raise PermissionDenied(f"{rpc} is not open to any API key")
    if not caller.allows(needed):
        raise PermissionDenied(
            f"{rpc} needs the `{needed}` scope, which this API key (id {caller.key_id}, tenant "
            f"{caller.tenant!r}) lacks; create a key with --scopes {needed} "
            f"(`ragline keys create --tenant {caller.tenant} --scopes {needed}`)",
            scope=needed.value,
        )


# Who sent a call, from its `authorization` values (the gRPC metadata's, or the HTTP header):
# the keys file's check, or AUTH_OFF_CALLER with auth off. Raises Unauthenticated.
Authenticate = Callable[[Sequence[str | bytes]], Caller]


def admit(authenticate: Authenticate, authorization: Sequence[str | bytes], rpc: str) -> Caller:
    """The caller of a call to the IngestService RPC `rpc` carrying `authorization`, if it may
    make it; Unauthenticated or PermissionDenied otherwise. Both transports (the gRPC access
    interceptor and the HTTP gateway) admit calls through this one function."""
    caller = authenticate(authorization)
    authorize(caller, rpc)
    return caller


REFUSALS = (Unauthenticated, PermissionDenied)

# The caller of the RPC being served, set by access.interceptor for each call it lets through.
_CURRENT: ContextVar[Caller] = ContextVar("ragline_caller")


def current_caller() -> Caller:
    """The caller of the RPC being served. Raises RuntimeError outside a call that the access
    interceptor let through: a missing caller is a bug, never a reason to allow."""
    try:
        return _CURRENT.get()
    except LookupError:
        raise RuntimeError(
            "no caller: current_caller() works only inside an RPC that the access interceptor "
            "let through (is it installed on this server?)"
        ) from None


def bind_caller(caller: Caller) -> None:
    """Makes `caller` the current caller for the rest of this task (grpc.aio serves each RPC in
    an asyncio task of its own, whose copy of the context ends with the call)."""
    _CURRENT.set(caller)


@contextlib.contextmanager
def calling_as(caller: Caller) -> Iterator[None]:
    """`caller` is the current caller inside the block, and no longer after it (the HTTP gateway
    serves many requests of one connection in the same task)."""
    token = _CURRENT.set(caller)
    try:
        yield
    finally:
        _CURRENT.reset(token)
