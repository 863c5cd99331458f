"""Fixtures of the scoring tests: the packaged default model."""

from __future__ import annotations

import pytest

from stream.scoring import Model, default_model


@pytest.fixture
def model() -> Model:
    return default_model()
