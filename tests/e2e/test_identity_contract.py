"""The identity contract, live: what the pipeline decides equals `replay` of what it accepted.

Hundreds of simulated people talk to the real collector at once, each one sequentially (every
call acknowledged before the next, as SDK flushes are): browser-style (anonymous id on every
call, user id after identify), server-style (identify with both ids, then the user id alone)
and email-only (signed SendGrid webhooks, identified later by a server identify), hand-raisers
among them. The live transitions on `leads.handoff` (to the second, with route and priority)
and every lead's final state equal `leadstream replay` of the accepted channel records in
acceptance order, with one partition and with four. Every record on every topic is checked
against its JSON Schema on the way.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema_rs
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stream.demo import Processes, wait_http
from stream.lag import group_lag
from stream.pipeline.replay import replay_lines
from stream.scoring import LeadState, default_model, snapshot
from stream.scoring.events import parse_time, us_to_t
from stream.settings import Settings
from stream.simulate.sender import basic_auth
from stream.topics import Topics, ensure_topics
from tests.e2e.test_real_clients import sendgrid_post
from tests.kafka_helpers import headers_of, read_all

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
BROWSER, SERVER = "browser", "server"  # which write key a call uses (send_all maps them)
SECRET = secrets.token_urlsafe(32)  # random: the collector and worker refuse guessable ones
VP = {"title": "VP Engineering", "seniority": "vp", "employees": 800, "industry": "software",
      "country": "US", "email_type": "business"}  # fmt: skip
STUDENT = {"title": "Student", "seniority": "student"}
PAGES = ["/", "/blog/why", "/product/tour", "/pricing", "/features/api", "/careers"]
PEOPLE = 240


def validators() -> dict[str, jsonschema_rs.Validator]:
    schemas = {p.name: json.loads(p.read_text()) for p in (ROOT / "schemas").glob("*.json")}
    registry = jsonschema_rs.Registry([(s["$id"], s) for s in schemas.values()])
    return {
        name: jsonschema_rs.validator_for(schema, registry=registry)
        for name, schema in schemas.items()
    }


class Person:
    """One person's calls, in order: (path, write key or None for a webhook, body)."""

    def __init__(self, n: int, rng: random.Random) -> None:
        self.rng = rng
        self.anon = f"anon-{n}-{uuid.uuid4().hex[:6]}"
        self.user = f"user-{n}-{uuid.uuid4().hex[:6]}"
        self.email = f"person{n}.{uuid.uuid4().hex[:4]}@corp{n % 7}.example"
        self.kind = rng.choice(["browser", "server", "email"])
        self.traits = rng.choice([VP, VP, STUDENT, {"title": "Engineer"}])

    def calls(self) -> Iterator[tuple[str, str | None, Any]]:
        rng = self.rng
        if self.kind == "browser":
            for _ in range(rng.randint(1, 5)):
                yield self._page({"anonymousId": self.anon})
            if rng.random() < 0.2:
                yield self._track("Contact Sales Form Submitted", {"anonymousId": self.anon})
            yield self._identify({"anonymousId": self.anon, "userId": self.user}, BROWSER)
            for _ in range(rng.randint(0, 3)):
                yield self._page({"anonymousId": self.anon, "userId": self.user})
            if rng.random() < 0.4:
                yield self._track("Demo Requested", {"anonymousId": self.anon, "userId": self.user})
        elif self.kind == "server":
            if rng.random() < 0.5:
                yield self._page({"anonymousId": self.anon})
            yield self._identify({"anonymousId": self.anon, "userId": self.user}, SERVER)
            if rng.random() < 0.5:
                yield self._track("Demo Requested", {"userId": self.user}, SERVER)
            for _ in range(rng.randint(0, 2)):
                yield self._track(
                    "Webinar Attended", {"userId": self.user, "properties": {
                        "webinar_id": f"w{rng.randint(1, 9)}"}}, SERVER)  # fmt: skip
            if rng.random() < 0.3:
                yield self._track("sales.accepted", {"userId": self.user}, SERVER)
        else:
            for n in range(rng.randint(1, 4)):
                yield self._sendgrid(n)
            yield self._identify({"userId": self.user, "traits": {"email": self.email}}, SERVER)
            for n in range(rng.randint(0, 2)):
                yield self._sendgrid(10 + n)
            if rng.random() < 0.4:
                yield self._track("Meeting Requested", {"userId": self.user}, SERVER)

    def _message(self, kind: str, ids: dict[str, Any]) -> dict[str, Any]:
        return {"type": kind, "messageId": str(uuid.uuid4()), **ids}

    def _page(self, ids: dict[str, Any]) -> tuple[str, str | None, Any]:
        path = self.rng.choice(PAGES)
        body = self._message("page", ids)
        body["properties"] = {"url": f"https://bigcorp.example{path}", "path": path}
        return "/v1/page", BROWSER, body

    def _track(
        self, name: str, ids: dict[str, Any], key: str = BROWSER
    ) -> tuple[str, str | None, Any]:
        body = self._message("track", ids)
        body["event"] = name
        return "/v1/track", key, body

    def _identify(self, ids: dict[str, Any], key: str) -> tuple[str, str | None, Any]:
        extra = ids.pop("traits", {})
        body = self._message("identify", ids)
        body["traits"] = {**self.traits, "email": self.email, **extra}
        return "/v1/identify", key, body

    def _sendgrid(self, n: int) -> tuple[str, str | None, Any]:
        event = {"email": self.email, "timestamp": int(time.time()), "event": "click",
                 "sg_event_id": f"sg-{uuid.uuid4().hex}", "sg_message_id": f"m{n}.filter",
                 "url": "https://bigcorp.example/case-study"}  # fmt: skip
        return "/v1/webhooks/sendgrid", None, [event]


