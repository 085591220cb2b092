"""Request ids: random version-4 UUIDs from the OS's CSPRNG read in chunks
(``api/requests/intake.py``, ``RandomIds``): well-formed, never repeated, and a forked child
never reuses the parent's buffered bytes."""

from __future__ import annotations

import multiprocessing
import uuid

from api.requests.intake import RandomIds


def test_ids_are_version_4_uuids_in_canonical_form() -> None:
    ids = RandomIds()
    made = [ids.new() for _ in range(3 * RandomIds.CHUNK // 16)]  # three refills of the buffer
    assert len(set(made)) == len(made)
    for text in made:
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def _child_ids(ids: RandomIds, out: multiprocessing.Queue[list[str]]) -> None:  # type: ignore[type-arg]
    out.put([ids.new() for _ in range(4)])


def test_a_forked_child_does_not_repeat_the_parents_ids() -> None:
    """Without the reset at fork, the child would hand out the very ids the parent gives next
    (both would read the same buffered bytes)."""
    ids = RandomIds()
    ids.new()  # the buffer is filled; 255 ids are left in it
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[list[str]] = ctx.Queue()  # type: ignore[type-arg]
    child = ctx.Process(target=_child_ids, args=(ids, queue))
    child.start()
    from_child = queue.get(timeout=30)
    child.join(30)
    from_parent = [ids.new() for _ in range(4)]
    assert len(from_child) == 4
    assert not set(from_child) & set(from_parent)
