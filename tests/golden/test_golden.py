"""Every pipeline output is what it was before the pipeline was made fast (issue 25).

The digests were recorded from the code before that work (`corpus.py` says what each case
is); a changed output fails here with the first line that differs where the whole output is
kept. Re-record (`python -m tests.golden.corpus record NAME`) only for a change that is meant
to change outputs, and say so in the commit.
"""

from __future__ import annotations

import gzip

import orjson
import pytest

from tests.golden import corpus


@pytest.mark.parametrize("name", sorted(corpus.cases()))
def test_outputs_equal_the_recorded_ones(name: str) -> None:
    recorded = orjson.loads(corpus.DIGESTS.read_bytes())[name]
    data = corpus.cases()[name]()
    if corpus.digest(data) == recorded:
        return
    kept = corpus.HERE / f"{name}.jsonl.gz"
    if kept.exists():
        old = gzip.decompress(kept.read_bytes()).split(b"\n")
        new = data.split(b"\n")
        for number, (a, b) in enumerate(zip(old, new, strict=False), 1):
            if a != b:
                pytest.fail(f"{name}: line {number} differs:\nwas {a[:600]!r}\nnow {b[:600]!r}")
    pytest.fail(f"{name}: output {corpus.digest(data)} differs from the recorded {recorded}")
