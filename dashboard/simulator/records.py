"""Append-only records read with ``?since=SEQ``: the request log and the status-change log.

Sequence numbers keep growing across resets, so a reader holding an old ``since``
never sees an entry twice. Only the newest ``cap`` entries are kept.
"""

from __future__ import annotations

from typing import Any

DEFAULT_CAP = 200_000


class SeqLog:
    """Entries (dicts) numbered 1, 2, 3... in the order they were added."""

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        self.cap = cap
        self._items: list[dict[str, Any]] = []
        self._first_seq = 1
        self._next_seq = 1

    def append(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Keep ``fields`` as the next entry, numbered by ``seq``, and return that entry."""
        entry = {"seq": self._next_seq, **fields}
        self._next_seq += 1
        self._items.append(entry)
        # Trim in batches so that appending stays amortised O(1).
        if len(self._items) > self.cap + self.cap // 10:
            drop = len(self._items) - self.cap
            del self._items[:drop]
            self._first_seq += drop
        return entry

    def since(self, seq: int, limit: int | None = None) -> list[dict[str, Any]]:
        """Entries with a sequence number above ``seq``, oldest first."""
        start = max(0, seq + 1 - self._first_seq)
        end = len(self._items) if limit is None else start + max(0, limit)
        return self._items[start:end]

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def clear(self) -> None:
        self._items.clear()
        self._first_seq = self._next_seq

    def __len__(self) -> int:
        return len(self._items)
