"""Replays of one history in worker processes, with a progress bar on stderr.

A replay is pure CPU in one process, so the reports replay in parallel: `Replays` starts `jobs`
worker processes that each hold the history (handed over once, at start) and takes replays as
tasks — a whole replay (`full`) or the replay of some components (`part`) — each with a
callback that may queue more; `wait` runs them until none is left. With `jobs` 1 everything runs
in this process, in the same order. Workers are forked where that is safe (no other thread
yet), else spawned.

The history's lines go to each worker once, when it starts; a partial replay's layout goes with
the task, pickled once here and unpickled once per worker. `part` is where a partial replay is
made exact: it replays the components with clock lines at
the minutes it is given (every midnight of the model, and SLA deadlines it knows of), reads the
SLA deadlines its own output files, and replays again with them until no new one appears
(`stream.reports.components`).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import pickle
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from stream.reports.components import Layout, sla_minutes
from stream.reports.parts import Parts, split
from stream.reports.runs import Run, run_lines
from stream.scoring.events import EPOCH
from stream.scoring.model import Model

T = TypeVar("T")


def default_jobs() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Work:
    """What every worker holds: the history's lines."""

    lines: Sequence[str]


_WORK: Work | None = None


def _start(work: Work) -> None:
    global _WORK
    _WORK = work


def _work() -> Work:
    assert _WORK is not None, "a replay task ran outside a Replays worker"
    return _WORK


@dataclass
class Whole:
    """A whole replay's Run (with the final states only when asked)."""

    run: Run
    lines: int


@dataclass
class Partial:
    """A partial replay's output by component, and what it cost."""

    parts: Parts
    lines: int
    rounds: int


def _whole(model: Model, until: datetime | str | None, states: bool) -> Whole:
    work = _work()
    return Whole(run_lines(work.lines, model, until, keep_states=states), len(work.lines))


_LAYOUT: tuple[int, Layout] | None = None
_TOKENS = itertools.count(1)


def _layout(token: int, blob: bytes) -> Layout:
    """The layout a partial replay names, unpickled once per worker."""
    global _LAYOUT
    if _LAYOUT is None or _LAYOUT[0] != token:
        _LAYOUT = (token, pickle.loads(blob))
    return _LAYOUT[1]


def _part(
    token: int, blob: bytes, model: Model, components: frozenset[int], minutes: frozenset[int]
) -> Partial:
    work = _work()
    layout = _layout(token, blob)
    known = set(minutes) | set(layout.midnights(model))
    parts: Parts = {}
    todo = components
    replayed = rounds = 0
    while todo:
        lines = layout.replay_input(work.lines, todo, known)
        run = run_lines(lines, model, _until(layout), keep_states=False)
        replayed += len(lines)
        rounds += 1
        fresh = split(run.transitions, run.leads.values(), layout)
        parts.update(fresh)
        wanted = {
            part: sla_minutes(tr for transitions, _ in leads.values() for tr in transitions)
            for part, leads in fresh.items()
        }
        short = {part for part, needed in wanted.items() if not needed <= known}
        for part in short:
            known |= wanted[part]
        # Without irregular lines each component's timers depend on its own minutes only, so
        # only those that filed a deadline no clock line stood at are replayed again.
        todo = frozenset(short if not layout.irregular else (components if short else ()))
    return Partial(parts, replayed, rounds)


def _until(layout: Layout) -> datetime:
    """The whole replay's end, so the partial one evaluates its leads at the same instant."""
    return EPOCH + timedelta(microseconds=layout.end_us)


class _Here(Executor):
    """Runs each task at once, in this process (jobs = 1)."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller like a pool does
            future.set_exception(exc)
        return future


class Replays:
    """Replays of one history, `jobs` at a time, each with a callback; a progress bar counts
    them on stderr when `progress` is true (None: when stderr is a terminal)."""

    def __init__(
        self,
        lines: Sequence[str],
        jobs: int,
        *,
        progress: bool | None = None,
        label: str = "replays",
    ) -> None:
        self.work = Work(lines)
        self.jobs = max(1, jobs)
        self.pending: dict[Future[Any], Callable[[Any], None]] = {}
        self.executor: Executor | None = None
        self.whole_replays = 0
        self.partial_replays = 0
        self.layout: tuple[Layout, int, bytes] | None = None
        self.lines = 0
        from tqdm import tqdm

        tqdm.monitor_interval = 0  # no monitor thread: workers may still be forked
        self.bar = tqdm(
            total=0, desc=label, unit="replay", disable=None if progress is None else not progress
        )

    def __enter__(self) -> Replays:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.bar.close()
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None

    def _executor(self) -> Executor:
        if self.executor is None:
            if self.jobs == 1:
                _start(self.work)
                self.executor = _Here()
            else:
                methods = multiprocessing.get_all_start_methods()
                fork = "fork" in methods and threading.active_count() == 1
                context = multiprocessing.get_context("fork" if fork else "spawn")
                self.executor = ProcessPoolExecutor(
                    self.jobs, mp_context=context, initializer=_start, initargs=(self.work,)
                )
        return self.executor

    def _submit(self, then: Callable[[T], None], fn: Callable[..., T], *args: Any) -> None:
        self.bar.total += 1
        self.bar.refresh()
        self.pending[self._executor().submit(fn, *args)] = then

    def whole(
        self,
        model: Model,
        then: Callable[[Whole], None],
        *,
        until: datetime | str | None = None,
        states: bool = False,
    ) -> None:
        """Replay the whole history under `model` (keeping the final states if asked)."""
        self.whole_replays += 1
        self._submit(then, _whole, model, until, states)

    def part(
        self,
        layout: Layout,
        model: Model,
        components: Collection[int],
        minutes: Iterable[int],
        then: Callable[[Partial], None],
    ) -> None:
        """Replay these components (and the irregular ones) under `model`, exactly as the
        whole replay would leave them; `minutes` are SLA deadlines already known to matter.
        The layout travels with the task (workers start before it is made)."""
        self.partial_replays += 1
        if self.layout is None or self.layout[0] is not layout:
            token = next(_TOKENS)  # unique in this process: workers may inherit a cached one
            self.layout = (layout, token, pickle.dumps(layout, pickle.HIGHEST_PROTOCOL))
        _, token, blob = self.layout
        self._submit(then, _part, token, blob, model, frozenset(components), frozenset(minutes))

    def wait(self) -> None:
        """Run every queued replay and the callbacks, which may queue more, until none is left."""
        while self.pending:
            done, _ = wait(list(self.pending), return_when=FIRST_COMPLETED)
            for future in done:
                then = self.pending.pop(future)
                result = future.result()
                self.lines += result.lines
                self.bar.update(1)
                then(result)