async def send_all(
    base: str, people: list[Person], key: ec.EllipticCurvePrivateKey, settings: Settings
) -> int:
    """Everybody at once, each person in order; every call must be acknowledged (200)."""
    sent = 0
    write_keys = {kind: k for k, (_, kind) in settings.parsed_write_keys().items()}

    async def one(http: aiohttp.ClientSession, person: Person) -> None:
        nonlocal sent
        for path, write_key, body in person.calls():
            if write_key is None:
                data, headers = sendgrid_post(key, body)
            else:
                data = orjson.dumps(body)
                headers = {
                    "Content-Type": "application/json",
                    "Authorization": basic_auth(write_keys[write_key]),
                }
            async with http.post(base + path, data=data, headers=headers) as resp:
                assert resp.status == 200, (path, await resp.text())
            sent += 1

    limit = asyncio.Semaphore(60)

    async def bounded(http: aiohttp.ClientSession, person: Person) -> None:
        async with limit:
            await one(http, person)

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(bounded(http, p) for p in people))
    return sent


async def drained(settings: Settings, procs: Processes, timeout: float = 120.0) -> None:
    """Lag 0 on every input, twice a few seconds apart (held records are not committed)."""
    topics = Topics.from_settings(settings)
    group = f"{settings.topic_prefix}leadstream-worker"
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 2:
        procs.check_alive()
        lag = await group_lag(
            settings.kafka_bootstrap, group, [*topics.channel_topics, topics.by_lead]
        )
        quiet = quiet + 1 if sum(lag.values()) == 0 else 0
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker did not drain: lag {lag}")
        await asyncio.sleep(2.0)


async def latest_by_key(bootstrap: str, topic: str) -> dict[bytes, bytes]:
    latest: dict[bytes, bytes] = {}
    for r in await read_all(bootstrap, topic):
        if r.key is not None:
            if r.value is None:
                latest.pop(r.key, None)
            else:
                latest[r.key] = r.value
    return latest


