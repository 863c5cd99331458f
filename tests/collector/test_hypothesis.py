"""Random bodies never make the parser raise anything but LeadstreamError, nor the app 5xx."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.collector.app import create_app
from stream.collector.mapping import load_mapping
from stream.collector.segment import Source, parse_json, process, split_body
from stream.errors import LeadstreamError
from stream.settings import Settings
from stream.topics import Topics

from .conftest import BROWSER_KEY, NOW, FakeProducer, basic, start_server

MAPPING = load_mapping()
SOURCE = Source("website", "browser", BROWSER_KEY)
FIELDS = [
    "type", "event", "anonymousId", "userId", "messageId", "timestamp", "sentAt",
    "originalTimestamp", "properties", "context", "traits", "groupId", "previousId", "name",
]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=20,
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["track", "identify", "page", "screen", "group", "alias", "x"])
        | json_values,
        "event": st.sampled_from(["Ebook Downloaded", "sales.accepted", ""]) | json_values,
        "anonymousId": st.text(max_size=5) | json_values,
        "userId": json_values,
        "messageId": json_values,
        "timestamp": st.sampled_from(["2025-01-01T00:00:00Z", "2999-01-01", "x"]) | json_values,
        "sentAt": json_values,
        "properties": json_values,
        "context": st.fixed_dictionaries({}, optional={"traits": json_values, "page": json_values})
        | json_values,
        "traits": json_values,
        "groupId": json_values,
        "previousId": json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda ms: orjson.dumps({"batch": ms}), st.lists(messages | json_values, max_size=5)),
    st.builds(orjson.dumps, messages),
    st.builds(lambda b, n: b[:n], st.builds(orjson.dumps, messages), st.integers(0, 100)),
)


def _parse(raw: bytes, call: str) -> None:
    try:
        batch = split_body(call, parse_json(raw), 2500)
        process(batch, call, SOURCE, MAPPING, NOW, 32 * 1024, raw if call != "batch" else None)
    except LeadstreamError:
        pass


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(raw=bodies, call=st.sampled_from(["batch", "track", "identify", "page", "group", "alias"]))
def test_parser_raises_only_leadstream_errors(raw: bytes, call: str) -> None:
    _parse(raw, call)


@settings(max_examples=400)
@given(message=messages)
def test_any_message_is_accepted_or_rejected(message: dict[str, Any]) -> None:
    from stream.collector.segment import Batch

    [outcome] = process(Batch([message]), "batch", SOURCE, MAPPING, NOW, 32 * 1024)
    assert outcome is not None


async def _post_all(requests: list[tuple[str, bytes]], redis_url: str) -> list[int]:
    settings_ = Settings.from_env(
        environ={}, write_keys=f"{BROWSER_KEY}=website:browser", redis_url=redis_url
    )
    producer = FakeProducer(Topics.from_settings(settings_))
    app = create_app(settings_, producer)  # opens its own Redis client (dedupe)
    statuses = []
    async with TestClient(await start_server(app)) as client:
        for path, raw in requests:
            response = await client.post(path, data=raw, headers=basic(BROWSER_KEY))
            statuses.append(response.status)
        statuses.append((await client.get("/healthz")).status)
    return statuses


@settings(max_examples=15, deadline=None)
@given(
    requests=st.lists(
        st.tuples(
            st.sampled_from(["/v1/batch", "/v1/t", "/v1/i", "/v1/p", "/v1/g", "/v1/a"]), bodies
        ),
        min_size=1,
        max_size=15,
    )
)
def test_app_never_answers_5xx_for_data(
    requests: list[tuple[str, bytes]], base_settings: Settings
) -> None:
    statuses = asyncio.run(_post_all(requests, base_settings.redis_url))
    assert all(s < 500 for s in statuses), statuses
    assert statuses[-1] == 200
