"""The replays of a threshold sweep, and the work they share.

A review asks, for each graded MQL threshold and each value tried, "who would have become an
MQL": the engine's answer, so one replay of the history per value. Replaying the whole history
~40 times is what made `review` take ten minutes on 56,000 events. Three facts cut that down
without changing a single number:

1. **Raising a threshold only moves the leads it made MQLs below the new value.** Take the
   replay at θ of grade g, and θ' > θ. Both take the same decisions until an MQL evaluation
   where they disagree: a lead of grade g, in lead or nurture, past the mofu guard and the
   nurture cooldown, with an engagement in [θ, θ') — which the replay at θ records as an MQL
   by score of grade g with that engagement (`mql_rule` writes the very engagement it
   compared). So the leads whose path changes from θ to θ' are exactly those with such a
   transition in the replay at θ; everyone else ends as at θ (thresholds are read, never
   stored: only the threshold a transition records and the model version differ). Every value
   is therefore replayed from the nearest value below it, for the few leads that MQL'd there
   at an engagement below it: values above the current θ0 in a chain from the base replay,
   values below θ0 in a chain from one whole replay at the lowest value (lowering a threshold
   reaches evaluations no replay at θ0 records, so the lowest value needs the whole history).
2. **Leads are independent but for identity and timers.** `stream.reports.components` splits
   the history into identity components and replays some of them exactly as the whole replay
   would leave them (clock lines reproduce the stream time that fires timers); every other
   component is taken from the replay it was taken from before (`stream.reports.parts`).
3. **Replays are independent CPU work.** The base replay, the lowest value of each grade, the
   chains (one per grade and side) and the refinement around each grade's best value run in
   worker processes (`stream.reports.pool`) as soon as the replay they start from is in.

The suggestion of several grades at once (its MQL volume) is replayed on the components any of
its single-grade replays changed: until a joint replay first disagrees with the base, it agrees
with the single-grade replay of the grade it disagrees on. With `shortcut=False`, or when the
history's layout cannot support exact partial replays (`Layout.unsupported`), every value is a
whole replay, in parallel all the same. The test suite compares both ways, number for number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from stream.reports.components import Layout, sla_minutes
from stream.reports.history import History
from stream.reports.parts import Lead, Parts, Variant, assemble, changed, signatures, split
from stream.reports.pool import Partial, Replays, Whole
from stream.reports.runs import Run, with_thresholds
from stream.reports.sweep import Volume, volume
from stream.scoring.model import Model

Population = tuple[Sequence[str], frozenset[str]]
"""A swept grade's judged leads and the good ones among them."""


def grid_values(grid: tuple[float, float, float]) -> list[float]:
    low, high, step = grid
    out = []
    value = low
    while value <= high + 1e-9:
        out.append(round(value, 6))
        value += step
    return out


def refinements(best: float | None, grid: tuple[float, float, float]) -> list[float]:
    """Every whole number next to the best grid value (within a step, inside the grid)."""
    low, high, step = grid
    if best is None or step <= 1:
        return []
    return [
        float(th)
        for offset in range(1, int(step))
        for th in (best - offset, best + offset)
        if low <= th <= high
    ]


def _transitions(leads: Mapping[str, Lead]) -> list[dict[str, Any]]:
    return [tr for transitions, _ in leads.values() for tr in transitions]


def mql_floor(leads: Mapping[str, Lead], grade: str) -> float | None:
    """The lowest engagement at which a lead of this output became an MQL by score with
    `grade` (None: none did): raising the grade's threshold above it changes the output."""
    floor = None
    for transitions, _ in leads.values():
        for tr in transitions:
            if tr["to"] == "mql" and tr["reason"] == "score" and tr["grade"] == grade:
                floor = tr["engagement"] if floor is None else min(floor, tr["engagement"])
    return floor