@pytest.mark.parametrize("partitions", [1, 4])
async def test_live_pipeline_equals_replay_of_what_it_accepted(
    settings: Settings, tmp_path: Path, partitions: int
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = settings.replace(
        topic_prefix=f"{settings.topic_prefix}p{partitions}.",
        partitions=partitions,
        identity_secret=SECRET,
        sendgrid_public_key=base64.b64encode(public).decode(),
    )
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    rng = random.Random(20261204 + partitions)
    people = [Person(n, rng) for n in range(PEOPLE)]
    procs = Processes(settings, tmp_path / "logs")
    try:
        procs.start("collector")
        procs.start("worker")
        base = f"http://{settings.collector_host}:{settings.collector_port}"
        await wait_http(f"{base}/readyz", procs)
        await wait_http(f"http://{settings.collector_host}:{settings.worker_port}/metrics", procs)
        sent = await send_all(base, people, key, settings)
        assert sent > PEOPLE * 3
        await drained(settings, procs)
    finally:
        procs.stop()

    check = validators()
    # What was accepted, in acceptance order: the collector's stamps.
    accepted = []
    for topic in topics.channel_topics:
        for r in await read_all(settings.kafka_bootstrap, topic):
            check["canonical-event.schema.json"].validate(orjson.loads(r.value))
            accepted.append((int(headers_of(r)["accepted_at"]), r.value))
    accepted.sort()
    for r in await read_all(settings.kafka_bootstrap, topics.by_lead):
        check["by-lead-record.schema.json"].validate(orjson.loads(r.value))
    for r in await read_all(settings.kafka_bootstrap, topics.ledger):
        check["ledger-entry.schema.json"].validate(orjson.loads(r.value))
    for r in await read_all(settings.kafka_bootstrap, topics.accounts):
        check["contact-update.schema.json"].validate(orjson.loads(r.value))
    for r in await read_all(settings.kafka_bootstrap, topics.account_events):
        check["account-event-data.schema.json"].validate(orjson.loads(r.value))
    handoffs = await read_all(settings.kafka_bootstrap, topics.handoff)
    for r in handoffs:
        check["handoff-data.schema.json"].validate(orjson.loads(r.value))
    assert await read_all(settings.kafka_bootstrap, topics.deadletter) == []

    model = default_model()
    lines = [value.decode() for _stamp, value in accepted]
    out = list(replay_lines(lines, model, None, secret=SECRET))
    end = max(parse_time(orjson.loads(v)["occurred_at"]) for _s, v in accepted)

    def moved(lead: str, seq: int, at: str, frm: str, to: str, reason: str, route: Any) -> Any:
        return (lead, seq, at[:19], frm, to, reason, route)

    replayed = {
        moved(t["lead_id"], t["seq"], t["at"], t["from"], t["to"], t["reason"],
              (t["route"], t["priority"]))
        for t in out if t["kind"] == "transition"
    }  # fmt: skip
    live = set()
    ids = [headers_of(r)["ce_id"] for r in handoffs]
    assert len(ids) == len(set(ids)), "a handoff id twice"
    for r in handoffs:
        d = orjson.loads(r.value)
        route = (d["route"]["queue"], d["route"]["priority"])
        live.add(moved(d["lead_id"], d["seq"], d["at"], d["from_stage"], d["to_stage"],
                       d["reason"], route))  # fmt: skip
    assert live == replayed, (sorted(live - replayed)[:5], sorted(replayed - live)[:5])
    hand_raises = [t for t in live if t[5] == "fast_lane"]
    assert len(hand_raises) > 20  # the comparison is about something

    leads = {o["lead_id"]: o for o in out if o["kind"] == "lead"}
    changelog = f"{settings.topic_prefix}leadstream-worker-lead_state-changelog"
    states = {
        k.decode(): LeadState.decode(v)
        for k, v in (await latest_by_key(settings.kafka_bootstrap, changelog)).items()
    }
    assert set(states) == set(leads)
    wrong = []
    for lead_id, state in states.items():
        mine, theirs = snapshot(state, model, us_to_t(end)), leads[lead_id]
        if (mine["stage"], mine["grade"]) != (theirs["stage"], theirs["grade"]) or abs(
            mine["engagement"] - theirs["engagement"]
        ) > 0.01:
            wrong.append((lead_id, mine["stage"], theirs["stage"], mine["engagement"],
                          theirs["engagement"]))  # fmt: skip
    assert not wrong, wrong[:5]
