"""LeadState: what the rules of one lead need, bounded, with a compact orjson codec."""

from __future__ import annotations

import base64
import bisect
import dataclasses
import hashlib
import itertools
import operator
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream.errors import LeadstreamError
from stream.scoring.events import US_PER_DAY
from stream.scoring.model import Model

CODEC_VERSION = 3  # 2 added the SLA timer, 3 the day of each remembered event id
_LAYOUT = {1: 24, 2: 25, 3: 25}  # codec version -> length of the positional list
NEGLIGIBLE = 1e-4  # a per-type sum whose magnitude falls below this is dropped (docs/scoring.md)
_EMAIL_INVALID, _EMAIL_SUPPRESSED, _ACCEPTED = 1, 2, 4
_LITTLE = sys.byteorder == "little"


def digest(text: str) -> int:
    """64-bit digest of an event id or dedupe-key value: what the state keeps of them."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _raw(values: Iterable[int]) -> bytearray:
    """Digests as their 8-byte big-endian forms, one after another."""
    packed = array("Q", values)
    if _LITTLE:
        packed.byteswap()
    return bytearray(packed.tobytes())


def _pack(values: Iterable[int]) -> str:
    return base64.b64encode(_raw(values)).decode("ascii")


def _unpack(text: str) -> dict[int, None]:
    return dict.fromkeys(_digests(base64.b64decode(text, validate=True)))


def _digests(raw: bytes) -> array[int]:
    if len(raw) % 8:
        raise ValueError("digest list length")
    values = array("Q")
    values.frombytes(raw)
    if _LITTLE:
        values.byteswap()
    return values


# [[day, bytearray of 8-byte digests, their base64 text or None], ...]: `seen` in runs of a day
Runs = list[list[Any]]


def _runs(seen: dict[int, int]) -> Runs:
    """`seen` cut into runs of one day, in memory order.

    Ids are remembered in the order of the lead's clock, so the days are almost always in
    order: the runs are then cut by bisection, without a Python step per id (a busy lead
    remembers thousands).
    """
    if not seen:
        return []
    days = list(seen.values())
    if days != sorted(days):  # ids united from another lead (a merge): by runs
        return [
            [day, _raw(value for value, _ in run), None]
            for day, run in itertools.groupby(seen.items(), key=operator.itemgetter(1))
        ]
    values = list(seen)
    runs: Runs = []
    start = 0
    while start < len(days):
        day = days[start]
        end = bisect.bisect_right(days, day, start)
        runs.append([day, _raw(values[start:end]), None])
        start = end
    return runs


def _pack_days(state: LeadState) -> list[list[int | str]]:
    """Remembered ids grouped by day, [[day, packed digests], ...] in memory order.

    One day number per group rather than per id keeps the encoding at ~8 bytes an id. A state
    is encoded at every checkpoint that changed it, and a busy lead remembers thousands of ids
    of which a few are new: the runs are kept with the state (`seen_runs`) and only the ids
    remembered since are packed (found from the end of `seen`, not by walking it), as long as
    nothing was removed or moved; each run keeps its base64 text until it grows.
    """
    seen = state.seen
    kept = state.seen_runs
    if kept is None or kept[0] is not seen or kept[1] > len(seen):
        runs = _runs(seen)
    else:
        runs = kept[2]
        fresh = list(itertools.islice(reversed(seen.items()), len(seen) - kept[1]))
        fresh.reverse()
        for day, run in itertools.groupby(fresh, key=operator.itemgetter(1)):
            raw = _raw(value for value, _ in run)
            if runs and runs[-1][0] == day:
                runs[-1][1] += raw
                runs[-1][2] = None
            else:
                runs.append([day, raw, None])
    state.seen_runs = (seen, len(seen), runs)
    out: list[list[int | str]] = []
    for day_run in runs:
        text = day_run[2]
        if text is None:
            text = day_run[2] = base64.b64encode(day_run[1]).decode("ascii")
        out.append([day_run[0], text])
    return out


def _unpack_days(groups: Any) -> tuple[dict[int, int], Runs]:
    seen: dict[int, int] = {}
    runs: Runs = []
    for day, packed in groups:
        raw = base64.b64decode(packed, validate=True)
        day = int(day)
        seen.update(dict.fromkeys(_digests(raw), day))
        if runs and runs[-1][0] == day:
            runs[-1][1] += raw
        else:
            runs.append([day, bytearray(raw), None])
    return seen, runs


class StateDecodeError(LeadstreamError):
    """Stored lead state cannot be decoded (wrong codec version or corrupt bytes)."""

    reason = "state_invalid"


@dataclass
class LeadState:
    """The state of one lead. Times are integer microseconds since the epoch.

    `acc[type]` = [value, ref_us]: the decayed sum of the type's scored entries at ref_us (the
    latest entry time); any later instant T is value * 0.5^((T - ref)/half_life) — exact, so no
    entry needs to be kept for scoring. `times[type]` keeps the sorted times of recent scored
    entries for frequency caps and journey windows; `keys[type]` the last dedupe-key values.
    """

    lead_id: str
    model_version: str = ""
    stage: str = "anonymous"
    seq: int = 0
    clock: int | None = None
    last_event: int | None = None
    stage_since: int | None = None
    profile: dict[str, Any] = field(default_factory=dict)
    fit: float = 0.0
    account_id: str | None = None
    email_invalid: bool = False
    email_suppressed: bool = False
    accepted: bool = False
    mql_at: int | None = None
    next_tick: int | None = None
    low_ticks: int = 0
    recycled_at: int | None = None
    route: list[str | None] | None = None  # [route, priority, sla, task] of the last handoff
    acc: dict[str, list[float]] = field(default_factory=dict)
    times: dict[str, list[int]] = field(default_factory=dict)
    keys: dict[str, dict[int, None]] = field(default_factory=dict)  # digests, oldest first
    prior: int = 0  # scored entries of non-negative groups, capped (early pricing rule a)
    mofu_last: int | None = None  # latest scored mid-funnel touch (mofu guard)
    seen: dict[int, int] = field(
        default_factory=dict
    )  # digest of an applied event id -> day of the lead's clock it was applied on, oldest first
    watermarks: dict[int, int] = field(default_factory=dict)  # partition -> applied offset
    sla_due: int | None = None  # when the open handoff's SLA passes (one timer at most)
    sla_triggers: list[str] = field(default_factory=list)  # trigger event ids of that handoff
    # Not stored: a day at or below every day in `seen` (None: not known), so that the daily
    # pruning need not look at every remembered id to find that none is old enough to go.
    seen_floor: int | None = field(default=None, compare=False, repr=False)
    # Not stored: `seen` packed as at the last encoding, (the dict, how many ids, the runs);
    # valid while ids were only added to that dict since (`_pack_days`).
    seen_runs: tuple[dict[int, int], int, Runs] | None = field(
        default=None, compare=False, repr=False
    )
    # Not stored: the account fit of the `profile` dict it names, dropped wherever that dict is
    # changed (`stream.scoring.account.contact_update` reads it).
    company: tuple[dict[str, Any], float | None] | None = field(
        default=None, compare=False, repr=False
    )

    def encode(self) -> bytes:
        """Compact bytes (orjson of a positional list); `decode(encode(s)) == s`."""
        flags = (
            (_EMAIL_INVALID if self.email_invalid else 0)
            | (_EMAIL_SUPPRESSED if self.email_suppressed else 0)
            | (_ACCEPTED if self.accepted else 0)
        )
        return orjson.dumps(
            [
                CODEC_VERSION,
                self.lead_id,
                self.model_version,
                self.stage,
                self.seq,
                self.clock,
                self.last_event,
                self.stage_since,
                self.profile,
                self.fit,
                self.account_id,
                flags,
                self.mql_at,
                self.next_tick,
                self.low_ticks,
                self.recycled_at,
                self.route,
                self.acc,
                self.times,
                {k: _pack(v) for k, v in self.keys.items()},
                self.prior,
                self.mofu_last,
                _pack_days(self),
                [[p, o] for p, o in self.watermarks.items()],
                None if self.sla_due is None else [self.sla_due, self.sla_triggers],
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> LeadState:
        """Inverse of `encode`; raises StateDecodeError on foreign or corrupt bytes.

        Version 1 states (before SLA timers) decode with no SLA timer; version 1 and 2 states
        (ids without days) remember their ids from the lead's clock on.
        """
        try:
            v = orjson.loads(data)
            if not isinstance(v, list) or not v or _LAYOUT.get(v[0]) != len(v):
                raise ValueError("unknown layout")
            sla = v[24] if len(v) > 24 else None
            clock = v[5]
            runs = None
            if v[0] >= 3:
                seen, runs = _unpack_days(v[22])
            else:
                today = 0 if clock is None else int(clock) // US_PER_DAY
                seen = dict.fromkeys(_unpack(v[22]), today)
            state = cls(
                lead_id=v[1],
                model_version=v[2],
                stage=v[3],
                seq=v[4],
                clock=v[5],
                last_event=v[6],
                stage_since=v[7],
                profile=v[8],
                fit=v[9],
                account_id=v[10],
                email_invalid=bool(v[11] & _EMAIL_INVALID),
                email_suppressed=bool(v[11] & _EMAIL_SUPPRESSED),
                accepted=bool(v[11] & _ACCEPTED),
                mql_at=v[12],
                next_tick=v[13],
                low_ticks=v[14],
                recycled_at=v[15],
                route=v[16],
                acc=v[17],
                times=v[18],
                keys={k: _unpack(ks) for k, ks in v[19].items()},
                prior=v[20],
                mofu_last=v[21],
                seen=seen,
                watermarks={p: o for p, o in v[23]},
                sla_due=None if sla is None else int(sla[0]),
                sla_triggers=[] if sla is None else [str(x) for x in sla[1]],
            )
            if runs is not None:
                state.seen_runs = (seen, len(seen), runs)
            return state
        except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
            raise StateDecodeError(
                f"lead state: cannot decode ({exc}); codec version "
                f"{' or '.join(map(str, _LAYOUT))} expected — "
                "rebuild the state by replaying the lead's events"
            ) from None


_NEW = object.__new__
# Every field in its order, the mutable ones filled in by `new_state` for each lead.
_TEMPLATE = {
    f.name: None if f.default is dataclasses.MISSING else f.default
    for f in dataclasses.fields(LeadState)
}


def new_state(lead_id: str) -> LeadState:
    """A lead nobody has seen yet: stage `anonymous`, no history.

    `LeadState(lead_id)` field by field, without its eight `default_factory` calls: a replay
    makes one for every lead it meets."""
    state: LeadState = _NEW(LeadState)
    fields = state.__dict__
    fields.update(_TEMPLATE)
    fields["lead_id"] = lead_id
    fields["profile"], fields["acc"], fields["times"], fields["keys"] = {}, {}, {}, {}
    fields["seen"], fields["watermarks"], fields["sla_triggers"] = {}, {}, []
    return state


def seen_before(state: LeadState, event_id: str) -> bool:
    """The event id was applied to this lead within `retention.seen_event_days` (dedupe)."""
    return digest(event_id) in state.seen


def remember_id(state: LeadState, event_id: str, model: Model, at_us: int | None = None) -> None:
    """Record an applied event id (transport dedupe); see `remember_digest`."""
    remember_digest(state, digest(event_id), model, at_us)


def remember_digest(state: LeadState, value: int, model: Model, at_us: int | None = None) -> None:
    """Record the digest of an applied event id with the day it was applied on.

    The day is that of the lead's clock (or `at_us` when later, or when the lead has no clock
    yet): an id is forgotten only after the lead's own time has moved `seen_event_days` past it,
    however long the lead then stays quiet. `seen_event_max` bounds a runaway lead (a bot).
    """
    clock = state.clock
    if at_us is not None and (clock is None or at_us > clock):
        clock = at_us
    seen = state.seen
    if seen.pop(value, None) is not None:
        state.seen_runs = None  # moved to the end: the kept runs no longer match
    day = seen[value] = 0 if clock is None else clock // US_PER_DAY
    if len(seen) == 1 or (state.seen_floor is not None and day < state.seen_floor):
        state.seen_floor = day
    while len(seen) > model.seen_max:
        del seen[next(iter(seen))]
        state.seen_runs = None


def remember_all(state: LeadState, other: dict[int, int], model: Model) -> None:
    """Unite another lead's remembered ids into this one (identity merge): later day wins."""
    seen = state.seen
    state.seen_floor = None
    state.seen_runs = None
    for value, day in other.items():
        mine = seen.get(value)
        if mine is None or day > mine:
            seen[value] = day
    if len(seen) > model.seen_max:
        ordered = sorted(seen.items(), key=lambda item: item[1])
        state.seen = dict(ordered[len(ordered) - model.seen_max :])


