"""What a state keeps in memory to be fast must never change what it stores or decides.

`seen_runs` (the remembered ids packed at the last encoding) and `seen_floor` (a bound on their
oldest day) are kept beside `seen`; `new_state` builds a state without the dataclass' factory
calls. Each is checked here against the plain computation, over arbitrary sequences of the
operations that change `seen`, with encodings in between.
"""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.scoring import Event, Model, apply, contact_update, default_model, merge_states
from stream.scoring.events import US_PER_DAY
from stream.scoring.fit import company_fit
from stream.scoring.state import (
    LeadState,
    _runs,
    new_state,
    prune,
    remember_all,
    remember_digest,
)

DAY = US_PER_DAY
digests = st.integers(min_value=0, max_value=2**64 - 1)
operation = st.one_of(
    st.tuples(st.just("remember"), digests, st.integers(0, 3)),  # a new id, days later
    st.tuples(st.just("again"), st.integers(0, 50), st.integers(0, 3)),  # an id seen before
    st.tuples(st.just("merge"), st.lists(st.tuples(digests, st.integers(0, 60)), max_size=8)),
    st.tuples(st.just("prune"), st.integers(0, 40)),
    st.tuples(st.just("encode")),
)


def _plain_runs(seen: dict[int, int]) -> list[tuple[int, list[int]]]:
    out: list[tuple[int, list[int]]] = []
    for value, day in seen.items():
        if out and out[-1][0] == day:
            out[-1][1].append(value)
        else:
            out.append((day, [value]))
    return out


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(operation, max_size=60), small_cap=st.booleans())
def test_encoding_equals_packing_from_scratch_whatever_happened(
    ops: list[tuple[object, ...]], small_cap: bool
) -> None:
    model: Model = default_model()
    if small_cap:
        model = dataclasses.replace(model, seen_max=4)
    state = new_state("lead")
    state.clock = 100 * DAY
    for op in ops:
        kind = op[0]
        if kind == "remember":
            _, value, later = op
            assert isinstance(value, int) and isinstance(later, int)
            state.clock += later * DAY // 2
            remember_digest(state, value, model)
        elif kind == "again" and state.seen:
            _, index, later = op
            assert isinstance(index, int) and isinstance(later, int)
            state.clock += later * DAY // 2
            remember_digest(state, list(state.seen)[index % len(state.seen)], model)
        elif kind == "merge":
            other = {v: 100 + d for v, d in op[1]}  # type: ignore[attr-defined]
            remember_all(state, other, model)
        elif kind == "prune":
            state.clock += int(op[1]) * DAY  # type: ignore[call-overload]
            prune(state, model)
        else:
            decoded = LeadState.decode(state.encode())
            assert decoded == state
            assert list(decoded.seen.items()) == list(state.seen.items())
            state = decoded  # go on from what was stored, as a restarted worker does
        if state.seen_floor is not None:
            assert all(day >= state.seen_floor for day in state.seen.values())
    decoded = LeadState.decode(state.encode())
    assert list(decoded.seen.items()) == list(state.seen.items())
    assert [(d, bytes(r)) for d, r, _text in _runs(state.seen)] == [
        (d, b"".join(v.to_bytes(8, "big") for v in values)) for d, values in _plain_runs(state.seen)
    ]


def test_a_new_state_is_the_dataclass_default_with_fresh_containers() -> None:
    made, plain = new_state("x"), LeadState("x")
    assert made == plain and dataclasses.asdict(made) == dataclasses.asdict(plain)
    assert list(vars(made)) == list(vars(plain))  # every field, in order
    other = new_state("y")
    for f in dataclasses.fields(LeadState):
        if f.default_factory is not dataclasses.MISSING:
            assert getattr(made, f.name) is not getattr(other, f.name), f.name


def test_the_account_fit_kept_follows_every_profile_change(model: Model) -> None:
    """`contact_update` keeps the account fit with the state; a trait that changes it, by an
    event or by a merge, must show in the next contact update."""
    state = new_state("u-1")
    base = {"event_id": "e1", "type": "web.page_view", "occurred_at": "2026-01-05T10:00:00Z"}
    sent = [
        {"employees": 30},
        {"seniority": "vp"},  # not a company trait: the kept fit stays right
        {"employees": 600, "industry": "software"},
        {"country": "KP"},  # an embargo overrides
        {"country": None},
    ]
    for n, traits in enumerate(sent):
        event = Event.from_dict(
            {**base, "event_id": f"e{n}", "account_id": "acct", "traits": traits}
        )
        apply(state, event, model)
        update = contact_update(state, model)
        assert update is not None
        assert update.fit_company == company_fit(state.profile, model)
    visitor = new_state("anon:v")
    visitor.profile = {"tech_fit": True}
    identify = Event.from_dict({**base, "event_id": "i", "type": "identify"})
    merge_states(state, visitor, identify, model)
    update = contact_update(state, model)
    assert update is not None and update.fit_company == company_fit(state.profile, model)
    assert state.profile["tech_fit"] is True
