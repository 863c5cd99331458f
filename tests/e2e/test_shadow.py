"""Shadow scoring, live: a candidate scored beside the live model on every event.

People talk to the real collector (the identity contract's journeys: browser, server and
email-only, hand-raisers among them, four partitions so visitors join across partitions);
the worker runs with `LEADSTREAM_SHADOW_MODEL`. The shadow transitions on `leads.shadow` equal
`leadstream replay` of the candidate over what the collector accepted; `leads.handoff` (what
every sink reads) carries the live model's transitions only, as replay of the live model has
them; Redis holds no shadow state.
"""

from __future__ import annotations

import asyncio
import base64
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stream.demo import Processes, wait_http
from stream.pipeline.replay import replay_lines
from stream.reports.runs import with_thresholds
from stream.scoring import default_model
from stream.settings import Settings
from stream.topics import Topics, ensure_topics
from tests.e2e.test_identity_contract import SECRET, Person, drained, send_all, validators
from tests.kafka_helpers import headers_of, read_all

pytestmark = pytest.mark.e2e
PEOPLE = 120


def _moves(lines: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {
        (t["lead_id"], t["seq"], t["at"][:19], t["from"], t["to"], t["reason"], t["route"],
         t["priority"], t["model_version"])
        for t in lines
    }  # fmt: skip


async def test_shadow_transitions_equal_replay_of_the_candidate_and_stay_off_handoffs(
    settings: Settings, tmp_path: Path
) -> None:
    live_model = default_model()
    candidate = with_thresholds(live_model, {"A": 5, "B": 5}, "shadow")
    model_file = tmp_path / "candidate.json"  # JSON is YAML: any model file format
    model_file.write_bytes(orjson.dumps(candidate.raw))
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = settings.replace(
        topic_prefix=f"{settings.topic_prefix}shadow.",
        partitions=4,
        identity_secret=SECRET,
        sendgrid_public_key=base64.b64encode(public).decode(),
        shadow_model=str(model_file),
    )
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    people = [Person(n, random.Random(f"shadow/{n}")) for n in range(PEOPLE)]
    procs = Processes(settings, tmp_path / "logs")
    try:
        procs.start("collector")
        procs.start("worker")
        base = f"http://{settings.collector_host}:{settings.collector_port}"
        await wait_http(f"{base}/readyz", procs)
        await wait_http(f"http://{settings.collector_host}:{settings.worker_port}/metrics", procs)
        await send_all(base, people, key, settings)
        await drained(settings, procs)
    finally:
        procs.stop()

    check = validators()
    accepted = []
    for topic in topics.channel_topics:
        for r in await read_all(settings.kafka_bootstrap, topic):
            accepted.append((int(headers_of(r)["accepted_at"]), r.value.decode()))
    lines = [value for _stamp, value in sorted(accepted)]
    for r in await read_all(settings.kafka_bootstrap, topics.by_lead):
        check["by-lead-record.schema.json"].validate(orjson.loads(r.value))

    shadow = []
    for r in await read_all(settings.kafka_bootstrap, topics.shadow):
        line = orjson.loads(r.value)
        check["shadow-transition.schema.json"].validate(line)
        assert r.key == line["lead_id"].encode()
        shadow.append(line)
    replayed = [t for t in replay_lines(lines, candidate, None, secret=SECRET)
                if t["kind"] == "transition"]  # fmt: skip
    assert _moves(shadow) == _moves(replayed)
    assert sum(1 for t in shadow if t["to"] == "mql") > 5  # the comparison is about something

    handoffs = [
        orjson.loads(r.value) for r in await read_all(settings.kafka_bootstrap, topics.handoff)
    ]
    assert {d["model_version"] for d in handoffs} == {live_model.ref}
    live = [t for t in replay_lines(lines, live_model, None, secret=SECRET)
            if t["kind"] == "transition"]  # fmt: skip
    assert {(d["lead_id"], d["seq"]) for d in handoffs} == {(t["lead_id"], t["seq"]) for t in live}
    assert _moves(shadow) != _moves([{**t, "model_version": candidate.ref} for t in live])

    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}*")]
        assert keys and not [k for k in keys if b"shadow" in k]
        lead = next(k for k in keys if k.startswith(f"{settings.redis_prefix}lead:".encode()))
        stored = await redis.get(lead)
        assert stored is None or candidate.ref.encode() not in stored
    finally:
        await redis.aclose()

    # what the live model did against what its shadow would have done, on the same stream
    from stream.reports.commands import run_whatif

    result = await asyncio.to_thread(  # it reads Kafka with asyncio.run, as the command does
        run_whatif,
        None,
        str(model_file),
        (),
        tmp_path / "whatif.html",
        topics=[topics.shadow],
        settings=settings,
    )
    m = result.summary["metrics"]
    changes = [t for t in shadow if t["from"] != t["to"] and t["reason"] != "sla_breached"]
    assert m["candidate_mqls"] == sum(1 for t in changes if t["to"] == "mql")
    assert m["baseline_mqls"] == sum(1 for t in live if t["to"] == "mql" and t["from"] != "mql")
    assert m["candidate_mqls"] > m["baseline_mqls"]
    assert result.summary["candidate"]["model"] == candidate.ref
