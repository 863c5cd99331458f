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

from stream import logs
from stream.settings import Settings
from stream.topics import Topics
from stream.worker.stopping import bounded_stop

RAW: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}


def rocksdb_options(settings: Settings) -> dict[str, int]:
    """RocksDB's defaults (2 GiB block cache, 3 x 64 MiB write buffers per partition DB) are
    far too heavy for a small machine: capped from the same settings as the worker's stores."""
    mib = 1024 * 1024
    return {
        "block_cache_size": settings.rocksdb_block_cache_mib * mib,
        "block_cache_compressed_size": 0,
        "write_buffer_size": settings.rocksdb_write_buffer_mib * mib,
        "max_write_buffer_number": 2,
        "max_open_files": 256,
    }


def faust_options(settings: Settings) -> dict[str, Any]:
    """The Faust app as the worker of earlier releases ran it (commit interval, session
    timeout, store options), so the baseline measures Faust as it was used, on the same
    broker and partitions as the worker beside it."""
    return {
        "broker": ";".join(f"kafka://{b.strip()}" for b in settings.kafka_bootstrap.split(",")),
        "store": "rocksdb://",
        "datadir": settings.data_dir,
        "topic_partitions": settings.partitions,
        "topic_replication_factor": 1,
        "consumer_auto_offset_reset": "earliest",
        "web_port": settings.worker_port,
        "web_bind": settings.metrics_host,
        "web_tables_enabled": False,
        "web_router_enabled": False,
        "autodiscover": False,
        "broker_commit_interval": 1.0,
        "broker_session_timeout": 6.0,
        "broker_heartbeat_interval": 2.0,
        "stream_wait_empty": False,
        "rocksdb_options": rocksdb_options(settings),
    }


def faust_worker(app: faust.App, settings: Settings) -> Any:
    """Faust's Worker for the app, without its terminal spinner: at log level warning and
    above Faust sets the root logger to DEBUG so the spinner turns with every record logged,
    and then every debug line of Faust and aiokafka is formatted (~5 % of the time)."""
    from faust.worker import Worker

    # JSON logs: our logging config for Faust's and aiokafka's loggers too (Faust's Worker
    # would install its own text handler); text keeps Faust's own format.
    config = logs.dict_config(settings) if settings.log_format == "json" else None
    worker = Worker(app, loglevel=settings.log_level.upper(), quiet=True, logging_config=config)
    worker.spinner = None
    for name in ("_on_sigterm", "_on_sigint"):
        setattr(worker, name, bounded_stop(getattr(worker, name)))
    return worker


def app_id(settings: Settings) -> str:
    return f"{settings.topic_prefix}pfaust"


def create_app(settings: Settings) -> faust.App:
    """Same broker and partitions as the worker, Faust configured as the old worker was."""
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
