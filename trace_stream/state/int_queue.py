"""A first-in first-out queue of 64-bit integers at 8 bytes each.

The deliverer's bookkeeping keeps an offset (and for batch adapters a due time) per
delivery held until due, 150,000 at once at 500 trades/s and a 5-minute delay. As
Python ints in a deque or a dict they cost 40 to 105 bytes each; here they cost 8.
Values leave from the front: the space they took is reclaimed once the dead front
is at least as long as what is live, so each value is moved at most once on average.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterator

_COMPACT_AT = 1024
"""A dead front shorter than this is never moved: small queues stay untouched."""


class IntQueue:
    __slots__ = ("_head", "_items")

    def __init__(self) -> None:
        self._items = array("q")
        self._head = 0

    def append(self, value: int) -> None:
        self._items.append(value)

    def first(self) -> int:
        """The value at the front (IndexError when empty)."""
        if self._head >= len(self._items):
            raise IndexError("first() of an empty IntQueue")
        return self._items[self._head]

    def last(self) -> int:
        """The value at the back (IndexError when empty)."""
        if self._head >= len(self._items):
            raise IndexError("last() of an empty IntQueue")
        return self._items[-1]

    def popleft(self) -> int:
        value = self.first()
        self._head += 1
        if self._head >= _COMPACT_AT and 2 * self._head >= len(self._items):
            del self._items[: self._head]
            self._head = 0
        return value

    def index_sorted(self, value: int) -> int:
        """Where `value` is, counted from the front, in a queue whose values ascend;
        -1 when it is not there. O(log n)."""
        at = bisect_left(self._items, value, self._head)
        if at < len(self._items) and self._items[at] == value:
            return at - self._head
        return -1

    def insert_sorted(self, value: int) -> None:
        """Put `value` in its place in a queue whose values ascend (O(n) unless it
        goes at the back)."""
        self._items.insert(bisect_left(self._items, value, self._head), value)

    def lowest(self) -> int:
        """The smallest value (ValueError when empty)."""
        return min(self._items[self._head :])

    def __len__(self) -> int:
        return len(self._items) - self._head

    def __iter__(self) -> Iterator[int]:
        items = self._items
        return (items[i] for i in range(self._head, len(items)))
