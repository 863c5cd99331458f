"""The plots' layout, measured on the drawn figure: nothing a reader needs is covered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from stream.reports import plots


def _drawn(monkeypatch: pytest.MonkeyPatch, build: Callable[[], str]) -> tuple[Figure, Any]:
    """The figure `build` renders, drawn as the SVG is (tight box), and its renderer."""
    figures: list[Figure] = []
    render = plots.to_svg

    def keep(fig: Figure) -> str:
        figures.append(fig)
        return render(fig)

    monkeypatch.setattr(plots, "to_svg", keep)
    build()
    (fig,) = figures
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return fig, canvas.get_renderer()


def _sweep(volumes: list[int]) -> dict[str, Any]:
    thresholds = [20.0 + 5 * i for i in range(len(volumes))]
    return {
        "grade": "A",
        "objective": "f1",
        "current": 35.0,
        "suggested": 45.0,
        "interval": [40.0, 55.0],
        "positives": 12,
        "table": [
            {"threshold": th, "precision": 0.5, "recall": 0.8, "f1": 0.6, "mql_volume": v}
            for th, v in zip(thresholds, volumes, strict=True)
        ],
    }


@pytest.mark.parametrize("volumes", [[60, 50, 38, 38, 38, 30], [2100, 1800, 1295, 1100, 900, 870]])
def test_the_sweep_legend_does_not_cover_the_volume_axis_label(
    monkeypatch: pytest.MonkeyPatch, volumes: list[int]
) -> None:
    fig, renderer = _drawn(monkeypatch, lambda: plots.threshold_sweep(_sweep(volumes)))
    ax, volume = fig.axes
    label = volume.yaxis.label.get_window_extent(renderer)
    legends = [*fig.legends, *(a.get_legend() for a in fig.axes if a.get_legend())]
    assert legends
    for legend in legends:
        assert not legend.get_window_extent(renderer).overlaps(label)
        assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))


def test_sla_marks_on_the_first_touch_plot_do_not_collide(monkeypatch: pytest.MonkeyPatch) -> None:
    hours = [0.5, 2.0, 20.0, 26.0, 30.0, 50.0, 75.0, 120.0, 170.0, 215.0]
    marks = {"SLA 1 h": 1.0, "SLA 4 h": 4.0, "SLA 1 day": 24.0}
    fig, renderer = _drawn(
        monkeypatch,
        lambda: plots.distributions(
            "Time from handoff to the first sales answer",
            {"answered": hours},
            "time",
            "share",
            per=12,
            marks=marks,
            hours=True,
        ),
    )
    (ax,) = fig.axes
    boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_text().strip() in marks]
    assert len(boxes) == 3
    for i, box in enumerate(boxes):
        for other in boxes[i + 1 :]:
            assert not box.overlaps(other)