def has_key(state: LeadState, type_name: str, key: str) -> bool:
    """An earlier event of the type carried this dedupe-key value (among the last N kept)."""
    keys = state.keys.get(type_name)
    return keys is not None and digest(key) in keys


def remember_key(state: LeadState, type_name: str, key: str, model: Model) -> None:
    """Record a dedupe-key value of a type, keeping the last N per type."""
    keys = state.keys.setdefault(type_name, {})
    value = digest(key)
    keys.pop(value, None)
    keys[value] = None
    while len(keys) > model.keys_per_type:
        del keys[next(iter(keys))]


def add_time(state: LeadState, type_name: str, us: int, model: Model) -> None:
    """Keep a scored entry time if some window can still look at it."""
    if model.types[type_name].horizon_us:
        bisect.insort(state.times.setdefault(type_name, []), us)


def prune(state: LeadState, model: Model) -> None:
    """Drop what no rule can look at any more (docs/scoring.md, "Bounded state")."""
    clock = state.clock
    if clock is None:
        return
    types = model.types
    all_times = state.times
    for name in list(all_times):
        rule = types.get(name)
        times = all_times[name]
        if rule is None or not rule.horizon_us:
            del all_times[name]
            continue
        if not times or times[0] <= clock - rule.horizon_us:
            del times[: bisect.bisect_right(times, clock - rule.horizon_us)]
            if not times:
                del all_times[name]
    _forget_ids(state, model, clock)
    acc = state.acc
    dead = []
    for name, (value, ref) in acc.items():
        rule = types.get(name)
        if rule is None or ref > clock:
            continue
        half_life, dt = rule.half_life, clock - int(ref)
        # decay.decayed, written out: this runs for every type of every lead once a day
        now = (
            value if half_life is None or dt == 0 else value * 0.5 ** (dt / US_PER_DAY / half_life)
        )
        if abs(now) < NEGLIGIBLE:
            dead.append(name)
    for name in dead:
        del acc[name]


def _forget_ids(state: LeadState, model: Model, clock: int) -> None:
    """Drop event ids applied more than `seen_event_days` of the lead's clock ago."""
    oldest = (clock - model.seen_us) // US_PER_DAY
    floor = state.seen_floor
    if floor is not None and floor >= oldest:
        return
    seen = state.seen
    if not seen:
        return
    low = min(seen.values())
    if low < oldest:
        state.seen = {value: day for value, day in seen.items() if day >= oldest}
        state.seen_floor = oldest
    else:
        state.seen_floor = low
