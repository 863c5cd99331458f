"""Send journeys to a collector's Segment endpoint (`POST /v1/batch`), in event-time order.

Messages go out merged by timestamp, cut into batches of one write key. Up to `concurrency`
batches are in flight, but a batch waits until every earlier batch holding one of its leads is
acknowledged: one lead's events reach Kafka in order, while event time across leads still moves
forward roughly together (as live traffic does, so partition stream time stays realistic).
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import orjson
from tqdm import tqdm

from stream.simulate.journeys import ordered_messages
from stream.simulate.messages import Journey, Message, iso

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0
"""A Retry-After above this many seconds is shortened: a simulation should not hang."""


@dataclass(frozen=True)
class SendReport:
    """What happened to the messages of one `send`."""

    accepted: int
    """Messages the collector acknowledged (HTTP 200)."""
    failed: int
    """Messages given up on: a 4xx other than 429, or retries exhausted."""
    requests: int
    """HTTP requests made, retries included."""
    retries: int
    """Requests repeated after 429, 5xx or a connection error."""
    seconds: float
    """Wall-clock duration of the whole send."""
    errors: tuple[str, ...] = ()
    """The distinct reasons of failed batches (first 10)."""

    def summary(self) -> str:
        """A few lines for a terminal: counts and the failure reasons, never a lead's data.

        The report of a send is what an operator acts on; the journeys themselves (names,
        emails) go to a file only when asked for (`leadstream simulate --out`).
        """
        lines = [
            f"{self.accepted} message(s) accepted, {self.failed} failed, "
            f"{self.retries} retried, in {self.requests} request(s) ({self.seconds:.1f}s)"
        ]
        lines += [f"  failed: {reason}" for reason in self.errors]
        return "\n".join(lines)


@dataclass
class _Tally:
    accepted: int = 0
    failed: int = 0
    requests: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)

    def fail(self, count: int, reason: str) -> None:
        self.failed += count
        if reason not in self.errors and len(self.errors) < 10:
            self.errors.append(reason)


def batches(messages: Sequence[Message], batch_size: int) -> list[list[Message]]:
    """Consecutive runs of one write key (`source`), at most `batch_size` messages each."""
    out: list[list[Message]] = []
    for message in messages:
        last = out[-1] if out else None
        if last and len(last) < batch_size and last[0].source == message.source:
            last.append(message)
        else:
            out.append([message])
    return out


def basic_auth(write_key: str) -> str:
    """Segment's scheme: the write key as Basic user name, empty password.

    Built by hand: `aiohttp.BasicAuth` is deprecated in aiohttp 3.14 and its replacement is
    missing from the older 3.x releases the project allows.
    """
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode("ascii")


def retry_after(value: str | None, attempt: int) -> float:
    """Seconds to wait: the server's Retry-After (seconds or HTTP date), else backoff."""
    if value:
        try:
            return min(MAX_RETRY_AFTER, max(0.0, float(value)))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
                return min(MAX_RETRY_AFTER, max(0.0, (when - datetime.now(UTC)).total_seconds()))
            except (TypeError, ValueError):
                pass
    return float(min(30.0, 0.5 * 2**attempt))


async def _post(
    session: aiohttp.ClientSession,
    endpoint: str,
    batch: list[Message],
    auth: str,
    tally: _Tally,
    max_attempts: int,
) -> None:
    reason = "not sent"
    for attempt in range(max_attempts):
        if attempt:
            tally.retries += 1
        tally.requests += 1
        # sentAt is set per attempt: the collector corrects clock skew with it
        # (timestamp = receivedAt - (sentAt - timestamp)), so it must be the real send time.
        body = {"batch": [m.body for m in batch], "sentAt": iso(datetime.now(UTC))}
        headers = {"Content-Type": "application/json", "Authorization": auth}
        try:
            async with session.post(endpoint, data=orjson.dumps(body), headers=headers) as response:
                text = await response.text()
                if response.status == 200:
                    tally.accepted += len(batch)
                    return
                reason = f"HTTP {response.status}: {text[:200]}"
                if response.status not in RETRY_STATUSES:
                    break
                delay = retry_after(response.headers.get("Retry-After"), attempt)
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            delay = retry_after(None, attempt)
        if attempt + 1 < max_attempts:
            await asyncio.sleep(delay)
    tally.fail(len(batch), reason)


async def send(
    journeys: Sequence[Journey],
    url: str,
    write_keys: tuple[str, str],
    batch_size: int = 100,
    concurrency: int = 4,
    progress: bool = True,
    *,
    max_attempts: int = 6,
    timeout_seconds: float = 30.0,
) -> SendReport:
    """POST every message to `url` (collector base URL or its `/v1/batch` endpoint).

    `write_keys` is (browser key, server key): CRM outcomes go with the server key, the rest with
    the browser key, each as HTTP Basic user name. 429 and 5xx are retried, honouring
    Retry-After; other 4xx fail the batch at once (bad data is not fixed by retrying).
    """
    if batch_size < 1 or concurrency < 1 or max_attempts < 1:
        raise ValueError("batch_size, concurrency and max_attempts must be 1 or more")
    endpoint = url.rstrip("/")
    if not endpoint.endswith("/v1/batch"):
        endpoint += "/v1/batch"
    auths = {"browser": basic_auth(write_keys[0]), "server": basic_auth(write_keys[1])}
    messages = ordered_messages(journeys)
    tally = _Tally()
    began = time.monotonic()
    bar = tqdm(
        total=len(messages), unit="msg", file=sys.stderr, disable=not progress, desc="simulate"
    )
    last_for_lead: dict[str, asyncio.Task[None]] = {}
    pending: set[asyncio.Task[None]] = set()

    async def deliver(batch: list[Message], before: set[asyncio.Task[None]]) -> None:
        if before:
            await asyncio.wait(before)
        await _post(session, endpoint, batch, auths[batch[0].source], tally, max_attempts)
        bar.update(len(batch))

    timeout = aiohttp.ClientTimeout(total=timeout_seconds)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for batch in batches(messages, batch_size):
                while len(pending) >= concurrency:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()  # a bug in deliver surfaces here instead of vanishing
                leads = {m.lead for m in batch}
                before = {t for lead in leads if (t := last_for_lead.get(lead)) and not t.done()}
                task = asyncio.create_task(deliver(batch, before))
                pending.add(task)
                for lead in leads:
                    last_for_lead[lead] = task
            for task in pending:
                await task
    finally:
        for task in pending:
            task.cancel()  # only when interrupted: every task is done otherwise
        bar.close()
    return SendReport(
        tally.accepted,
        tally.failed,
        tally.requests,
        tally.retries,
        time.monotonic() - began,
        tuple(tally.errors),
    )
