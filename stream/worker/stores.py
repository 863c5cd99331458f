"""The batch worker's own state: one RocksDB per partition it owns, a column family per table.

Keys and values are stored as the bytes of the tables' changelog records, in the format the
Faust-based worker of earlier releases wrote there: raw bytes for `lead_state` and `accounts`,
JSON strings for `aliases`, `merges` and `tick_due` (Faust's `json` codec, orjson underneath).
So an upgraded worker restores the state its predecessor left in the changelog topics.

Each store keeps, in the same write batch as the data, the changelog offset it has applied per
table: a store that survived a restart reads only what was written to its changelogs after
that (by another worker meanwhile, or by this one before a SIGKILL hit between the changelog's
acknowledgement and the local write). Every store of the process shares one block cache.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson
import rocksdict

TABLES = ("aliases", "lead_state", "tick_due", "merges", "accounts")
RAW_TABLES = frozenset({"lead_state", "accounts"})  # the others hold JSON strings
OFFSET_KEY = b"changelog-offset:"  # + table name, in the default column family
EXACT_UP_TO = 50_000  # keys counted one by one below this; RocksDB's estimate above
MIB = 1024 * 1024
Changes = dict[str, dict[bytes, bytes | None]]  # table -> key -> value (None deletes)


def changelog_topic(prefix: str, table: str) -> str:
    """A table's changelog topic, named as Faust named it for the worker of earlier releases
    (kept: an upgrade finds its state there)."""
    return f"{prefix}leadstream-worker-{table}-changelog"


class PartitionStore:
    """One partition's tables in one RocksDB; written only as a whole batch (`write`)."""

    def __init__(self, path: Path, options: rocksdict.Options, table_options: rocksdict.Options):
        self.path = path
        self.options = options
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = rocksdict.Rdict(
            str(path), options, column_families=dict.fromkeys(TABLES, table_options)
        )
        self.tables = {t: self.db.get_column_family(t) for t in TABLES}
        self.handles = {t: self.db.get_column_family_handle(t) for t in TABLES}

    def get(self, table: str, key: bytes) -> bytes | None:
        value: bytes | None = self.tables[table].get(key)
        return value

    def keys(self, table: str) -> Iterator[bytes]:
        keys: Iterator[bytes] = iter(self.tables[table].keys())  # type: ignore[arg-type]
        return keys

    def offset(self, table: str) -> int | None:
        """The last changelog offset of `table` this store has applied (None: nothing yet)."""
        raw = self.db.get(OFFSET_KEY + table.encode())
        return None if raw is None else int(raw)

    def write(
        self, changes: Mapping[str, Mapping[bytes, bytes | None]], offsets: Mapping[str, int]
    ) -> None:
        """The changes and the changelog offsets they reach, atomically (one write batch)."""
        batch = rocksdict.WriteBatch(raw_mode=True)
        for table, writes in changes.items():
            handle = self.handles[table]
            for key, value in writes.items():
                if value is None:
                    batch.delete(key, handle)
                else:
                    batch.put(key, value, handle)
        for table, offset in offsets.items():
            batch.put(OFFSET_KEY + table.encode(), str(offset).encode())
        self.db.write(batch)

    def count(self, table: str) -> int:
        """Keys in `table`: exact while small, RocksDB's estimate when large (it counts writes
        still in a memtable more than once, a small share of a large table)."""
        cf = self.tables[table]
        estimate = int(cf.property_int_value("rocksdb.estimate-num-keys") or 0)
        if estimate > EXACT_UP_TO:
            return estimate
        return sum(1 for _ in cf.keys())  # noqa: SIM118 - an Rdict, not a dict

    def close(self) -> None:
        # Column family objects keep the database open: let go of them first.
        self.tables.clear()
        self.handles.clear()
        self.db.close()

    def destroy(self) -> None:
        """Close and delete: its changelog offsets no longer match the topics."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)


class Stores:
    """The partition stores this process holds, under `<data dir>/batch/p<partition>`.

    Their memory is bounded as a whole, whatever the number of partitions: one block cache for
    every store, and one write buffer manager that flushes the largest memtable once all of
    them together reach `memtables_mib`. Each store's write-ahead log is bounded by the same
    amount (RocksDB then flushes the tables that hold the oldest log back): a table written
    rarely (the tick schedule, accounts) would otherwise keep every log file since its last
    flush, and a restart after SIGKILL replays all of them before the store opens.
    """

    def __init__(
        self, data_dir: str, block_cache_mib: int, write_buffer_mib: int, memtables_mib: int
    ):
        self.root = Path(data_dir) / "batch"
        self.cache = rocksdict.Cache(max(1, block_cache_mib) * MIB)
        self.budget = max(1, memtables_mib) * MIB  # all memtables together, and each store's log
        self.memtables = rocksdict.WriteBufferManager(self.budget, False)
        self.open: dict[int, PartitionStore] = {}
        self.write_buffer = max(1, write_buffer_mib) * MIB

    def _options(self) -> tuple[rocksdict.Options, rocksdict.Options]:
        table = rocksdict.BlockBasedOptions()
        table.set_block_cache(self.cache)
        db = rocksdict.Options(raw_mode=True)
        db.create_if_missing(True)
        db.create_missing_column_families(True)
        db.set_max_open_files(256)
        db.set_block_based_table_factory(table)
        db.set_write_buffer_manager(self.memtables)
        db.set_max_total_wal_size(self.budget)
        cf = rocksdict.Options(raw_mode=True)
        cf.set_block_based_table_factory(table)
        cf.set_write_buffer_size(self.write_buffer)
        cf.set_max_write_buffer_number(2)
        return db, cf

    def memory(self) -> dict[str, int]:
        """Bytes RocksDB holds for all stores: the block cache's and the memtables' (metrics)."""
        return {"block_cache": self.cache.get_usage(), "memtables": self.memtables.get_usage()}

    def __getitem__(self, partition: int) -> PartitionStore:
        return self.open[partition]

    def __contains__(self, partition: object) -> bool:
        return partition in self.open

    def partitions(self) -> list[int]:
        return sorted(self.open)

    def on_disk(self) -> list[int]:
        """The partitions with a store under the data dir, open or not: the assignor hands a
        worker those first (it reads only what their changelogs got since)."""
        if not self.root.is_dir():
            return []
        names = [d.name for d in self.root.iterdir() if d.is_dir()]
        return sorted(int(n[1:]) for n in names if n.startswith("p") and n[1:].isdigit())

    def acquire(self, partition: int) -> PartitionStore:
        """The partition's store, opened if it is not open yet."""
        store = self.open.get(partition)
        if store is None:
            db, cf = self._options()
            store = self.open[partition] = PartitionStore(self.root / f"p{partition}", db, cf)
        return store

    def release(self, partition: int) -> None:
        store = self.open.pop(partition, None)
        if store is not None:
            store.close()

    def wipe(self, partition: int) -> PartitionStore:
        """An empty store for the partition, to be restored from the start of its changelogs."""
        store = self.open.pop(partition, None)
        if store is not None:
            store.destroy()
        else:
            shutil.rmtree(self.root / f"p{partition}", ignore_errors=True)
        return self.acquire(partition)

    def write(self, partition: int, changes: Changes, offsets: Mapping[str, int]) -> None:
        self.open[partition].write(changes, offsets)

    def close(self) -> None:
        for partition in list(self.open):
            self.release(partition)

    def count(self, table: str) -> int:
        return sum(store.count(table) for store in self.open.values())


