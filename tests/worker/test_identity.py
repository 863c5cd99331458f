"""Identity under partitioning: the orderings that hurt, on four in-memory partitions.

Each test picks ids whose home partitions differ, so a visitor's history must travel (a pull
and its answer through the by-lead topic) while the person's next events are already there.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from stream.pipeline.replay import replay_lines
from stream.scoring import snapshot, tick
from stream.scoring.identity import EMAIL_PREFIX, Identity, email_digest
from stream.scoring.state import seen_before
from stream.topics import partition_for
from tests.worker.cluster import CRM, EMAIL, SECRET, VP, WEB, Cluster, email_click, event

PARTS = 4


def home(key: str) -> int:
    return partition_for(key.encode(), PARTS)


def apart(*names: str) -> list[str]:
    """Ids with the given prefixes, each in a home partition of its own."""
    out: list[str] = []
    for name in names:
        n = 0
        while f"{name}{n}" in out or home(f"{name}{n}") in {home(o) for o in out}:
            n += 1
        out.append(f"{name}{n}")
    return out


def replayed(cluster: Cluster) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    lines = [line.decode() for line in cluster.accepted]
    out = list(replay_lines(lines, cluster.model, None, secret=SECRET))
    return [o for o in out if o["kind"] == "transition"], {
        o["lead_id"]: o for o in out if o["kind"] == "lead"
    }


def live_equals_replay(cluster: Cluster) -> None:
    """Every live transition, plus what the timers due by the last event time still fire (as
    replay fires them at its end), equals replay's; and so does every lead's state."""
    transitions, leads = replayed(cluster)
    end = max(orjson.loads(v)["occurred_at"] for v in cluster.accepted)
    live = [t.to_dict() for t in cluster.transitions]
    for state in cluster.leads().values():
        live += [t.to_dict() for t in tick(state, _t(end), cluster.model).transitions]
    key = lambda t: (t["lead_id"], t["seq"])  # noqa: E731
    assert sorted(live, key=key) == sorted(transitions, key=key)
    mine = cluster.leads()
    assert set(mine) == set(leads)
    for lead_id, state in mine.items():
        snap = snapshot(state, cluster.model, leads[lead_id]["at"] and _t(end))
        theirs = leads[lead_id]
        assert (snap["stage"], snap["grade"]) == (theirs["stage"], theirs["grade"]), lead_id
        assert snap["engagement"] == pytest.approx(theirs["engagement"], abs=0.01), lead_id


def _t(when: str) -> float:
    from stream.scoring.events import parse_time, us_to_t

    return us_to_t(parse_time(when))


def test_server_identify_then_hand_raise_reaches_the_right_queue() -> None:
    """identify(user, anon, VP traits) then a demo request by user id, the track overtaking
    the merge: it waits behind it and is routed by the identified profile."""
    anon, user = apart("cookie", "user")
    c = Cluster(PARTS)
    c.send(event("web.page_view", "2026-03-02T10:00:00Z", anon=anon))
    c.send(event("identify", "2026-03-02T10:01:00Z", anon=anon, user=user, traits=VP), CRM)
    c.send(event("sales.demo_requested", "2026-03-02T10:01:01Z", user=user), CRM)
    assert c.moves(user) == []  # the pull is in flight: the track waits, unacknowledged
    assert c.pipeline.parked and all(
        r.topic == CRM for rs in c.pipeline.parked.values() for r in rs
    )
    c.deliver()
    fast = [t for t in c.transitions if t.lead_id == user and t.reason == "fast_lane"]
    assert [(t.grade, t.route, t.priority, t.sla) for t in fast] == [("A", "ae", "P1", "PT1H")]
    assert c.moves(user)[0][1:] == ("anonymous", "lead", "identify")
    assert c.state(f"anon:{anon}") is None  # the visitor's state moved into the lead
    assert not c.pipeline.parked and not c.merges[home(user)]
    live_equals_replay(c)


def test_identify_with_both_ids_after_anonymous_history_joins_it_at_that_instant() -> None:
    anon, user = apart("cookie", "user")
    c = Cluster(PARTS)
    for minute in range(3):
        c.send(event("web.product_page_view", f"2026-03-0{minute + 1}T10:00:00Z", anon=anon))
    c.send(event("web.pricing_view", "2026-03-03T10:05:00Z", anon=anon))
    c.send(event("identify", "2026-03-03T11:00:00Z", anon=anon, user=user, traits=VP), CRM)
    c.send(event("web.page_view", "2026-03-03T11:00:01Z", anon=anon, user=user))
    c.deliver()
    state = c.state(user)
    assert state is not None
    snap = snapshot(state, c.model)
    assert snap["types"]["web.product_page_view"] > 0  # the visitor's history is the lead's
    assert "journey.research_streak" in snap["types"]
    assert snap["grade"] == "A"
    live_equals_replay(c)


def test_a_browser_call_with_both_ids_first_ties_the_cookie() -> None:
    """No identify at all: the first event carrying both ids merges, then applies."""
    anon, user = apart("cookie", "user")
    c = Cluster(PARTS)
    c.send(
        event(
            "content.ebook_download",
            "2026-03-02T10:00:00Z",
            anon=anon,
            properties={"asset_id": "x"},
        )
    )
    c.send(event("web.page_view", "2026-03-02T10:05:00Z", anon=anon, user=user))
    c.send(event("web.page_view", "2026-03-02T10:06:00Z", anon=anon, user=user))
    c.deliver()
    snap = snapshot(c.state(user), c.model)  # type: ignore[arg-type]
    assert snap["types"]["content.ebook_download"] == pytest.approx(8, abs=0.01)
    assert snap["types"]["web.page_view"] == pytest.approx(2, abs=0.01)
    live_equals_replay(c)


def test_a_cookie_shared_by_two_users_is_a_conflict_and_stays_apart() -> None:
    anon, first, second = apart("cookie", "ann", "bob")
    c = Cluster(PARTS)
    c.send(event("web.pricing_view", "2026-03-02T10:00:00Z", anon=anon))
    c.send(event("identify", "2026-03-02T10:01:00Z", anon=anon, user=first, traits=VP), CRM)
    c.deliver()
    c.send(event("identify", "2026-03-02T11:00:00Z", anon=anon, user=second, eid="idb"), CRM)
    c.deliver()
    c.send(event("web.page_view", "2026-03-02T11:05:00Z", anon=anon))  # cookie only
    c.deliver()
    bob = c.state(second)
    ann = c.state(first)
    assert bob is not None and ann is not None
    assert "web.pricing_view" not in snapshot(bob, c.model)["types"]  # not moved to bob
    assert snapshot(ann, c.model)["types"]["web.page_view"] == pytest.approx(1, abs=0.01)
    assert seen_before(bob, "conflict:idb")  # applied to the second user, not to the first
    assert not seen_before(ann, "conflict:idb")
    live_equals_replay(c)


def test_an_email_only_visitor_joins_the_lead_that_identifies_with_its_address() -> None:
    user = apart("user")[0]
    address = "Pat@Example.com"
    c = Cluster(PARTS)
    for n in range(2):
        c.send(email_click(f"2026-03-0{n + 1}T09:00:00Z", f"m{n}", email=address), EMAIL)
    visitor = EMAIL_PREFIX + email_digest(address, SECRET)
    assert c.state(visitor) is not None and address.lower() not in visitor
    c.send(event("identify", "2026-03-03T09:00:00Z", user=user, email=address, traits=VP), CRM)
    after = email_click("2026-03-03T09:30:00Z", "m9", email=address.lower())
    c.send(after, EMAIL)  # after the identify: the lead's
    c.deliver()
    assert c.state(visitor) is None
    snap = snapshot(c.state(user), c.model)  # type: ignore[arg-type]
    assert snap["types"]["email.click"] > 8  # three clicks (3 each, decaying): all in the lead
    live_equals_replay(c)


def test_records_keyed_by_their_own_ids_still_reach_the_lead() -> None:
    """Without the collector's directory (Redis down): the worker forwards by its aliases."""
    anon, user = apart("cookie", "user")
    c = Cluster(PARTS)
    c.send(event("trial.signup", "2026-03-02T09:00:00Z", anon=anon), key_by_directory=False)
    c.send(
        event("identify", "2026-03-02T10:00:00Z", anon=anon, user=user, traits=VP),
        CRM,
        key_by_directory=False,
    )
    c.deliver()
    c.send(event("web.page_view", "2026-03-02T10:05:00Z", anon=anon), key_by_directory=False)
    c.deliver()
    assert c.state(f"anon:{anon}") is None
    types = snapshot(c.state(user), c.model)["types"]  # type: ignore[arg-type]
    assert types["web.page_view"] == pytest.approx(1, abs=0.01)
    assert types["trial.signup"] > 19  # the visitor's history reached the lead
    live_equals_replay(c)  # type: ignore[arg-type]


