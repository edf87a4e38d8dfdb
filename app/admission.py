"""Admission control before decoding: a bound on requests reading and decoding their photos at once.

The batcher's queue bounds decoded photos waiting for the model; this bounds what comes before it.
A request takes a slot before its body is read and gives it back once its photos are decoded. While
every slot is taken, up to `backlog` more requests wait with their bodies unread (uvicorn stops
reading a socket after 64 KB, so a waiting upload costs a kernel buffer, not process memory); beyond
that they are refused at once (`Overloaded` → 503 + Retry-After), so a burst of large uploads cannot
grow memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from app.batcher import Overloaded


class Slot:
    """One admitted request's hold on a decoding slot; given back once, whichever comes first of
    its photos all being decoded (`photo_decoded` called `photos` times) or the request ending."""

    def __init__(self, give_back: Callable[[], None]) -> None:
        self._give_back: Callable[[], None] | None = give_back
        self._pending = 1

    def expect(self, photos: int) -> None:
        """The request carries `photos` photos: hold the slot until each of them is decoded."""
        self._pending = max(1, photos)

    def photo_decoded(self) -> None:
        self._pending -= 1
        if self._pending <= 0:
            self.release()

    def release(self) -> None:
        if self._give_back is not None:
            give_back, self._give_back = self._give_back, None
            give_back()


class Admission:
    """At most `limit` requests reading/decoding at once, at most `backlog` more waiting for a slot."""

    def __init__(
        self,
        limit: int,
        backlog: int,
        holding: Callable[[], contextlib.AbstractContextManager[object]] | None = None,
    ) -> None:
        """`holding`, if given, is entered while a request holds its slot: the service passes the
        batcher's `arriving`, so a forming batch waits for photos whose bodies are still arriving."""
        self.limit = limit
        self.backlog = backlog
        self._holding = holding
        self._slots = asyncio.Semaphore(limit)
        self._waiting = 0
        self._active = 0

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot, their bodies unread."""
        return self._waiting

    @property
    def active(self) -> int:
        """Requests holding a slot (reading or decoding)."""
        return self._active

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        """Hold a decoding slot for the body of the `async with`; raise Overloaded when none is free
        and the backlog is full."""
        if self._slots.locked() and self._waiting >= self.backlog:
            raise Overloaded(f"{self.limit} uploads being decoded and {self._waiting} waiting")
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        self._active += 1
        held = contextlib.ExitStack()
        if self._holding is not None:
            held.enter_context(self._holding())

        def give_back() -> None:
            held.close()
            self._give_back()

        slot = Slot(give_back)
        try:
            yield slot
        finally:
            slot.release()

    def _give_back(self) -> None:
        self._active -= 1
        self._slots.release()
