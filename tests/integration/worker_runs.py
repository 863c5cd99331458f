"""What the worker-process tests share: seeded journeys, worker processes of one group,
waiting for a drain, and the check that the worker's final states and handoffs equal an
offline `leadstream replay`.

Events of one topic keyed by user id are scored in the partition they arrive in (no by-lead
hop), so replaying each partition in offset order is exactly the order the workers scored
them, whichever worker held the partition when.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from stream.demo import Processes
from stream.dev.process import free_port
from stream.lag import group_lag
from stream.pipeline.handoff import ce_id
from stream.scoring import LeadState, default_model, snapshot, tick
from stream.settings import Settings
from stream.topics import Topics
from tests.kafka_helpers import headers_of, read_all

START = datetime(2026, 2, 2, 8, 0, tzinfo=UTC)
# A SIGTERMed worker commits what it processed and leaves the group within this bound.
STOP_BOUND_S = 30.0
PROFILES = [
    {
        "seniority": "vp",
        "buying_role": "decision_maker",
        "employees": 900,
        "industry": "software",
        "country": "US",
        "email_type": "business",
        "budget_usd": 50_000,
        "need": True,
        "timeline_months": 3,
    },
    {
        "seniority": "manager",
        "buying_role": "influencer",
        "employees": 120,
        "industry": "retail",
        "country": "DE",
        "email_type": "business",
    },
    {"seniority": "student", "employees": 5, "email_type": "free"},
    {
        "seniority": "director",
        "employees": 3000,
        "industry": "healthcare",
        "country": "GB",
        "email_type": "business",
        "tech_fit": True,
    },
]
ACTIVITY = [
    ("web.page_view", "web", 30),
    ("email.open", "email", 12),
    ("email.click", "email", 6),
    ("social.engagement", "social", 5),
    ("content.ebook_download", "web", 4),
    ("web.product_page_view", "web", 14),
    ("content.case_study_download", "web", 4),
    ("webinar.registered", "web", 3),
    ("webinar.attended", "web", 3),
    ("web.pricing_view", "web", 8),
    ("trial.signup", "product", 2),
    ("product.activation", "product", 2),
    ("cart.abandoned", "web", 1),
    ("web.careers_view", "web", 1),
    ("email.unsubscribe", "email", 1),
]


def journeys(leads: int, events: int, seed: int) -> list[dict[str, Any]]:
    """Seeded canonical events in global time order; some leads raise their hand."""
    rng = random.Random(seed)
    kinds, weights = [a[:2] for a in ACTIVITY], [a[2] for a in ACTIVITY]
    out: list[dict[str, Any]] = []
    for n in range(leads):
        user = f"u{n:04d}"
        at = START + timedelta(minutes=rng.randrange(0, 600))
        out.append(
            _event(f"{user}-id", "identify", "web", at, user, traits=dict(rng.choice(PROFILES)))
        )
    for i in range(events - leads):
        user = f"u{rng.randrange(leads) ** 2 // leads:04d}"  # skewed: low ids are busier
        at = START + timedelta(minutes=rng.randrange(600, 60 * 24 * 40))
        kind, channel = rng.choices(kinds, weights)[0]
        props = {}
        if kind.startswith("email."):
            props["message_id"] = f"m{rng.randrange(40)}"
        if kind.startswith("content."):
            props["asset_id"] = f"a{rng.randrange(6)}"
        if kind.startswith("webinar."):
            props["webinar_id"] = f"w{rng.randrange(3)}"
        if rng.random() < 0.004:
            kind, channel = "meeting.requested", "web"
        elif rng.random() < 0.004:
            kind, channel, props = "sales.accepted", "crm", {}
        out.append(_event(f"e{i}", kind, channel, at, user, properties=props))
    out.sort(key=lambda e: e["occurred_at"])
    return out


def _event(
    event_id: str, type_: str, channel: str, at: datetime, user: str, **fields: Any
) -> dict[str, Any]:
    stamp = at.isoformat().replace("+00:00", "Z")
    return {
        "event_id": event_id,
        "type": type_,
        "channel": channel,
        "occurred_at": stamp,
        "received_at": stamp,
        "anonymous_id": None,
        "user_id": user,
        "email": None,
        "account_id": None,
        "source": "test",
        "properties": fields.get("properties", {}),
        "traits": fields.get("traits", {}),
        "context": {},
    }


class Workers:
    """Worker processes of one group, each with its own state dir, web port and log."""

    def __init__(self, settings: Settings, tmp_path: Path):
        self.settings = settings
        self.tmp_path = tmp_path
        self.procs = Processes(settings, tmp_path / "logs")

    def start(self, name: str) -> None:
        own = self.settings.replace(data_dir=str(self.tmp_path / name), worker_port=free_port())
        self.procs.start(name, command="worker", settings=own)

    def kill(self, name: str) -> None:
        proc = self.procs.children.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    async def terminate(self, name: str) -> tuple[int | None, float]:
        """SIGTERM; the exit code (None: still running after the bound) and seconds taken."""
        proc = self.procs.children.pop(name)
        began = time.monotonic()
        proc.terminate()
        try:
            code: int | None = await asyncio.to_thread(proc.wait, STOP_BOUND_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
        return code, time.monotonic() - began


async def drained(settings: Settings, procs: Processes, timeout: float = 240.0) -> None:
    topics = Topics.from_settings(settings)
    group = f"{settings.topic_prefix}leadstream-worker"
    quiet, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs.check_alive()
        lag = await group_lag(
            settings.kafka_bootstrap, group, [*topics.channel_topics, topics.by_lead]
        )
        quiet = quiet + 1 if sum(lag.values()) == 0 else 0
        if quiet >= 3:
            return
        await asyncio.sleep(1.0)
    raise AssertionError(f"the worker did not drain within {timeout:.0f}s (lag {lag})")


async def lags(settings: Settings) -> list[int]:
    topics = Topics.from_settings(settings)
    group = f"{settings.topic_prefix}leadstream-worker"
    lag = await group_lag(settings.kafka_bootstrap, group, [*topics.channel_topics, topics.by_lead])
    return list(lag.values())


async def ledger_end(settings: Settings) -> int:
    """Records in the ledger so far: the first sign of a batch processed (before a commit).
    The lag of a group that never commits is the topic's end offset."""
    ledger = Topics.from_settings(settings).ledger
    return (await group_lag(settings.kafka_bootstrap, "nobody-commits", [ledger]))[ledger]