def test_a_merge_that_times_out_applies_the_held_events_and_the_history_joins_later() -> None:
    anon, user = apart("cookie", "user")
    c = Cluster(PARTS)
    c.send(event("trial.signup", "2026-03-02T10:00:00Z", anon=anon))
    c.send(event("identify", "2026-03-02T10:01:00Z", anon=anon, user=user, traits=VP), CRM)
    c.send(event("web.page_view", "2026-03-02T10:02:00Z", user=user))
    pull = c.hops.pop(0)  # the visitor's partition is away: its answer comes late
    c.now += 31.0
    c.expire()
    assert c.pipeline.parked == {}
    snap = snapshot(c.state(user), c.model)  # type: ignore[arg-type]
    assert "trial.signup" not in snap["types"] and snap["types"]["web.page_view"] > 0
    c.hops.append(pull)
    c.deliver()
    snap = snapshot(c.state(user), c.model)  # type: ignore[arg-type]
    assert snap["types"]["trial.signup"] == pytest.approx(20, abs=0.01)  # joined, late
    again = c.hops  # nothing left to travel; a repeated answer would be a no-op
    assert again == []


def test_the_identity_digest_needs_the_secret() -> None:
    assert email_digest("a@b.c", "one") != email_digest("a@b.c", "two")
    assert email_digest(" A@B.C ", "one") == email_digest("a@b.c", "one")
    with pytest.raises(ValueError, match="no anonymous_id"):
        Identity(4, SECRET, partition_for).resolve({"type": "x"}, 0, {}.get)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_people_over_four_partitions_equal_replay(seed: int) -> None:
    """Browser-style, server-style and email-only people, each sending in order, interleaved;
    by-lead records delivered at random moments."""
    rng = random.Random(seed)
    c = Cluster(PARTS)
    scripts = [_person(rng, n) for n in range(40)]
    clock = 0
    while any(scripts):
        person = rng.choice([s for s in scripts if s])
        body, topic = person.pop(0)
        clock += 1
        body["occurred_at"] = body["received_at"] = _at(clock)
        c.send(body, topic)
        if rng.random() < 0.3:
            c.deliver(rng.randint(1, 3))
    c.deliver()
    assert not c.pipeline.parked and not any(c.merges.values())
    live_equals_replay(c)


