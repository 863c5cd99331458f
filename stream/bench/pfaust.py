"""P-faust: the smallest useful Faust app, the baseline our worker must at least match.

One agent (concurrency=1, as the worker's agents) reads the four channel topics and counts
events per key in a RocksDB table with the worker's store options. It decodes nothing: what it
costs is Faust itself (stream, table, changelog, commits), the floor under any Faust worker.
Run as a child process, `python -m stream.bench.pfaust`, with LEADSTREAM_* settings in its
environment; its app id (= consumer group) is `<topic_prefix>pfaust`.
"""

from __future__ import annotations

from typing import Any

import faust

from stream.settings import Settings
from stream.topics import Topics
from stream.worker.app import faust_options, faust_worker

RAW: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}


def app_id(settings: Settings) -> str:
    return f"{settings.topic_prefix}pfaust"


def create_app(settings: Settings) -> faust.App:
    """Same broker, partitions, commit interval and store options as the worker."""
    app = faust.App(app_id(settings), **faust_options(settings))
    source = app.topic(
        *Topics.from_settings(settings).channel_topics, key_type=bytes, value_type=bytes, **RAW
    )
    # Tables take serializers through a Schema, not as keyword arguments.
    raw: Any = faust.Schema(key_type=bytes, value_type=bytes, **RAW)
    counts = app.Table("counts", partitions=settings.partitions, schema=raw)

    @app.agent(source, concurrency=1)
    async def count(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            key = event.message.key or b""
            raw = counts.get(key)
            counts[key] = str(int(raw) + 1 if raw else 1).encode()

    return app


def main() -> None:
    settings = Settings.from_env()
    faust_worker(create_app(settings), settings).execute_from_commandline()


if __name__ == "__main__":
    main()
