"""The cyclic garbage collector, quieted for runs over many events (`replay`, `whatif`, `review`).

Why: CPython collects its youngest generation every 700 new container objects and the whole
heap whenever the long-lived objects grew by a quarter. A replay keeps every lead's state
(dozens of container objects per lead) until the end, so each full collection walks every
state made so far, again and again: 10–20 % of a replay's CPU, measured on the bench file
(`docs/benchmarks.md`). Nothing the pipeline keeps is a reference cycle (states, ledgers and
events are trees) and what it throws away is freed by reference counting at once, whatever
the collector does; so during a run the young generation is collected less often and what
survived a landing is frozen (`gc.freeze`: never walked again until the run ends).

The settings are process-wide: they are restored when the outermost run ends, and nested runs
(a report replaying two models) share them.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG = 20_000  # container allocations between young collections (CPython's default: 700)
_depth = 0
_saved: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def quiet_collector() -> Iterator[None]:
    """Within: fewer young collections, and `settle()` freezes what survived so far."""
    global _depth, _saved
    if _depth == 0:
        _saved = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(YOUNG, _saved[1], _saved[2])
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            gc.set_threshold(*_saved)
            gc.unfreeze()


def settle() -> None:
    """Freeze what is alive now (inside `quiet_collector` only: a run's states so far)."""
    if _depth:
        gc.freeze()
