"""Shadow scoring: a candidate model scored beside the live one on every event, deciding nothing.

With `LEADSTREAM_SHADOW_MODEL` set, the pipeline applies every event it applies to a lead also
to the lead's *shadow state* under the candidate model, in the same order, and every timer
likewise. The shadow state lives in the same state table under its own key (`SHADOW_KEY` +
lead id: no lead id starts with a NUL), so it lands in the same checkpoint, with the same
changelog, watermarks and event-id dedupe as the live state: a re-read record is a no-op for
both, and a restart resumes both. Its transitions go to `leads.shadow` as replay transition
lines (`schemas/shadow-transition.schema.json`), never to the handoff topic, a sink, Redis or
the account rollup. A visitor's shadow history joins its lead as the live one does: in the
partition, or carried in the `merged` answer of a cross-partition merge (field `shadow`).

A shadow switched on while leads already exist starts each lead's shadow state from the lead's
next event: compare the two models on what happened after that (`leadstream whatif
--from-topic leads.shadow`).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

import orjson

from stream import metrics
from stream.pipeline.processor import Emit
from stream.pipeline.states import EncodedStates, MemoryStates
from stream.pipeline.ticks import TickScheduler
from stream.scoring import (
    Event,
    LeadState,
    Model,
    Outcome,
    apply_joining,
    catch_up,
    new_state,
    next_tick_at,
)
from stream.scoring.model import load_model
from stream.settings import Settings

SHADOW_KEY = "\x00shadow:"
SHADOW_BYTES = SHADOW_KEY.encode()


def shadow_model(settings: Settings) -> Model | None:
    """The shadow model of `LEADSTREAM_SHADOW_MODEL`, or None (checked like any model file)."""
    return load_model(settings.shadow_model) if settings.shadow_model else None


def is_shadow(key: str) -> bool:
    return key.startswith(SHADOW_KEY)


def count(model: str, transitions: Iterable[Any]) -> None:
    """Stage changes per model, stage and route: the live vs shadow row of the dashboard."""
    for tr in transitions:
        metrics.MODEL_TRANSITIONS.labels(model, tr.to_stage, tr.route or "none").inc()


class Shadow:
    """The candidate's half of the pipeline: its states, timers and transition records."""

    def __init__(
        self,
        model: Model,
        states: EncodedStates | MemoryStates,
        ticks: TickScheduler,
        records: bool = True,
    ):
        self.model = model
        self.states = states
        self.ticks = ticks
        self.records = records
        self.joining: dict[tuple[int, str], list[LeadState]] = {}

    # -- visitors ------------------------------------------------------------------------

    def hand_over(self, p: int, visitor_id: str, lead_id: str) -> None:
        """The visitor's shadow state leaves its key to join the lead's at its next apply."""
        state = self.states.get(p, SHADOW_KEY + visitor_id)
        if state is not None:
            self.states.delete(p, SHADOW_KEY + visitor_id)
            self.joining.setdefault((p, lead_id), []).append(state)

    def take_encoded(self, p: int, lead_id: str) -> list[str]:
        """What a pull answer carries to the lead's home partition."""
        return [base64.b64encode(s.encode()).decode() for s in self.joining.pop((p, lead_id), [])]

    def receive(self, p: int, lead_id: str, encoded: Iterable[str]) -> None:
        """Shadow histories that arrived with a merge, to join at the merge's apply."""
        for raw in encoded:
            state = LeadState.decode(base64.b64decode(raw))
            self.joining.setdefault((p, lead_id), []).append(state)

    # -- scoring -------------------------------------------------------------------------

    def apply(
        self,
        p: int,
        lead_id: str,
        event: Event,
        position: tuple[int, int] | None,
        emit: Emit,
        *,
        conflicts: Iterable[str] = (),
        merge_only: bool = False,
        merge_marks: Iterable[str] = (),
    ) -> None:
        """The live `_apply` steps under the candidate: merge the visitors handed over (at the
        event's instant), conflicts, then the event itself."""
        key = SHADOW_KEY + lead_id
        state = self.states.get(p, key) or new_state(lead_id)
        outcomes, _applied = apply_joining(
            state,
            event,
            self.model,
            visitors=self.joining.pop((p, lead_id), []),
            conflicts=list(conflicts),
            position=position,
            merge_only=merge_only,
            merge_marks=merge_marks,
            explain=False,
        )
        for outcome in outcomes:
            self._collect(outcome, emit)
        self._keep(p, key, state)

    def tick(self, p: int, key: str, now: float, emit: Emit) -> None:
        """A shadow timer the partition's stream time passed (`Pipeline._fire_ticks`)."""
        state = self.states.get(p, key)
        if state is not None:
            outcome = catch_up(state, now, self.model)
            self._collect(outcome, emit)
            self._keep(p, key, outcome.state)

    def _keep(self, p: int, key: str, state: LeadState) -> None:
        self.states.put(p, key, state)
        if state.next_tick is not None or state.sla_due is not None:
            due = next_tick_at(state, self.model)
            if due is not None:
                self.ticks.schedule(p, key, due)

    def _collect(self, outcome: Outcome, emit: Emit) -> None:
        if not outcome.transitions:
            return
        emit.shadow += [
            (tr.lead_id.encode(), orjson.dumps(tr.to_dict()), []) for tr in outcome.transitions
        ]
        if self.records:
            count("shadow", outcome.transitions)
