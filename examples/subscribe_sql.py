"""A downstream service that wants SQL handoffs only: filter on CloudEvents headers.

Every record on `leads.handoff` carries its CloudEvents attributes as `ce_*` headers, so a
subscriber can decide from the headers alone and parse only the bodies it wants. Run it with
its own consumer group (it gets every record; other groups are not affected) and commit after
handling, so a restart resumes where it stopped; drop repeats by `ce_id`.

    python examples/subscribe_sql.py --bootstrap 127.0.0.1:19092 --group crm-sql-sync
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

STAGE_CHANGED = "leadstream.lead.stage_changed.v1"


def wanted(headers: dict[str, str], to_stage: str = "sql") -> bool:
    """Stage changes into `to_stage`; SLA breaches and other types are skipped unread."""
    return headers.get("ce_type") == STAGE_CHANGED and headers.get("ce_tostage") == to_stage


async def subscribe(
    bootstrap: str,
    group: str,
    handle: Callable[[str, dict[str, Any]], Awaitable[None]],
    *,
    topic: str = "leads.handoff",
    stop: asyncio.Event | None = None,
) -> None:
    """Call `handle(ce_id, data)` for each SQL handoff, at least once, in partition order."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        while stop is None or not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    headers = {k: v.decode() for k, v in record.headers}
                    if wanted(headers):
                        await handle(headers["ce_id"], json.loads(record.value or b"{}"))
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()


async def _print(ce_id: str, data: dict[str, Any]) -> None:
    bant = ", ".join(k for k, v in data["bant"].items() if v)
    print(f"{ce_id}  {data['lead_id']}  {data['reason']}  fit {data['fit']['grade']}  BANT: {bant}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--group", default="example-sql-subscriber")
    parser.add_argument("--topic", default="leads.handoff", help="with your topic prefix, if any")
    args = parser.parse_args()
    asyncio.run(subscribe(args.bootstrap, args.group, _print, topic=args.topic))


if __name__ == "__main__":
    main()
