"""A flush that really flushes: Faust's commit must not run ahead of its changelog records.

faust-streaming 0.15.3 commits source offsets after `producer.flush()`, but the flush of its
ProducerBuffer (where every table write's changelog record waits) gives up as soon as 0.1 s
pass without a record leaving the buffer. On a busy machine it returns with records still
queued; the offsets are committed; a SIGKILL then loses changelog records of events that are
never processed again, and a worker that restores the partition from the changelog gets stale
state (seen in tests/integration/test_worker_recovery.py under load). This counts the records
put into the buffer and makes `flush` wait until every one has been handed to the Kafka client,
whose own flush then waits for the acknowledgements.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from faust.streams import _current_event

_installed = False


def install() -> None:
    """Patch faust's ProducerBuffer once per process; a no-op when already done."""
    global _installed
    if _installed:
        return
    from faust.transport.producer import ProducerBuffer

    original_put = ProducerBuffer.put
    original_send = ProducerBuffer._send_pending

    def put(self: Any, fut: Any) -> None:
        self._leadstream_unsent = getattr(self, "_leadstream_unsent", 0) + 1
        original_put(self, fut)

    async def send_pending(self: Any, fut: Any) -> None:
        try:
            await original_send(self, fut)
        finally:
            self._leadstream_unsent -= 1

    async def flush(self: Any) -> None:
        while getattr(self, "_leadstream_unsent", 0) > 0:
            if self.state != "running":
                raise RuntimeError("Cannot flush: Producer not Running")
            await asyncio.sleep(0.001)

    ProducerBuffer.put = put  # type: ignore[method-assign]
    ProducerBuffer._send_pending = send_pending  # type: ignore[method-assign]
    ProducerBuffer.flush = flush  # type: ignore[method-assign]
    _seek_before_resume()
    _installed = True


def _seek_before_resume() -> None:
    """Stream partitions stay paused until they have been sought to their committed offsets.

    After a table recovery, faust-streaming 0.15.3 resumes the stream partitions first and
    seeks them second, while the fetcher (started to read the changelogs) is running. Records
    fetched in between reach the agents, then the seek moves the positions under them: a
    run of records was skipped without being processed (seen after restarts in
    tests/integration/test_worker_recovery.py: offsets 295-331 of each partition never
    reached the agent). With nothing committed yet on a partition, Faust's commit then moves
    past the hole and the records are lost; otherwise commits stop at the hole for good.
    Here the resume waits until the seek is done.
    """
    from faust.tables.recovery import Recovery

    def deferring(original: Any) -> Any:
        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            consumer = self.app.consumer
            resume, seek = consumer.resume_partitions, consumer.perform_seek
            deferred: list[Any] = []

            async def seek_then_resume() -> None:
                await seek()
                while deferred:
                    resume(deferred.pop(0))

            consumer.resume_partitions = deferred.append
            consumer.perform_seek = seek_then_resume
            try:
                return await original(self, *args, **kwargs)
            finally:
                del consumer.resume_partitions, consumer.perform_seek  # the methods again
                while deferred:  # no seek happened (an empty assignment): resume as asked
                    resume(deferred.pop(0))

        return wrapper

    Recovery.on_recovery_completed = deferring(Recovery.on_recovery_completed)  # type: ignore[method-assign]
    Recovery._resume_streams = deferring(Recovery._resume_streams)  # type: ignore[method-assign]


def set_current_event(event: Any) -> None:
    """Make `event` the one Faust's tables write for (its partition picks the RocksDB store
    and the changelog partition). A batch of `take_events` is handled outside the stream's
    own iteration, where Faust would set it; this is the contextvar that iteration sets."""
    _current_event.set(weakref.ref(event))


def forget_delivery(consumer: Any, message: Any) -> None:
    """A delivered record the agent will not acknowledge (it will be read again after a
    seek): Faust must stop waiting for its ack, or a rebalance waits for it forever."""
    consumer._unacked_messages.discard(message)
