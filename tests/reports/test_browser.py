"""Both reports opened in headless Chromium (Debian's package): every plot must have rendered.

The check runs in the browser on a copy of each report with a small script appended (the
reports themselves carry no script): for every inline <svg> it measures the laid-out box and
counts the paths that were drawn with a non-empty box. Chromium runs with name resolution
switched off, so a report that needed the network would show up as missing plots. The test
fails, never skips, when Chromium is missing: `scripts/test.sh` installs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream.reports.commands import run_review, run_whatif
from stream.reports.history import History
from stream.reports.review import ReviewOptions
from stream.scoring.model import MODELS_DIR

from .histories import outcome_history, threshold_history

CHECK = """<pre id=plot-check></pre><script>
const boxes = [...document.querySelectorAll('svg')].map((svg) => {
  const r = svg.getBoundingClientRect();
  const drawn = [...svg.querySelectorAll('path')].filter((p) => {
    const b = p.getBBox();
    return b.width > 0 || b.height > 0;
  }).length;
  return {w: r.width, h: r.height, drawn, texts: svg.querySelectorAll('text').length};
});
document.getElementById('plot-check').textContent = JSON.stringify(boxes);
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "headless Chromium not found: install Debian's package (apt-get install chromium); "
        "scripts/test.sh does so when run as root"
        + (" — CI must have it" if os.environ.get("CI") == "true" else "")
    )


def _browse(html: Path, tmp: Path, *flags: str) -> str:
    args = [
        chromium(),
        "--headless",
        "--no-sandbox",  # root in CI; the page is our own file
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # no network: the report must not need it
        f"--user-data-dir={tmp / 'profile'}",
        "--window-size=1200,1600",
        *flags,
        html.as_uri(),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _rendered(report: Path, tmp: Path) -> list[dict[str, Any]]:
    text = report.read_text()
    probe = tmp / f"probe-{report.name}"
    probe.write_text(text.replace("</body>", CHECK + "</body>"))
    dom = _browse(probe, tmp, "--dump-dom", "--virtual-time-budget=5000")
    found = re.search(r'<pre id="plot-check">(.*?)</pre>', dom, re.S)
    assert found, "the check did not run: " + dom[-500:]
    boxes: list[dict[str, Any]] = orjson.loads(found.group(1).replace("&quot;", '"'))
    return boxes


def _self_contained(text: str) -> None:
    assert "<script" not in text and "<link" not in text and "@import" not in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert not re.search(r"url\(\s*['\"]?https?:", text)


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("reports")
    candidate = tmp / "candidate.yaml"
    text = (MODELS_DIR / "default-b2b.yaml").read_text()
    candidate.write_text(text.replace("thresholds: {A: 35, B: 45}", "thresholds: {A: 45, B: 45}"))
    whatif = tmp / "whatif.html"
    lines, _ = threshold_history()
    run_whatif(None, str(candidate), [], whatif, history=History.from_lines(lines))
    review = tmp / "review.html"
    lines, _ = outcome_history(cut=50)
    run_review(None, [], review, ReviewOptions(), history=History.from_lines(lines))
    return {"whatif": whatif, "review": review}


@pytest.mark.parametrize(("name", "plots"), [("whatif", 6), ("review", 4)])
def test_every_plot_renders_in_chromium(
    reports: dict[str, Path], tmp_path: Path, name: str, plots: int
) -> None:
    report = reports[name]
    text = report.read_text()
    _self_contained(text)
    assert text.count("<svg") >= plots and text.count("<svg") == text.count("<figure>")
    boxes = _rendered(report, tmp_path)
    assert len(boxes) == text.count("<svg")
    for i, box in enumerate(boxes):
        assert box["w"] > 300 and box["h"] > 100, (i, box)
        assert box["drawn"] >= 5, (i, box)  # axes, ticks and the data itself
        assert box["texts"] >= 3, (i, box)  # title and tick labels, as text
    shot = tmp_path / f"{name}.png"
    _browse(report, tmp_path, f"--screenshot={shot}")
    assert shot.stat().st_size > 20_000  # a page with plots, not a blank one
