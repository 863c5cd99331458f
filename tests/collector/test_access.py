"""The collector's access log: one line per request on `leadstream.access` with its fields as
JSON keys, nothing secret in it (no query, no credentials, no lead ids), none when switched
off, and never a line from aiohttp's own access logger."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.http_exceptions import BadStatusLine
from aiohttp.test_utils import TestClient

from stream.collector.access import (
    ACCESS_LOGGER,
    HideRequestLines,
    hide_request_lines,
    runner_options,
)
from stream.collector.app import create_app, create_internal_app
from stream.collector.pixel import GIF
from stream.collector.service import CollectorOptions
from stream.logs import FIELDS, TEXT_FORMAT, JsonFormatter
from stream.settings import Settings
from tests.collector.serving import start_collector

from .conftest import BROWSER_KEY, SERVER_KEY, FakeProducer, basic, start_server, track
from .test_webhooks import MAILGUN_KEY, mailgun_event, mailgun_payload

Client = TestClient[web.Request, web.Application]
EMAIL = "jane.doe@example.com"
QUERY_SECRET = "query-secret-4711"
COOKIE = "cookievalue4711abc"
LEAD_TOKEN = "lead-api-token-of-thirty-chars-x"
USER_AGENT = "Mozilla/5.0 (access-log test)"
ACCESS_KEYS = {
    "listener",
    "method",
    "route",
    "status",
    "bytes",
    "duration_ms",
    "client",
    "user_agent",
    "request_id",
}


@pytest.fixture
def options() -> CollectorOptions:
    return CollectorOptions(
        redirect_hosts=("example.com",), pixel_cookie="ls_aid", mailgun_signing_key=MAILGUN_KEY
    )


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record of every logger, debug included (probe lines are debug)."""
    caplog.set_level(logging.DEBUG)
    return caplog


async def serve(
    settings: Settings, producer: FakeProducer, options: CollectorOptions, redis: aioredis.Redis
) -> Client:
    """A client of the public app, its runner set up as `run` sets it up."""
    app = create_app(settings, producer, options=options, redis=redis)
    return TestClient(await start_server(app, **runner_options(settings)))


def fields(record: logging.LogRecord) -> dict[str, Any]:
    value: dict[str, Any] = getattr(record, FIELDS)  # set through `extra`
    return value


async def access_records(
    caplog: pytest.LogCaptureFixture, count: int, logger: str = ACCESS_LOGGER
) -> list[logging.LogRecord]:
    """The access records once `count` have arrived (aiohttp writes a line just after it sent
    the response, so the client may have it first), checked again after the loop settles."""
    for _ in range(1000):
        records = [r for r in caplog.records if r.name == logger]
        if len(records) >= count:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # a second line for the same request would be here by now
    return [r for r in caplog.records if r.name == logger]


def everything(record: logging.LogRecord) -> str:
    """All a log pipeline could see of a record: text line, JSON line, the raw fields."""
    text = logging.Formatter(TEXT_FORMAT).format(record)
    return "\n".join((text, JsonFormatter().format(record), repr(record.__dict__)))


def assert_no_secrets(records: Sequence[logging.LogRecord], secrets: Sequence[str]) -> None:
    for record in records:
        seen = everything(record)
        for secret in secrets:
            assert secret not in seen, (secret, seen)
        assert "?" not in record.getMessage() and "writeKey" not in seen


