"""The shared limiter: bounded, fair to waiters, cancellation-safe, AIMD on 429s, one per key and loop."""

from __future__ import annotations

import asyncio

import pytest

from medsafetybench.models.concurrency import Limiter, shared_limiter


def test_never_more_than_capacity_in_flight():
    async def go():
        lim = Limiter(3)
        active = peak = 0

        async def task():
            nonlocal active, peak
            async with lim:
                active += 1
                peak = max(peak, active)
                await asyncio.sleep(0.001)
                active -= 1

        await asyncio.gather(*(task() for _ in range(50)))
        return peak, lim.active, lim.peak

    assert asyncio.run(go()) == (3, 0, 3)


def test_cancelled_waiters_give_their_slot_back():
    async def go():
        lim = Limiter(1)
        await lim.acquire()
        waiter = asyncio.create_task(lim.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        lim.release()
        # granted-then-cancelled: the slot must come back too
        await lim.acquire()
        granted = asyncio.create_task(lim.acquire())
        await asyncio.sleep(0)
        lim.release()  # wakes `granted`
        granted.cancel()
        await asyncio.gather(granted, return_exceptions=True)
        return lim.active

    assert asyncio.run(go()) == 0


def test_aimd_halves_once_per_round_and_grows_back():
    async def go():
        lim = Limiter(8)
        tickets = [await lim.acquire() for _ in range(8)]
        for _ in range(8):
            lim.release()
        lim.overloaded(tickets[0])
        assert lim.capacity == 4 and lim.cuts == 1
        lim.overloaded(tickets[5])  # started before the cut: same round, no second cut
        assert lim.capacity == 4
        t = await lim.acquire()
        lim.release()
        lim.overloaded(t)  # a call that started after the cut: a new round
        assert lim.capacity == 2
        for _ in range(2 + 3 + 4 + 5 + 6 + 7):
            lim.succeeded()
        assert lim.capacity == 8
        for _ in range(100):
            lim.succeeded()
        return lim.capacity

    assert asyncio.run(go()) == 8


def test_fixed_limiter_ignores_429s():
    lim = Limiter(4, adaptive=False)
    lim.overloaded(1)
    assert lim.capacity == 4


def test_shared_per_key_and_loop_with_the_largest_capacity():
    async def go():
        a = shared_limiter("http://h/v1#k1", 4)
        b = shared_limiter("http://h/v1#k1", 16)
        c = shared_limiter("http://h/v1#k2", 2)
        return a, b, c

    a, b, c = asyncio.run(go())
    assert a is b and a.max_capacity == 16 and a.capacity == 16 and c is not a
    a2, _, _ = asyncio.run(go())
    assert a2 is not a  # a new event loop gets its own limiters


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        Limiter(0)
