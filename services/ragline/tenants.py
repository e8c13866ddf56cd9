"""Tenants: who owns a job, a document and its vectors. Pure.

A tenant id comes from the caller's API key (see the keys file), never from a request field, and
only the operator writes it, so it is held to a charset that is safe verbatim in a Redis key, a
queue message and a Milvus filter expression: lowercase letters, digits, `_` and `-`, at most 63
characters, starting with a letter or digit. Document ids, which clients choose, are not
restricted this way; every place that embeds one escapes or length-prefixes it.

With auth off everything belongs to DEFAULT_TENANT, and so does everything written before
tenancy: a task, a job record or a vector row without a tenant is the default tenant's. The
default tenant's Redis keys and chunk keys are the ones ragline used before tenancy, so a
store made by an older release needs no migration there (see ragline.jobs.keys and
ragline.indexer.keys).
"""

from __future__ import annotations

import re

from ragline.errors import ConfigurationError

__all__ = [
    "DEFAULT_TENANT",
    "MAX_TENANT_CHARS",
    "check_tenant",
    "is_valid_tenant",
    "tenant_or_default",
]

DEFAULT_TENANT = "default"
MAX_TENANT_CHARS = 63
_TENANT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def is_valid_tenant(tenant: str) -> bool:
    return _TENANT.fullmatch(tenant) is not None


def check_tenant(tenant: str, where: str) -> str:
    """`tenant` unchanged, or ConfigurationError naming `where` and saying what a tenant id may
    hold."""
    if not is_valid_tenant(tenant):
        raise ConfigurationError(
            f"{where}: tenant {tenant!r} is not a valid tenant id: use 1 to {MAX_TENANT_CHARS} "
            "lowercase letters, digits, '_' and '-', starting with a letter or digit"
        )
    return tenant


def tenant_or_default(tenant: str) -> str:
    """The tenant a stored record names; an empty one (written before tenancy) is the default."""
    return tenant or DEFAULT_TENANT