async def test_one_line_per_request_with_its_fields_and_nothing_secret(
    unit_settings: Settings,
    producer: FakeProducer,
    options: CollectorOptions,
    redis_client: aioredis.Redis,
    logged: pytest.LogCaptureFixture,
) -> None:
    mailgun_body = mailgun_payload(mailgun_event("opened"))
    signature = orjson.loads(mailgun_body)["signature"]
    authorization = basic(SERVER_KEY)["Authorization"]
    async with await serve(unit_settings, producer, options, redis_client) as client:
        pixel = await client.get(
            f"/v1/pixel?writeKey={BROWSER_KEY}&email={EMAIL}&key={QUERY_SECRET}",
            headers={"User-Agent": USER_AGENT, "Cookie": f"ls_aid={COOKIE}"},
        )
        assert pixel.status == 200 and await pixel.read() == GIF
        segment = await client.post(
            "/v1/track",
            json=track(userId=EMAIL),
            headers={"Authorization": authorization, "X-Request-Id": "req-42"},
        )
        assert segment.status == 200
        webhook = await client.post("/v1/webhooks/mailgun", data=mailgun_body)
        assert webhook.status == 200
        redirect = await client.get(
            f"/v1/r?u=https://example.com/x?email={EMAIL}&writeKey={BROWSER_KEY}",
            allow_redirects=False,
        )
        assert redirect.status == 302
        records = await access_records(logged, 4)
    assert [fields(r)["route"] for r in records] == [
        "/v1/pixel",
        "/v1/track",
        "/v1/webhooks/{provider}",
        "/v1/r",
    ]
    first = fields(records[0])
    assert set(first) == ACCESS_KEYS
    assert first["listener"] == "ingest" and first["method"] == "GET"
    assert first["status"] == 200 and first["bytes"] > len(GIF)  # headers included
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0
    assert first["client"] == "127.0.0.1" and first["user_agent"] == USER_AGENT
    assert first["request_id"] is None
    assert records[0].levelno == logging.INFO
    assert records[0].getMessage().startswith("ingest GET /v1/pixel 200 ")
    assert fields(records[1])["request_id"] == "req-42"
    assert fields(records[1])["method"] == "POST"
    assert fields(records[3])["status"] == 302
    secrets = [
        BROWSER_KEY,
        SERVER_KEY,
        EMAIL,
        QUERY_SECRET,
        COOKIE,
        authorization,
        authorization.split()[1],
        signature["signature"],
        signature["token"],
        "bob@acme.io",  # the webhook body's recipient
    ]
    assert_no_secrets(records, secrets)
    assert not [r for r in logged.records if r.name == "aiohttp.access"]


async def test_json_lines_carry_every_field_as_a_key(
    unit_settings: Settings,
    producer: FakeProducer,
    options: CollectorOptions,
    redis_client: aioredis.Redis,
    logged: pytest.LogCaptureFixture,
) -> None:
    async with await serve(unit_settings, producer, options, redis_client) as client:
        response = await client.get(f"/v1/pixel?writeKey={BROWSER_KEY}&email={EMAIL}")
        assert response.status == 200
        (record,) = await access_records(logged, 1)
    line = orjson.loads(JsonFormatter().format(record))
    assert set(line) >= ACCESS_KEYS
    assert line["logger"] == ACCESS_LOGGER and line["level"] == "info"
    assert line["route"] == "/v1/pixel" and line["status"] == 200 and line["bytes"] > 43
    assert line["message"] == record.getMessage()
    assert EMAIL not in orjson.dumps(line).decode()


async def test_no_line_when_switched_off(
    unit_settings: Settings,
    producer: FakeProducer,
    options: CollectorOptions,
    redis_client: aioredis.Redis,
    logged: pytest.LogCaptureFixture,
) -> None:
    off = unit_settings.replace(collector_access_log=False)
    assert runner_options(off) == {"access_log": None}
    async with await serve(off, producer, options, redis_client) as client:
        assert (await client.get(f"/v1/pixel?writeKey={BROWSER_KEY}")).status == 200
        assert (await client.get("/healthz")).status == 200
        await asyncio.sleep(0.2)
    assert not [r for r in logged.records if r.name in (ACCESS_LOGGER, "aiohttp.access")]


async def test_probes_are_debug_lines_unless_they_fail(
    unit_settings: Settings,
    producer: FakeProducer,
    options: CollectorOptions,
    redis_client: aioredis.Redis,
    logged: pytest.LogCaptureFixture,
) -> None:
    async with await serve(unit_settings, producer, options, redis_client) as client:
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/readyz")).status == 200
        producer.available = False
        assert (await client.get("/readyz")).status == 503
        assert (await client.get("/nothing/here?email=" + EMAIL)).status == 404
        records = await access_records(logged, 4)
    got = [(fields(r)["route"], fields(r)["status"], r.levelno) for r in records]
    assert got == [
        ("/healthz", 200, logging.DEBUG),
        ("/readyz", 200, logging.DEBUG),
        ("/readyz", 503, logging.INFO),
        ("unmatched", 404, logging.INFO),
    ]
    assert_no_secrets(records, [EMAIL])


