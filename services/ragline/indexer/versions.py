"""What to clean up when a document version finishes indexing. Pure.

Every ingest of a document gets the next version. The newest completed version is live (the one
searched); a version at or below the document's floor was deleted while in flight.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cleanup:
    """Which chunks to delete once `version` is fully indexed; both versions None: none."""

    # Delete the document's chunks of versions below this one (older, now replaced).
    below_version: int | None
    # Delete this version's own chunks (it was replaced or deleted before it finished).
    only_version: int | None
    # The document was deleted while this version was in flight.
    deleted: bool


def cleanup_after(version: int, live: int, floor: int) -> Cleanup:
    """The cleanup once `version` is indexed, given the live version and floor after activating it."""
    if version <= floor:
        return Cleanup(below_version=None, only_version=version, deleted=True)
    if version < live:
        return Cleanup(below_version=None, only_version=version, deleted=False)
    if version - 1 <= floor:
        # Every older version was deleted already (or there is none: the first ingest). A sweep
        # would cost a filtered delete, which scans the collection on Milvus Lite.
        return Cleanup(below_version=None, only_version=None, deleted=False)
    return Cleanup(below_version=version, only_version=None, deleted=False)