class Sweep:
    """Runs a review's replays through `replays`: the base and each grade's lowest value,
    every value of every swept grade, the refinement around each grade's best value, and, when
    asked, the suggestion (see the module docstring). Callbacks drive it; `replays.wait()`
    runs it."""

    def __init__(
        self,
        history: History,
        model: Model,
        grid: tuple[float, float, float],
        replays: Replays,
        best: Callable[[str, dict[float, Volume]], float | None],
        shortcut: bool = True,
    ) -> None:
        self.history = history
        self.model = model
        self.current = {g: float(v) for g, v in model.rules.mql_thresholds.items()}
        self.grid = grid
        self.replays = replays
        self.layout: Layout | None = None
        self.best = best
        self.strategy = "components" if shortcut else "whole replays (asked for)"
        self.base: Run | None = None
        self.base_parts: Parts = {}
        self.base_sigs: dict[int, bytes] = {}
        self.lowest: dict[str, Run | None] = {}
        self.swept: dict[str, Population] = {}
        self.variants: dict[str, dict[float, Variant]] = {}
        self.whole: dict[str, dict[float, Run]] = {}
        self.base_volumes: dict[int, Volume] = {}
        self.base_volume: Volume = (frozenset(), 0)
        self.open: dict[str, int] = {}
        self.started: set[str] = set()
        self.suggested: Run | None = None

    @property
    def partial(self) -> bool:
        return self.strategy == "components"

    def use(self, layout: Layout) -> None:
        """The history's layout, made while the first whole replays run (before `wait`)."""
        self.layout = layout
        if self.partial and layout.unsupported:
            self.strategy = f"whole replays ({layout.unsupported})"

    def model_for(self, thresholds: Mapping[str, float]) -> Model:
        tag = "-".join(f"{g.lower()}{th:g}" for g, th in sorted(thresholds.items()))
        return with_thresholds(self.model, {**self.model.rules.mql_thresholds, **thresholds}, tag)

    def _values(self, grade: str) -> tuple[list[float], list[float]]:
        """The grid's values below and above the grade's current threshold, ascending."""
        now = self.current[grade]
        values = grid_values(self.grid)
        return [v for v in values if v < now], [v for v in values if v > now]

    # -- the base and each grade's lowest value ---------------------------------------------

    def start(self, on_base: Callable[[Run], Mapping[str, Population]]) -> None:
        """Queue the base replay (and the lowest value of each grade); `on_base` gets the
        base Run and names the grades to sweep with their populations."""

        def base_done(result: Whole) -> None:
            self.base = result.run
            if self.partial:
                assert self.layout is not None
                try:
                    self.base_parts = split(
                        self.base.transitions, self.base.leads.values(), self.layout
                    )
                except ValueError as exc:  # a lead the layout cannot place: replay whole
                    self.strategy = f"whole replays ({exc})"
                self.base_sigs = signatures(self.base_parts)
            self.base_volume = volume(self.base.transitions)
            self.base_volumes = {p: volume(_transitions(x)) for p, x in self.base_parts.items()}
            self.swept = dict(on_base(self.base))
            for grade in list(self.swept):
                self._go(grade)

        self.replays.whole(self.model, base_done, states=True)
        for grade in self.current:
            below, _ = self._values(grade)
            if not below:
                continue
            self.lowest[grade] = None

            def lowest_done(result: Whole, grade: str = grade) -> None:
                self.lowest[grade] = result.run
                self._go(grade)

            self.replays.whole(self.model_for({grade: below[0]}), lowest_done)

    def _go(self, grade: str) -> None:
        """Start a grade's chains once the base (and its lowest value) are in."""
        if grade in self.started or self.base is None or grade not in self.swept:
            return
        if grade in self.lowest and self.lowest[grade] is None:
            return
        self.started.add(grade)
        self.variants[grade] = {}
        self.whole[grade] = {}
        below, above = self._values(grade)
        self.open[grade] = 2
        if not self.partial:
            if below:
                lowest = self.lowest[grade]
                assert lowest is not None
                self.whole[grade][below[0]] = lowest
            self._all_whole(grade, below[1:])
            self._all_whole(grade, above)
            return
        if below:
            lowest = self.lowest[grade]
            assert self.layout is not None and lowest is not None
            parts = split(lowest.transitions, lowest.leads.values(), self.layout)
            start = Variant(self.model_for({grade: below[0]}), changed(parts, self.base_sigs))
            start.lines = len(self.history.lines)
            self.variants[grade][below[0]] = start
            self._step(grade, below, 1, start)
        else:
            self._side_done(grade)
        self._step(grade, above, 0, Variant(self.model, {}))

    def _all_whole(self, grade: str, values: list[float]) -> None:
        if not values:
            self._side_done(grade)
            return
        left = [len(values)]

        def one_done() -> None:
            left[0] -= 1
            if left[0] == 0:
                self._side_done(grade)

        for value in values:
            self._whole(grade, value, one_done)

    # -- chains: one per grade and side, ascending, each value from the one below ------------

    def _step(self, grade: str, values: list[float], i: int, below: Variant) -> None:
        if i == len(values):
            self._side_done(grade)
            return
        value = values[i]

        def then(variant: Variant) -> None:
            self.variants[grade][value] = variant
            self._step(grade, values, i + 1, variant)

        self._raise(grade, value, below, then)

    def _raise(
        self, grade: str, value: float, below: Variant, then: Callable[[Variant], None]
    ) -> None:
        """The variant at `value` from the variant at a lower value of the same grade: only
        the components where that one made an MQL of the grade below `value` are replayed."""
        redo: set[int] = set()
        for part in below.changed.keys() | self.base_parts.keys():
            leads = below.changed.get(part, self.base_parts.get(part, {}))
            floor = mql_floor(leads, grade)
            if floor is not None and floor < value:
                redo.add(part)
        keep = {p: leads for p, leads in below.changed.items() if p not in redo}
        self._replay({grade: value}, frozenset(redo), below.changed, keep, then)

    def _replay(
        self,
        thresholds: Mapping[str, float],
        redo: frozenset[int],
        known: Parts,
        keep: Parts,
        then: Callable[[Variant], None],
    ) -> None:
        """The variant of these thresholds: the components `redo` replayed (SLA deadlines of
        their known output seed the clock lines), `keep` as they are, the rest as the base."""
        model = self.model_for(thresholds)
        if not redo:
            then(Variant(model, dict(keep)))
            return
        hint: set[int] = set()
        for part in redo:
            leads = known.get(part, self.base_parts.get(part, {}))
            hint |= sla_minutes(tr for trs, _ in leads.values() for tr in trs)

        def done(result: Partial) -> None:
            fresh = changed(result.parts, self.base_sigs)
            then(Variant(model, {**keep, **fresh}, result.lines, result.rounds))

        assert self.layout is not None
        self.replays.part(self.layout, model, redo, hint, done)

    def _whole(self, grade: str, value: float, then: Callable[[], None]) -> None:
        def done(result: Whole) -> None:
            self.whole[grade][value] = result.run
            then()

        self.replays.whole(self.model_for({grade: value}), done)

    # -- the refinement around the best value, then the suggestion ---------------------------

    def run_at(self, grade: str, value: float) -> Run | None:
        """The Run of the whole history at this value of the grade (None: not tried)."""
        assert self.base is not None
        if value == self.current[grade]:
            return self.base
        if value in self.whole.get(grade, {}):
            return self.whole[grade][value]
        variant = self.variants.get(grade, {}).get(value)
        return None if variant is None else assemble(self.base, self.base_parts, variant)

    def runs_of(self, grade: str) -> dict[float, Run]:
        """The Run at each value tried for `grade` (the current value: the base)."""
        values = [self.current[grade], *self.whole.get(grade, {}), *self.variants.get(grade, {})]
        return {value: run for value in values if (run := self.run_at(grade, value)) is not None}

    def volumes(self, grade: str) -> dict[float, Volume]:
        """What the sweep reads of the replay at each value tried for `grade`, without
        assembling whole Runs: the base's, minus the changed components', plus the variant's."""
        out = {self.current[grade]: self.base_volume}
        for value, run in self.whole.get(grade, {}).items():
            out[value] = volume(run.transitions)
        for value, variant in self.variants.get(grade, {}).items():
            leads, entries = set(self.base_volume[0]), self.base_volume[1]
            for part, changed_leads in variant.changed.items():
                gone, count = self.base_volumes.get(part, (frozenset(), 0))
                leads -= gone
                entries -= count
                new, more = volume(_transitions(changed_leads))
                leads |= new
                entries += more
            out[value] = (frozenset(leads), entries)
        return out

    def _side_done(self, grade: str) -> None:
        self.open[grade] -= 1
        if self.open[grade] == 0:
            self._refine(grade)

    def _refine(self, grade: str) -> None:
        volumes = self.volumes(grade)
        extra = [v for v in refinements(self.best(grade, volumes), self.grid) if v not in volumes]
        self.open[grade] = len(extra) + 1
        for value in extra:
            if not self.partial:
                self._whole(grade, value, lambda g=grade: self._refined(g))  # type: ignore[misc]
                continue
            lower = [v for v in (*self.variants[grade], self.current[grade]) if v < value]
            start = max(lower)
            below = self.variants[grade].get(start) or Variant(self.model, {})

            def then(variant: Variant, value: float = value, grade: str = grade) -> None:
                self.variants[grade][value] = variant
                self._refined(grade)

            self._raise(grade, value, below, then)
        self._refined(grade)

    def _refined(self, grade: str) -> None:
        self.open[grade] -= 1

    def suggest(self, chosen: Mapping[str, float]) -> None:
        """Queue the replay of every suggested threshold at once (the suggestion's MQL
        volume); `self.suggested` holds its Run after `replays.wait()`."""
        assert self.base is not None
        moved = {g: v for g, v in chosen.items() if v != self.current[g]}
        if not moved:
            self.suggested = self.base
            return
        if len(moved) == 1:
            ((grade, value),) = moved.items()
            self.suggested = self.run_at(grade, value)
            if self.suggested is not None:
                return
        if not self.partial:

            def whole_done(result: Whole) -> None:
                self.suggested = result.run

            self.replays.whole(self.model_for(moved), whole_done)
            return
        redo = frozenset(
            part for grade, value in moved.items() for part in self.variants[grade][value].changed
        )

        def done(variant: Variant) -> None:
            assert self.base is not None
            self.suggested = assemble(self.base, self.base_parts, variant)

        self._replay(moved, redo, {}, {}, done)

    def cost(self) -> dict[str, Any]:
        """How the sweep was made, for the summary: strategy, replays, lines replayed."""
        return {
            "strategy": self.strategy,
            "whole_replays": self.replays.whole_replays,
            "partial_replays": self.replays.partial_replays,
            "lines_replayed": self.replays.lines,
            "history_lines": len(self.history.lines),
        }