async def send_malformed(host: str, port: int, key: str) -> bytes:
    """A request aiohttp's parser refuses (a bad Content-Length), a write key in its URL."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET /v1/pixel?writeKey={key}&email={EMAIL} HTTP/1.1\r\n"
        "Host: x\r\nContent-Length: many\r\n\r\n".encode()
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=20)
    writer.close()
    return status_line


async def test_a_request_aiohttp_cannot_parse_is_logged_without_its_url(
    unit_settings: Settings,
    producer: FakeProducer,
    options: CollectorOptions,
    redis_client: aioredis.Redis,
    logged: pytest.LogCaptureFixture,
) -> None:
    hide_request_lines()  # what `run` does
    async with await serve(unit_settings, producer, options, redis_client) as client:
        status_line = await send_malformed(str(client.host), int(client.port or 0), BROWSER_KEY)
        assert status_line.split()[1] == b"400", status_line
        (record,) = await access_records(logged, 1)
    assert fields(record)["route"] == "malformed" and fields(record)["status"] == 400
    (error,) = [r for r in logged.records if r.name == "aiohttp.server"]
    assert "BadHttpMessage 400" in error.getMessage() and error.exc_info is None
    assert_no_secrets(logged.records, [BROWSER_KEY, EMAIL])


def test_aiohttp_quoting_a_request_line_is_cut_to_its_type() -> None:
    try:
        raise BadStatusLine(f"GET /v1/pixel?writeKey={BROWSER_KEY} HTTP/1.1 junk")
    except BadStatusLine:
        record = logging.getLogger("aiohttp.server").makeRecord(
            "aiohttp.server",
            logging.ERROR,
            __file__,
            1,
            "Error handling request from %s",
            ("10.0.0.1",),
            sys.exc_info(),
        )
    assert BROWSER_KEY in logging.Formatter().format(record)  # what aiohttp alone would log
    assert HideRequestLines().filter(record)
    text = logging.Formatter().format(record)
    assert BROWSER_KEY not in text and text.startswith("Error handling request from 10.0.0.1")
    plain = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "x %s", ("y",), None)
    assert HideRequestLines().filter(plain) and plain.getMessage() == "x y"


async def test_internal_listener_lines_carry_the_route_not_the_lead_id(
    unit_settings: Settings, logged: pytest.LogCaptureFixture
) -> None:
    settings = unit_settings.replace(lead_api_tokens=f"{LEAD_TOKEN}:read")
    app = create_internal_app(settings)
    server = await start_server(app, **runner_options(settings, internal=True))
    async with TestClient(server) as client:
        wrong = {"Authorization": "Bearer not-our-token-but-thirty-chars"}
        response = await client.get(f"/v1/leads/{EMAIL}?token={LEAD_TOKEN}", headers=wrong)
        assert response.status == 401
        (record,) = await access_records(logged, 1)
    assert fields(record)["listener"] == "internal"
    assert fields(record)["route"] == "/v1/leads/{lead_id}"
    assert_no_secrets([record], [EMAIL, LEAD_TOKEN, "not-our-token"])


@pytest.mark.integration
async def test_run_logs_both_listeners_and_aiohttp_logs_nothing(
    settings: Settings, logged: pytest.LogCaptureFixture
) -> None:
    """The real `run`: its two runners get our access log, not aiohttp's default."""
    browser_key = next(
        k for k, (_, kind) in settings.parsed_write_keys().items() if kind == "browser"
    )
    task = await start_collector(settings)
    try:
        public = f"http://127.0.0.1:{settings.collector_port}"
        internal = f"http://127.0.0.1:{settings.collector_internal_port}"
        async with aiohttp.ClientSession() as session:
            pixel = f"{public}/v1/pixel?writeKey={browser_key}&email={EMAIL}"
            async with session.get(pixel) as response:
                assert response.status == 200
            async with session.get(f"{internal}/v1/leads/{EMAIL}") as response:
                assert response.status == 401
        status_line = await send_malformed("127.0.0.1", settings.collector_port, browser_key)
        assert status_line.split()[1] == b"400", status_line
        await access_records(logged, 4)  # the start-up probe, pixel, lead API, malformed
    finally:
        os.kill(os.getpid(), signal.SIGTERM)  # run() installed its handler: it stops cleanly
        await asyncio.wait_for(task, timeout=20)
    records = [r for r in logged.records if r.name == ACCESS_LOGGER]
    lines = {(fields(r)["listener"], fields(r)["route"], fields(r)["status"]) for r in records}
    assert ("ingest", "/v1/pixel", 200) in lines
    assert ("internal", "/v1/leads/{lead_id}", 401) in lines
    assert ("ingest", "malformed", 400) in lines
    assert not [r for r in logged.records if r.name == "aiohttp.access"]
    # Nothing at info and above has them, from any logger (at debug aiokafka logs whole records).
    shown = [r for r in logged.records if r.levelno >= logging.INFO or r.name == ACCESS_LOGGER]
    assert_no_secrets(shown, [browser_key, EMAIL])


def test_the_setting_reads_false_from_the_environment() -> None:
    assert Settings.from_env({}).collector_access_log is True
    off = Settings.from_env({"LEADSTREAM_COLLECTOR_ACCESS_LOG": "false"})
    assert off.collector_access_log is False and runner_options(off) == {"access_log": None}
