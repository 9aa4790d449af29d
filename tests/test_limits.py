"""edge.limits: read slots wait briefly then refuse, and a lease gives its slot back once."""

from __future__ import annotations

import asyncio

import pytest

from edge.errors import Overloaded
from edge.limits import Lease, ReadSlots


def test_beyond_the_slots_a_read_waits_then_is_refused_with_retry_after() -> None:
    async def main() -> None:
        slots = ReadSlots(2, wait=0.05, retry_after=7)
        await slots.acquire()
        await slots.acquire()
        with pytest.raises(Overloaded) as refused:
            await slots.acquire()
        assert refused.value.retry_after == 7
        waiting = asyncio.ensure_future(slots.acquire())
        await asyncio.sleep(0.01)
        slots.release()  # a slot freed within the wait is taken
        await asyncio.wait_for(waiting, 1)

    asyncio.run(main())


def test_a_lease_is_given_back_once_and_can_be_taken_again() -> None:
    async def main() -> None:
        slots = ReadSlots(1, wait=0.01)
        lease = Lease(slots)
        await lease.take()
        assert lease.held
        lease.give_back()
        lease.give_back()  # idempotent: the slot is not released twice
        other = Lease(slots)
        await other.take()
        with pytest.raises(Overloaded):
            await Lease(slots).take()
        other.give_back()
        await lease.take()  # taken again, as a paused download does
        assert lease.held
        lease.give_back()

    asyncio.run(main())
