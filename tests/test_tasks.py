"""`cancel_and_wait`: a stop ends even when a task absorbed its cancellation."""

from __future__ import annotations

import asyncio

import pytest

from stream.tasks import cancel_and_wait


async def _rides_out_one_cancellation(started: asyncio.Event) -> None:
    """A retry loop around a call whose timeout turned a cancellation into a TimeoutError
    (Python 3.11's `asyncio.timeout` when its deadline fires at the same moment)."""
    started.set()
    absorbed = False
    while True:
        try:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if absorbed:
                    raise
                absorbed = True
                raise TimeoutError from None
        except TimeoutError:
            continue  # the loop logs and goes on


async def test_a_task_that_absorbed_its_cancellation_is_cancelled_again() -> None:
    started = asyncio.Event()
    task = asyncio.create_task(_rides_out_one_cancellation(started))
    await started.wait()
    task.cancel()
    with pytest.raises(TimeoutError):  # what a plain cancel-and-gather did: wait forever
        await asyncio.wait_for(asyncio.shield(asyncio.gather(task)), timeout=0.3)
    await asyncio.wait_for(cancel_and_wait([task], retry_seconds=0.05), timeout=5.0)
    assert task.cancelled()


async def test_finished_and_failed_tasks_are_waited_for_without_noise() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    done = asyncio.create_task(asyncio.sleep(0))
    failed = asyncio.create_task(fails())
    await asyncio.sleep(0.01)
    await cancel_and_wait([done, failed, asyncio.create_task(asyncio.sleep(3600))])
    assert done.done() and isinstance(failed.exception(), ValueError)
