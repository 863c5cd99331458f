"""leadstream_worker_leads: exact for small tables, RocksDB's estimate for large ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rocksdict import Rdict

from stream.worker import leadcount
from stream.worker.leadcount import leads_held

OFFSET_KEY = b"__faust\0offset__"


class PartitionStore:
    """The two parts of Faust's RocksDB store leads_held() uses, over real databases."""

    def __init__(self, dbs: list[Rdict]):
        self.dbs = dbs

    def _dbs_for_actives(self) -> Iterator[Rdict]:
        return iter(self.dbs)

    def _size1(self, db: Rdict) -> int:
        keys = db.keys()  # an Rdict is not iterable itself
        return sum(1 for key in keys if key != OFFSET_KEY)


class Table:
    def __init__(self, store: PartitionStore):
        self.data = store


@pytest.fixture
def dbs(tmp_path: Path) -> Iterator[list[Rdict]]:
    opened = [Rdict(str(tmp_path / f"p{n}")) for n in range(2)]
    yield opened
    for db in opened:
        db.close()


def write_leads(dbs: list[Rdict], leads: int, times: int) -> None:
    for db in dbs:
        db[OFFSET_KEY] = b"42"
    for _ in range(times):
        for n in range(leads):
            dbs[n % len(dbs)][f"lead-{n}".encode()] = b"state"


def test_a_small_table_is_counted_exactly_however_often_its_leads_were_written(
    dbs: list[Rdict],
) -> None:
    write_leads(dbs, leads=30, times=200)
    # RocksDB's estimate counts each write still in the memtable: far off here.
    assert sum(db.property_int_value(leadcount.ESTIMATE) for db in dbs) > 30 * 100
    assert leads_held(Table(PartitionStore(dbs))) == 30


def test_a_large_table_takes_the_estimate(dbs: list[Rdict], monkeypatch: Any) -> None:
    monkeypatch.setattr(leadcount, "EXACT_UP_TO", 10)
    write_leads(dbs, leads=30, times=1)
    for db in dbs:
        db.flush()  # flushed, the estimate is the key count (with each offset key)
    assert leads_held(Table(PartitionStore(dbs))) == 30 + len(dbs)
