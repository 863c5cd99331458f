"""`leadstream worker`: checks, topics, then the worker (stream/worker/service.py) until
SIGTERM or SIGINT.

Exactly-once comes from idempotent state (a per-lead offset watermark and event-id dedupe
inside each lead's state) and the checkpoint's order of writes (docs/worker.md), not from
Kafka transactions. We scale out with partitions and worker processes.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from aiohttp import web

from stream.credentials import check_identity_secret
from stream.errors import SettingsError
from stream.settings import Settings
from stream.topics import ensure_topics
from stream.worker.service import Worker
from stream.worker.stopping import bounded_stop
from stream.worker.stores import TABLES, changelog_topic
from stream.worker.web import web_app


def changelogs(settings: Settings) -> tuple[str, ...]:
    """The tables' changelog topics (compacted: they hold each key's latest value)."""
    return tuple(changelog_topic(settings.topic_prefix, t) for t in TABLES)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT (or the loop fails), then stop within the bound."""
    worker = Worker(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, bounded_stop(stop.set))
    runner = web.AppRunner(web_app(worker), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.metrics_host, settings.worker_port).start()
    try:
        await worker.start()
        stopped = asyncio.create_task(stop.wait())
        ended = asyncio.create_task(worker.wait_stopped())
        await asyncio.wait([stopped, ended], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if worker.loop_task is not None and worker.loop_task.done():
            worker.loop_task.result()  # the loop failed: say why, exit non-zero
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await worker.stop()
        await runner.cleanup()


def run(settings: Settings) -> None:
    """Refuse settings that cannot work, create the topics, then serve."""
    check_identity_secret(settings)
    data_dir = Path(settings.data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(
            f"LEADSTREAM_DATA_DIR={settings.data_dir}: cannot create the worker's state "
            f"directory ({exc.strerror}); point it at a writable path"
        ) from None
    asyncio.run(ensure_topics(settings, compacted=changelogs(settings)))
    asyncio.run(serve(settings))