K = TypeVar("K")
V = TypeVar("V")


class TableView(MutableMapping[K, V], Generic[K, V]):
    """One table of one partition, as the pipeline reads it (`stream.pipeline.core.Tables`).

    Written only by the checkpoint, in one batch with the other tables of the partition and
    its changelog offsets: a write through the view would reach RocksDB without a changelog
    record and before the outputs it depends on were acknowledged, so it is refused.
    """

    def __init__(
        self,
        stores: Stores,
        partition: int,
        table: str,
        encode_key: Callable[[K], bytes],
        decode_key: Callable[[bytes], K],
        decode_value: Callable[[bytes], V],
    ):
        self.open = stores.open  # read at every access: a store is reopened after a wipe
        self.partition = partition
        self.table = table
        self.encode_key = encode_key
        self.decode_key = decode_key
        self.decode_value = decode_value

    def __getitem__(self, key: K) -> V:
        raw = self.open[self.partition].get(self.table, self.encode_key(key))
        if raw is None:
            raise KeyError(key)
        return self.decode_value(raw)

    def get(self, key: K, default: Any = None) -> Any:
        raw = self.open[self.partition].get(self.table, self.encode_key(key))
        return default if raw is None else self.decode_value(raw)

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[K]:
        return (self.decode_key(k) for k in self.open[self.partition].keys(self.table))

    def __len__(self) -> int:
        return self.open[self.partition].count(self.table)

    def __setitem__(self, key: K, value: V) -> None:
        raise TypeError(f"the {self.table} store is written by the checkpoint only")

    def __delitem__(self, key: K) -> None:
        raise TypeError(f"the {self.table} store is written by the checkpoint only")


def json_str(value: bytes) -> str:
    """A JSON string of a changelog record (Faust's json codec for `str` tables)."""
    decoded = orjson.loads(value)
    if not isinstance(decoded, str):
        raise TypeError(f"a changelog value of a str table is not a JSON string: {value[:40]!r}")
    return decoded


def text_view(stores: Stores, partition: int, table: str) -> TableView[str, str]:
    return TableView(stores, partition, table, orjson.dumps, json_str, json_str)


def raw_view(stores: Stores, partition: int, table: str) -> TableView[bytes, bytes]:
    return TableView(stores, partition, table, _same, _same, _same)


def encode(table: str, key: Any, value: Any) -> tuple[bytes, bytes | None]:
    """A table write as the changelog and the store hold it."""
    if table in RAW_TABLES:
        return bytes(key), None if value is None else bytes(value)
    return orjson.dumps(key), None if value is None else orjson.dumps(value)


def _same(value: bytes) -> bytes:
    return value


class DueView(MutableMapping[str, str]):
    """The tick schedule of every partition held, keyed `<partition>:<minute>` as
    `TickScheduler` files it; read-only like `TableView` (writes go through the checkpoint)."""

    def __init__(self, stores: Stores):
        self.stores = stores

    def __getitem__(self, key: str) -> str:
        partition = int(key.split(":", 1)[0])
        if partition not in self.stores:
            raise KeyError(key)
        raw = self.stores[partition].get("tick_due", orjson.dumps(key))
        if raw is None:
            raise KeyError(key)
        return json_str(raw)

    def __iter__(self) -> Iterator[str]:
        stores = self.stores
        return iter([json_str(k) for p in stores.partitions() for k in stores[p].keys("tick_due")])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __setitem__(self, key: str, value: str) -> None:
        raise TypeError("the tick_due store is written by the checkpoint only")

    def __delitem__(self, key: str) -> None:
        raise TypeError("the tick_due store is written by the checkpoint only")
