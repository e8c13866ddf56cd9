"""cleanup_after: what the indexer deletes once a document version is fully indexed."""

from __future__ import annotations

import pytest

from ragline.indexer.versions import Cleanup, cleanup_after

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("version", "live", "floor", "expected"),
    [
        # The first version completes: it went live; nothing older exists, so nothing to sweep.
        (1, 1, 0, Cleanup(below_version=None, only_version=None, deleted=False)),
        # The first version after a delete: everything older went with the delete.
        (4, 4, 3, Cleanup(below_version=None, only_version=None, deleted=False)),
        # The newest version completes: it went live, so every older version goes.
        (3, 3, 0, Cleanup(below_version=3, only_version=None, deleted=False)),
        # A newer version went live while this one was in flight: remove this one's chunks only.
        (2, 3, 0, Cleanup(below_version=None, only_version=2, deleted=False)),
        (1, 5, 0, Cleanup(below_version=None, only_version=1, deleted=False)),
        # The document was deleted while this version was in flight (version <= floor).
        (2, 0, 3, Cleanup(below_version=None, only_version=2, deleted=True)),
        (3, 0, 3, Cleanup(below_version=None, only_version=3, deleted=True)),
        # Deleted, then re-ingested and the re-ingest already live: the old one is still void.
        (2, 4, 3, Cleanup(below_version=None, only_version=2, deleted=True)),
        # A later version given after the delete completes and goes live: the one between goes.
        (5, 5, 3, Cleanup(below_version=5, only_version=None, deleted=False)),
    ],
    ids=[
        "first-version",
        "first-version-after-delete",
        "newest-completes",
        "older-after-newer-live",
        "much-older-after-newer-live",
        "after-delete-below-floor",
        "after-delete-at-floor",
        "deleted-then-newer-live",
        "new-version-after-delete",
    ],
)
def test_cleanup_after(version: int, live: int, floor: int, expected: Cleanup) -> None:
    assert cleanup_after(version, live, floor) == expected


def test_never_both_below_and_only() -> None:
    for version in range(1, 6):
        for live in range(0, 6):
            for floor in range(0, 6):
                c = cleanup_after(version, live, floor)
                assert c.below_version is None or c.only_version is None
                if c.below_version is None and c.only_version is None:
                    # Nothing to sweep only when no version between the floor and this one.
                    assert floor < version <= floor + 1 and version >= live
                if c.deleted:
                    assert c.only_version == version
                if c.below_version is not None:
                    # Only a version that is live (not older than live, above the floor) sweeps
                    # the versions below it.
                    assert version > floor
                    assert version >= live
