"""The health contract's bodies and statuses (every process serves them; see stream/health.py)."""

from __future__ import annotations

import orjson

from stream import health


def test_alive_and_ready_answer_200_with_their_checks() -> None:
    alive = health.alive()
    assert alive.status == 200 and orjson.loads(alive.body) == {"status": "ok", "checks": {}}
    ready = health.readiness(kafka=True, recovered=True)
    assert ready.status == 200
    assert orjson.loads(ready.body) == {
        "status": "ready",
        "checks": {"kafka": True, "recovered": True},
    }


def test_a_failing_check_is_503_and_says_which() -> None:
    ready = health.readiness(assigned=False, recovered=True)
    assert ready.status == 503
    assert orjson.loads(ready.body) == {
        "status": "not ready",
        "checks": {"assigned": False, "recovered": True},
    }
    dead = health.alive(tasks=False)
    assert dead.status == 503 and orjson.loads(dead.body)["status"] == "failing"