def _at(n: int) -> str:
    return f"2026-03-{1 + n // 1440:02d}T{(n // 60) % 24:02d}:{n % 60:02d}:00Z"


def _person(rng: random.Random, n: int) -> list[tuple[dict[str, Any], str]]:
    anon, user, address = f"a{n}", f"u{n}", f"p{n}@corp.example"
    kind = rng.choice(["browser", "server", "email"])
    steps: list[tuple[dict[str, Any], str]] = []
    if kind in ("browser", "email"):
        for _ in range(rng.randint(1, 4)):
            if kind == "browser":
                t = rng.choice(["web.page_view", "web.product_page_view", "web.pricing_view"])
                steps.append((event(t, "", anon=anon), WEB))
            else:
                steps.append(_click(address, rng))
    traits = rng.choice([VP, {"seniority": "student"}, {}])
    if kind == "browser":
        steps.append((event("identify", "", anon=anon, user=user, traits=traits), CRM))
    else:
        steps.append(
            (
                event(
                    "identify",
                    "",
                    anon=anon if kind == "server" else None,
                    user=user,
                    email=address,
                    traits=traits,
                ),
                CRM,
            )
        )
    if rng.random() < 0.5:
        steps.append((event("form.contact_sales", "", user=user), CRM))
    for _ in range(rng.randint(0, 3)):
        if kind == "browser":
            steps.append((event("web.product_page_view", "", anon=anon, user=user), WEB))
        elif kind == "email":
            steps.append(_click(address, rng))
        else:
            steps.append(
                (
                    event(
                        "webinar.attended",
                        "",
                        user=user,
                        channel="crm",
                        properties={"webinar_id": f"w{rng.random()}"},
                    ),
                    CRM,
                )
            )
    return steps


def _click(address: str, rng: random.Random) -> tuple[dict[str, Any], str]:
    """An email-only click (a webhook knows the address, nothing else)."""
    return email_click("", f"m{rng.random()}", email=address), EMAIL
