"""The shared pipeline (stream/pipeline/) over the worker's stores: what `replay_pipeline` is
to replay, this is to the worker. Reads go to the partition's store; writes are staged and
reach the stores only through the checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stream.pipeline.core import Pipeline, Tables
from stream.pipeline.shadow import shadow_model
from stream.pipeline.staging import StagedMapping
from stream.pipeline.ticks import TickScheduler
from stream.scoring import Model
from stream.scoring.identity import Identity, secret_or_dev
from stream.settings import Settings
from stream.topics import Topics
from stream.worker.stores import DueView, Stores, raw_view, text_view


@dataclass
class StorePipeline:
    """The pipeline and the tick schedule it stages (the checkpoint takes both)."""

    pipeline: Pipeline
    due: StagedMapping
    ticks: TickScheduler


def store_pipeline(
    settings: Settings, model: Model, stores: Stores, home: Callable[[bytes, int], int]
) -> StorePipeline:
    """The pipeline for every partition `stores` may hold; `home` places a key (cached)."""
    parts = range(settings.partitions)
    aliases = {p: text_view(stores, p, "aliases") for p in parts}
    states = {p: raw_view(stores, p, "lead_state") for p in parts}
    merges = {p: text_view(stores, p, "merges") for p in parts}
    due = StagedMapping(DueView(stores))
    ticks = TickScheduler(due)
    pipeline = Pipeline(
        Tables(aliases.__getitem__, states.__getitem__, merges.__getitem__),
        model,
        Identity(settings.partitions, secret_or_dev(settings.identity_secret), home),
        ticks,
        Topics.from_settings(settings).by_lead,
        merge_timeout=settings.worker_merge_timeout_seconds,
        observe_latency=True,
        state_cache=settings.worker_state_cache,
        shadow_model=shadow_model(settings),
    )
    return StorePipeline(pipeline, due, ticks)