async def until_progress(settings: Settings, procs: Processes, before: int) -> None:
    deadline = time.monotonic() + 120
    while await ledger_end(settings) <= before:
        procs.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError("the worker made no progress within 120s")
        await asyncio.sleep(0.05)


async def latest_by_key(bootstrap: str, topic: str) -> dict[bytes, bytes]:
    """A compacted topic's content: the last value of every key (None deletes)."""
    latest: dict[bytes, bytes] = {}
    for r in await read_all(bootstrap, topic):
        if r.value is None:
            latest.pop(r.key, None)
        else:
            latest[r.key] = r.value
    return latest


async def assert_ends_like_replay(
    settings: Settings, events: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The state table's changelog and the handoff topic against `leadstream replay` of the
    scored events, evaluated at the last event's time (ticks after a partition's last event
    are fired offline on the worker's states: ticks are idempotent)."""
    topics = Topics.from_settings(settings)
    # What the worker ended with: the state table's changelog, last value per lead.
    changelog = f"{settings.topic_prefix}leadstream-worker-lead_state-changelog"
    leads = {e["user_id"] for e in events}
    states_raw = await latest_by_key(settings.kafka_bootstrap, changelog)
    assert {k.decode() for k in states_raw} == leads
    handoffs = await read_all(settings.kafka_bootstrap, topics.handoff)
    worker_ids = {headers_of(r)["ce_id"] for r in handoffs}

    # What replay says, from the events in the order the worker scored them: each lead's
    # events arrive keyed by its user id, in its home partition, and are scored where they
    # arrive (no by-lead hop), so per partition in offset order.
    scored = await read_all(settings.kafka_bootstrap, topics.events("web"))
    assert len({orjson.loads(r.value)["event_id"] for r in scored}) == len(events)
    assert await read_all(settings.kafka_bootstrap, topics.by_lead) == []
    dump = tmp_path / "scored.jsonl"
    by_partition = sorted(scored, key=lambda r: (r.partition, r.offset))
    dump.write_bytes(b"\n".join(r.value for r in by_partition) + b"\n")
    until = max(e["occurred_at"] for e in events)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stream",
        "replay",
        str(dump),
        "--until",
        until,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "LEADSTREAM_IDENTITY_SECRET": settings.identity_secret},
    )
    stdout, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()
    lines = [orjson.loads(line) for line in stdout.splitlines()]
    replay_ids = {ce_id(t["lead_id"], t["seq"]) for t in lines if t["kind"] == "transition"}
    replay_leads = {t["lead_id"]: t for t in lines if t["kind"] == "lead"}

    model = default_model()
    until_t = datetime.fromisoformat(until.replace("Z", "+00:00")).timestamp() / 86400
    offline_ids = set()
    mismatches = []
    for lead_id, raw in states_raw.items():
        state = LeadState.decode(raw)
        for tr in tick(state, until_t, model).transitions:
            offline_ids.add(ce_id(tr.lead_id, tr.seq))
        mine = snapshot(state, model, until_t)
        theirs = replay_leads[lead_id.decode()]
        for field in ("stage", "grade", "fit"):
            if mine[field] != theirs[field]:
                mismatches.append((lead_id, field, mine[field], theirs[field]))
        if abs(mine["engagement"] - theirs["engagement"]) > 0.01:
            mismatches.append((lead_id, "engagement", mine["engagement"], theirs["engagement"]))
    if mismatches:
        raise AssertionError(f"{mismatches[:10]}; {await _diagnose(settings, mismatches, scored)}")
    assert set(replay_leads) == {k.decode() for k in states_raw}
    assert worker_ids | offline_ids == replay_ids
    assert len(replay_ids) > 20  # the journeys do move leads: the comparison means something


async def _diagnose(settings: Settings, mismatches: list[Any], scored: list[Any]) -> str:
    """For leads whose state differs from replay: their events that have no ledger entry (never
    applied) and those with more than one (applied twice), with partition and offset."""
    leads = {m[0].decode() for m in mismatches}
    ledger = await read_all(settings.kafka_bootstrap, Topics.from_settings(settings).ledger)
    entries: dict[str, int] = {}
    for r in ledger:
        entry = orjson.loads(r.value)
        if entry.get("lead_id") in leads:
            entries[entry["event_id"]] = entries.get(entry["event_id"], 0) + 1
    found = []
    for r in scored:
        event = orjson.loads(r.value)
        if event["user_id"] in leads and entries.get(event["event_id"], 0) != 1:
            found.append(
                (event["user_id"], event["event_id"], event["type"], event["occurred_at"],
                 r.partition, r.offset, entries.get(event["event_id"], 0))
            )  # fmt: skip
    return f"events with 0 or 2+ ledger entries (lead, id, type, at, partition, offset, n): {found}"
