"""Admission to an engine: at most `slots` generations at once, at most `max_waiting` more
in line, and a prompt 503 beyond that.

A turn that cannot be served soon is better refused at once, with a `Retry-After` the
client can act on, than left hanging for minutes behind a queue nobody bounded.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from personae.errors import EngineBusy

#: weight of the newest generation's duration in the running average
SMOOTHING = 0.2


class Admission:
    def __init__(self, slots: int, max_waiting: int) -> None:
        self.slots = slots
        self.max_waiting = max_waiting
        self.active = 0
        self.waiting = 0
        self._free = asyncio.Semaphore(slots)
        self._average_seconds = 5.0  # until a generation has been timed

    @property
    def in_use(self) -> bool:
        return self.active + self.waiting > 0

    def check(self) -> None:
        """EngineBusy (503, Retry-After) if a new generation would find no place in line."""
        if self.active >= self.slots and self.waiting >= self.max_waiting:
            raise EngineBusy(
                details={"parallel": self.slots, "queued": self.waiting},
                headers={"Retry-After": str(self.retry_after())},
            )

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the line ahead, served `slots` at a time."""
        rounds = self.waiting / self.slots + 1
        return max(1, min(60, math.ceil(rounds * self._average_seconds)))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the slots for the body's duration, waiting in line if need be."""
        self.check()
        self.waiting += 1
        try:
            await self._free.acquire()
        finally:
            self.waiting -= 1
        self.active += 1
        started = time.monotonic()
        try:
            yield
        finally:
            self.active -= 1
            self._free.release()
            elapsed = time.monotonic() - started
            self._average_seconds += SMOOTHING * (elapsed - self._average_seconds)
