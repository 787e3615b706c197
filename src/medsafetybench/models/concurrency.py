"""Concurrency limits shared by every model that talks to the same server.

`shared_limiter(connection_key, capacity)` returns one process-wide `Limiter` per connection key
(base URL + a hash of the credentials) and event loop, so a model and its judge on the same server
share one limit instead of each opening their own `concurrency` connections. The limit is the
largest capacity any of them asked for; each model still runs at most its own `concurrency` workers.

A limiter can adapt (AIMD): an HTTP 429 halves the capacity (once per round: a 429 on a call that
started before the last cut does not cut again), and each run of `capacity` successes adds one back,
up to the capacity asked for.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import weakref


class Limiter:
    """An asyncio semaphore whose capacity can shrink and grow (see the module docstring).

    Use `ticket = await limiter.acquire()` ... `limiter.release()`, and report outcomes with
    `limiter.overloaded(ticket)` (an HTTP 429) or `limiter.succeeded()`.
    """

    def __init__(self, capacity: int, *, adaptive: bool = True) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.max_capacity = capacity
        self.capacity = capacity
        self.adaptive = adaptive
        self.active = 0
        self.peak = 0
        self.cuts = 0
        self._issued = 0
        self._last_cut_ticket = 0
        self._successes = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def raise_max(self, capacity: int) -> None:
        """Allow at least `capacity` calls in flight (a second model asked for more)."""
        if capacity > self.max_capacity:
            self.capacity += capacity - self.max_capacity
            self.max_capacity = capacity
            self._wake()

    async def acquire(self) -> int:
        """Wait for a slot; returns a ticket (increasing) for `overloaded`."""
        if self.active < self.capacity and not self._waiters:
            return self._grant()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted, then cancelled before it could be used
            else:
                try:
                    self._waiters.remove(fut)
                except ValueError:
                    pass
            raise
        self._issued += 1
        return self._issued

    def _grant(self) -> int:
        self.active += 1
        self.peak = max(self.peak, self.active)
        self._issued += 1
        return self._issued

    def release(self) -> None:
        """Give a slot back."""
        self.active -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.active < self.capacity:
            fut = self._waiters.popleft()
            if not fut.done():
                self.active += 1
                self.peak = max(self.peak, self.active)
                fut.set_result(None)

    def succeeded(self) -> None:
        """One call succeeded: after `capacity` of them, allow one more in flight (up to the maximum)."""
        if not self.adaptive or self.capacity >= self.max_capacity:
            return
        self._successes += 1
        if self._successes >= self.capacity:
            self._successes = 0
            self.capacity += 1
            self._wake()

    def overloaded(self, ticket: int) -> None:
        """The call holding `ticket` got an HTTP 429: halve the capacity, once per round."""
        if not self.adaptive or ticket <= self._last_cut_ticket:
            return
        self._last_cut_ticket = self._issued
        self._successes = 0
        new = max(1, self.capacity // 2)
        if new < self.capacity:
            self.capacity = new
            self.cuts += 1

    async def __aenter__(self) -> int:
        return await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()


_LOCK = threading.Lock()
_LIMITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Limiter]] = weakref.WeakKeyDictionary()


def shared_limiter(connection_key: str, capacity: int, *, adaptive: bool = True) -> Limiter:
    """The limiter for `connection_key` on the running event loop, created on first use.

    Args:
        connection_key: names the server and credentials (see `SupportsConnectionKey`).
        capacity: calls in flight this caller wants at most; the shared limit is the largest asked.
        adaptive: cut the limit on HTTP 429s (AIMD); any caller asking for a fixed limit fixes it.
    """
    loop = asyncio.get_running_loop()
    with _LOCK:
        per_loop = _LIMITERS.setdefault(loop, {})
        limiter = per_loop.get(connection_key)
        if limiter is None:
            limiter = per_loop[connection_key] = Limiter(capacity, adaptive=adaptive)
        else:
            limiter.raise_max(capacity)
            limiter.adaptive = limiter.adaptive and adaptive
        return limiter


async def gather_or_cancel(tasks: list[asyncio.Future]) -> None:
    """Await every task; when one fails (or this is cancelled), cancel the others, wait for them to end,
    and re-raise, so no task outlives the call."""
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
