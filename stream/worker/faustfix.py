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
from typing import Any

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
    _installed = True
