"""Who is calling the gateway, and what they may do: API keys, scopes and the current caller.

    from ragline.access import Caller, Scope, current_caller

`policy` and `keys` are pure logic; `keys_file` reads, writes and reloads the keys file, and
`interceptor` is the gRPC side that checks every call. This package's top level re-exports only
the pure part, so importing it pulls in no gRPC.
"""

from ragline.access.policy import ALL_SCOPES, AUTH_OFF_CALLER, Caller, Scope, current_caller

__all__ = ["ALL_SCOPES", "AUTH_OFF_CALLER", "Caller", "Scope", "current_caller"]
