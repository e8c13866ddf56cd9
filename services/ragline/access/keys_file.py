"""The keys file on disk: reading it, writing it atomically (`ragline keys`), and the gateway's
live copy that reloads it when its content changes, without a restart."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ragline.access.keys import KeyRing
from ragline.access.policy import Caller
from ragline.errors import ConfigurationError

log = logging.getLogger(__name__)


def read_keys(path: str | os.PathLike[str]) -> tuple[str, KeyRing]:
    """The keys in the file at `path` (symlinks followed) and the sha256 of its bytes;
    ConfigurationError saying what is wrong and what to do."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(
            f"the keys file {path} does not exist: create it with `ragline keys create --file "
            f"{path} --tenant TENANT --scopes ingest,read`, or unset RAGLINE_KEYS_FILE to run "
            "without API keys"
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read the keys file {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"keys file {path} is not UTF-8 text") from None
    return hashlib.sha256(raw).hexdigest(), KeyRing.parse(text, str(path))


def write_keys(path: str | os.PathLike[str], ring: KeyRing) -> None:
    """Replaces the file at `path` with `ring`'s keys in one rename, so a reader sees the old
    file or the new one, never half of one. A new file is made readable by its owner only; an
    existing one keeps its mode. A symlink is followed, not replaced."""
    target = Path(os.path.realpath(path))
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = 0o600
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)
            f.write(ring.dumps())
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class KeysFile:
    """The gateway's keys, loaded from `path` at start (ConfigurationError when that fails:
    the gateway must not start without the keys it was told to use) and reloaded by `watch`
    whenever the file's bytes change.

    Changes are found by the content's hash, read every `reload_s` through any symlinks: a
    Kubernetes Secret volume swaps a `..data` symlink, leaving the file's own path, mtime and
    size proof of nothing. A reload that finds the file broken keeps the last good keys and logs
    an ERROR saying what is wrong, once per broken version.
    """

    def __init__(self, path: str, reload_s: float) -> None:
        self.path = path
        self.reload_s = reload_s
        self._digest, self.ring = read_keys(path)
        self._failed: str | None = None  # the problem last logged, so it is logged once
        self._stop = asyncio.Event()

    def authenticate(self, authorization: Sequence[str | bytes]) -> Caller:
        return self.ring.authenticate(authorization)

    def reload(self) -> bool:
        """Reads the file again; returns whether the keys changed."""
        try:
            digest, ring = read_keys(self.path)
        except ConfigurationError as exc:
            if str(exc) != self._failed:
                self._failed = str(exc)
                log.error(
                    "%s; still using the %d keys loaded before. Fix the file: the gateway "
                    "loads it as soon as it is valid",
                    exc,
                    len(self.ring.entries),
                )
            return False
        if self._failed is not None:
            self._failed = None
            log.info("the keys file %s is valid again", self.path)
        if digest == self._digest:
            return False
        old = set(self.ring.entries)
        self._digest, self.ring = digest, ring
        new = set(ring.entries)
        log.info(
            "reloaded the keys file %s: %d keys (added %s; removed %s)",
            self.path,
            len(new),
            ", ".join(sorted(new - old)) or "none",
            ", ".join(sorted(old - new)) or "none",
        )
        return True

    async def watch(self) -> None:
        """Reloads the file every `reload_s` until `stop()`."""
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), self.reload_s)
            except TimeoutError:
                await asyncio.to_thread(self.reload)

    def stop(self) -> None:
        self._stop.set()
