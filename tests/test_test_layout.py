"""The test tree itself: pytest imports test modules by their basename (the test folders are
not packages), so two `test_x.py` in different folders stop the whole run at collection. Each
folder's tests pass alone either way; only the full run finds it, so it is checked here."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_every_test_module_has_a_basename_of_its_own() -> None:
    found: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("test_*.py"):
        found[path.name].append(str(path.relative_to(TESTS)))
    twice = {name: paths for name, paths in found.items() if len(paths) > 1}
    assert not twice, f"rename one of each: {twice}"
