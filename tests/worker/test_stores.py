"""The batch worker's RocksDB stores: one write batch with its changelog offsets, the tables in
the per-record path's changelog format, and views that only the checkpoint writes through."""

from __future__ import annotations

import time
from pathlib import Path

import faust
import pytest

from stream.pipeline.states import EncodedStates
from stream.scoring import load_model
from stream.settings import Settings
from stream.worker.scoring import store_pipeline
from stream.worker.stores import DueView, Stores, encode, raw_view, text_view


@pytest.fixture
def stores(tmp_path: Path) -> Stores:
    return Stores(str(tmp_path), block_cache_mib=4, write_buffer_mib=1, memtables_mib=8)


def test_a_write_holds_its_changes_and_changelog_offsets_and_survives_a_reopen(
    stores: Stores, tmp_path: Path
) -> None:
    store = stores.acquire(2)
    assert store.offset("lead_state") is None
    store.write(
        {"lead_state": {b"u1": b"state-1", b"u2": b"state-2"}, "aliases": {b'"a"': b'"u1"'}},
        {"lead_state": 41, "aliases": 7},
    )
    store.write({"lead_state": {b"u2": None}}, {"lead_state": 42})
    stores.close()

    again = Stores(str(tmp_path), block_cache_mib=4, write_buffer_mib=1, memtables_mib=8)
    store = again.acquire(2)
    assert store.get("lead_state", b"u1") == b"state-1"
    assert store.get("lead_state", b"u2") is None  # deleted
    assert store.get("aliases", b'"a"') == b'"u1"'
    assert (store.offset("lead_state"), store.offset("aliases"), store.offset("merges")) == (
        42,
        7,
        None,
    )
    assert again.count("lead_state") == 1
    again.close()


def test_a_wiped_store_is_empty(stores: Stores) -> None:
    stores.acquire(0).write({"lead_state": {b"u1": b"s"}}, {"lead_state": 3})
    store = stores.wipe(0)
    assert store.get("lead_state", b"u1") is None and store.offset("lead_state") is None
    stores.close()


@pytest.mark.parametrize("text", ["u1", "anon:c-1", "user-ünïcödé-🙂", 'quote"d'])
def test_text_tables_hold_what_fausts_json_codec_writes_to_the_changelog(text: str) -> None:
    """Both input paths read the same changelog topics: a key written by one must be found
    by the other byte for byte."""
    app = faust.App("codec-check", store="memory://")
    table = app.Table("aliases", key_type=str, value_type=str)
    faust_key = app.serializers.dumps_key(str, text, serializer=table.key_serializer)
    faust_value = app.serializers.dumps_value(str, text, serializer=table.value_serializer)
    assert encode("aliases", text, text) == (faust_key, faust_value)
    assert encode("lead_state", text.encode(), b"\x00raw") == (text.encode(), b"\x00raw")


def test_views_read_through_the_codec_and_refuse_writes(stores: Stores) -> None:
    key, value = encode("aliases", "anon:c1", "u1")
    state_key, state = encode("lead_state", b"u1", b"encoded")
    stores.acquire(1).write({"aliases": {key: value}, "lead_state": {state_key: state}}, {})
    aliases, states = text_view(stores, 1, "aliases"), raw_view(stores, 1, "lead_state")
    assert aliases.get("anon:c1") == "u1" and aliases.get("anon:c2") is None
    assert list(aliases) == ["anon:c1"] and len(aliases) == 1
    assert states[b"u1"] == b"encoded"
    with pytest.raises(KeyError):
        states[b"u2"]
    with pytest.raises(TypeError, match="written by the checkpoint only"):
        aliases["anon:c1"] = "u2"
    stores.close()


def test_the_tick_schedule_is_read_across_the_partitions_held(stores: Stores) -> None:
    for partition, key in ((0, "0:100"), (3, "3:200")):
        k, v = encode("tick_due", key, '["u1"]')
        stores.acquire(partition).write({"tick_due": {k: v}}, {})
    due = DueView(stores)
    assert sorted(due) == ["0:100", "3:200"]
    assert due["3:200"] == '["u1"]'
    assert due.get("1:100") is None  # a partition not held
    stores.release(3)
    assert list(due) == ["0:100"]
    stores.close()


def test_the_stores_on_disk_are_listed_open_or_not(stores: Stores, tmp_path: Path) -> None:
    """What the assignor tells the group this worker can restore cheaply."""
    assert stores.on_disk() == []
    for partition in (3, 1, 10):
        stores.acquire(partition)
    stores.release(3)  # closed, still on disk
    (tmp_path / "batch" / "px").mkdir()  # not a store
    assert stores.on_disk() == [1, 3, 10]
    stores.close()


def _logs(path: Path) -> int:
    return sum(f.stat().st_size for f in path.glob("*.log"))


def test_memtables_and_write_ahead_logs_stay_within_the_budget_of_all_stores(
    tmp_path: Path,
) -> None:
    """Large per-table buffers, a 2 MiB budget for all: the write buffer manager flushes the
    written table, and a table written once (the tick schedule) does not keep every log since."""
    stores = Stores(str(tmp_path), block_cache_mib=4, write_buffer_mib=64, memtables_mib=2)
    store = stores.acquire(0)
    store.write({"tick_due": {b'"0:1"': b'"x"'}}, {"tick_due": 1})
    value = bytes(range(256)) * 2
    for batch in range(60):  # ~30 MiB of states in 512-byte values
        writes: dict[bytes, bytes | None] = {
            f"lead-{batch}-{i}".encode(): value for i in range(1000)
        }
        store.write({"lead_state": writes}, {"lead_state": batch})
    # Flushes run in RocksDB's background threads: on a busy machine they may lag the writes.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        stores.memory()["memtables"] < 8 * 1024 * 1024
        and _logs(tmp_path / "batch" / "p0") < 12 * 1024 * 1024
    ):
        time.sleep(0.1)
    assert stores.memory()["memtables"] < 8 * 1024 * 1024
    assert _logs(tmp_path / "batch" / "p0") < 12 * 1024 * 1024
    stores.close()
    again = Stores(str(tmp_path), block_cache_mib=4, write_buffer_mib=64, memtables_mib=2)
    assert again.acquire(0).get("lead_state", b"lead-59-999") == value
    assert again.acquire(0).offset("lead_state") == 59
    again.close()


def test_the_worker_keeps_as_many_decoded_states_as_its_setting_says(tmp_path: Path) -> None:
    settings = Settings.from_env({"LEADSTREAM_WORKER_STATE_CACHE": "7"})
    stores = Stores(str(tmp_path), block_cache_mib=4, write_buffer_mib=1, memtables_mib=8)
    states = store_pipeline(settings, load_model(None), stores, lambda _k, _n: 0).pipeline.states
    assert isinstance(states, EncodedStates)
    assert states.cache_size == 7
