"""One planted-truth history and one `learn` run on it, shared by the tests of this folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stream.learn.command import run_learn
from stream.reports.history import History, simulated_history

PLANTED_LEADS = 600
PLANTED_SEED = 3


@pytest.fixture(scope="session")
def planted_lines() -> list[str]:
    return simulated_history(PLANTED_LEADS, PLANTED_SEED, planted_truth=True)


@pytest.fixture(scope="session")
def learned(planted_lines: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`learn --outcome accepted` on the planted history: its summary and where it wrote."""
    out = tmp_path_factory.mktemp("learn")
    result = run_learn(
        None,
        (),
        "accepted",
        out / "learn.html",
        out / "candidate.yaml",
        out / "learn.json",
        out / "whatif.html",
        history=History.from_lines(planted_lines),
        resamples=30,
    )
    return {"summary": result.summary, "dir": out}


def path_of(learned: dict[str, Any], name: str) -> Path:
    path: Path = learned["dir"] / name
    return path
