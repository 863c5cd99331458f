"""The worker's Kafka clients, with the options that matter for its guarantees in one place."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream.settings import Settings
from stream.worker.assignor import CoPartitionAssignor
from stream.worker.outputs import MAX_BATCH_BYTES

FETCH_WAIT_MS = 20


def worker_group(settings: Settings) -> str:
    """The workers' consumer group: the same name the Faust-based workers of earlier releases
    used, so an upgrade carries their committed offsets over."""
    return f"{settings.topic_prefix}leadstream-worker"


def input_consumer(
    settings: Settings, stored: Callable[[], Iterable[int]] = tuple
) -> AIOKafkaConsumer:
    """The consume loop's client: a member of the workers' group, offsets committed only by
    the checkpoint, every input topic's partition N assigned together, and each number kept
    with its worker where balance allows (`stored`: the partitions with a store on disk)."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="leadstream-worker",
        group_id=worker_group(settings),
        group_instance_id=settings.worker_instance_id or None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        partition_assignment_strategy=(CoPartitionAssignor(stored),),
        # A killed worker's partitions move once its session times out: 6 s, the broker's
        # minimum (group.min.session.timeout.ms); heartbeats run in their own task. Members
        # learn that a rebalance began from their next heartbeat, and every partition of the
        # group waits for the last of them: at 2 s that wait was 0.4-1.6 s of each pause
        # (bench logs); at 0.5 s it is at most half a second, for two small requests a second.
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        # An input is caught up only as of a fetch answered after the held record came; a
        # fetch of partitions with nothing new waits this long at the broker. At the default
        # 500 ms nearly every release during a drain waited out the order wait.
        fetch_max_wait_ms=FETCH_WAIT_MS,
    )


def restore_consumer(settings: Settings) -> AIOKafkaConsumer:
    """Reads changelogs into the stores; no group (it is assigned partitions by hand)."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="leadstream-worker-restore",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


def output_producer(settings: Settings) -> AIOKafkaProducer:
    """Every output and changelog record; acknowledged by all in-sync replicas before the
    checkpoint commits the inputs that made them."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="leadstream-worker",
        acks="all",
        max_batch_size=MAX_BATCH_BYTES,
    )
