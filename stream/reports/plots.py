"""The reports' plots: matplotlib figures rendered to inline SVG strings.

Figures are built with `matplotlib.figure.Figure` directly, never pyplot: no global state, no
GUI backend, safe in any process. The SVG keeps text as text (`svg.fonttype: none`, so it
stays sharp and searchable) and is deterministic (fixed hash salt, no date), so the same
history gives the same report bytes apart from the generation time printed in the page.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import matplotlib.ticker
import matplotlib.transforms
from matplotlib.figure import Figure

BASELINE, CANDIDATE = "#4c72b0", "#dd8452"
SERIES = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b2", "#937860", "#da8bc3")
RC: Any = {  # matplotlib types rc keys as literals; this is a plain mapping of them
    "svg.fonttype": "none",
    "svg.hashsalt": "leadstream",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#e5e5e5",
    "legend.frameon": False,
}


def to_svg(fig: Figure) -> str:
    """The figure as an `<svg>` element ready to inline in HTML (no XML prolog, no size in
    points: the page's CSS sizes it)."""
    buffer = io.StringIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", text, count=1)


def _figure(width: float = 7.5, height: float = 3.0, cols: int = 1) -> tuple[Figure, list[Any]]:
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(1, cols, squeeze=False)[0]
    return fig, list(axes)


def _empty(ax: Any, text: str = "nothing in this history") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#777")
    ax.set_xticks([])
    ax.set_yticks([])


def grouped_bars(
    title: str,
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    ylabel: str = "",
    colors: Sequence[str] = SERIES,
    percent: bool = False,
    width: float = 7.5,
) -> str:
    """Bars per category, one colour per series (baseline vs candidate, or outcomes)."""
    with matplotlib.rc_context(RC):
        fig, (ax,) = _figure(width)
        ax.set_title(title, loc="left", fontweight="bold")
        if not categories:
            _empty(ax)
            return to_svg(fig)
        n = max(1, len(series))
        step = 0.8 / n
        for i, (name, values) in enumerate(series.items()):
            xs = [x - 0.4 + step * (i + 0.5) for x in range(len(categories))]
            bars = ax.bar(xs, values, step * 0.95, label=name, color=colors[i % len(colors)])
            if len(categories) * n <= 40:
                labels = [f"{v:.0%}" if percent else f"{v:g}" for v in values]
                ax.bar_label(bars, labels, fontsize=7, padding=1)
        ax.set_xticks(range(len(categories)), categories, rotation=30 if len(categories) > 8 else 0)
        if percent:
            ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_ylabel(ylabel)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return to_svg(fig)


def stacked_bars(
    title: str, categories: Sequence[str], series: Mapping[str, Sequence[float]], ylabel: str
) -> str:
    """Stacked bars per category (rejection reasons by band)."""
    with matplotlib.rc_context(RC):
        fig, (ax,) = _figure()
        ax.set_title(title, loc="left", fontweight="bold")
        if not categories or not series:
            _empty(ax, "no rejections in this history")
            return to_svg(fig)
        bottom = [0.0] * len(categories)
        for i, (name, values) in enumerate(series.items()):
            ax.bar(categories, values, 0.6, bottom=bottom, label=name, color=SERIES[i % 7])
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_ylabel(ylabel)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return to_svg(fig)


def lines_by_day(
    title: str, days: Sequence[str], sides: Mapping[str, Mapping[str, Sequence[int]]]
) -> str:
    """Handoffs per day per queue: one small panel per queue (three to a row, every queue
    shown), baseline solid, candidate dashed."""
    queues = sorted({q for per in sides.values() for q in per})
    cols = max(1, min(len(queues), 3))
    rows = max(1, -(-len(queues) // cols))
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(7.5, 2.4 * rows), layout="constrained")
        axes = list(fig.subplots(rows, cols, squeeze=False).flat)
        fig.suptitle(title, x=0.01, ha="left", fontweight="bold", fontsize=9)
        if not queues or not days:
            _empty(axes[0])
            return to_svg(fig)
        xs = list(range(len(days)))
        tick_every = max(1, -(-len(days) // (9 // cols)))
        for ax, queue in zip(axes, queues, strict=False):
            for (side, per), color, style in zip(
                sides.items(), (BASELINE, CANDIDATE), ("-", "--"), strict=False
            ):
                ax.plot(xs, per.get(queue, [0] * len(days)), style, color=color, label=side, lw=1.4)
            ax.set_title(queue, fontsize=8)
            ax.set_xticks(xs[::tick_every], [d[5:] for d in days[::tick_every]], fontsize=7)
        for ax in axes[len(queues) :]:
            ax.set_visible(False)
        for row in range(rows):
            axes[row * cols].set_ylabel("handoffs per day")
        axes[0].legend(loc="upper right", fontsize=7)
        return to_svg(fig)


HOUR_TICKS = (
    (0.0, "0"), (1.0, "1 h"), (4.0, "4 h"), (24.0, "1 d"), (72.0, "3 d"), (168.0, "1 w"),
    (336.0, "2 w"), (720.0, "30 d"), (2160.0, "90 d"),
)  # fmt: skip


def cumulative(values: Sequence[float], per: int | None = None) -> tuple[list[float], list[float]]:
    """The points of a cumulative step curve: how many values are at or below each x, as a
    count, or as a share of `per` (a population both curves of one plot share, so a side
    with fewer values can never look faster just because its own total is smaller)."""
    ordered = sorted(values)
    return ordered, [(i + 1) / per if per else float(i + 1) for i in range(len(ordered))]


def distributions(
    title: str,
    values: Mapping[str, Sequence[float]],
    xlabel: str,
    ylabel: str,
    *,
    per: int | None = None,
    marks: Mapping[str, float] | None = None,
    hours: bool = False,
) -> str:
    """Cumulative step curves (time to MQL, hours to first sales touch), counts or shares of
    one common population `per`; `marks` draws vertical reference lines (SLAs), named on the
    top of the plot; `hours` makes x an hours axis from minutes to weeks (linear below 1 h,
    logarithmic above, ticks at 1 h, 4 h, 1 d, 3 d, 1 w …), so marks at 1 h and 4 h do not fall
    on top of each other as they did on a linear axis of 200 hours."""
    with matplotlib.rc_context(RC):
        fig, (ax,) = _figure()
        ax.set_title(title, loc="left", fontweight="bold")
        if not any(values.values()):
            _empty(ax)
            return to_svg(fig)
        for (name, data), color in zip(
            values.items(), (BASELINE, CANDIDATE, *SERIES[2:]), strict=False
        ):
            if not data:
                continue
            xs, ys = cumulative(data, per)
            ax.step(xs, ys, where="post", color=color, label=f"{name} (n={len(xs)})")
        if hours:
            longest = max(max(data, default=0.0) for data in values.values())
            ax.set_xscale("symlog", linthresh=1.0)
            ticks = [(h, text) for h, text in HOUR_TICKS if h <= max(longest, 24.0) * 1.5]
            ax.set_xticks([h for h, _ in ticks], [text for _, text in ticks])
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.set_xlim(left=0)
        over = matplotlib.transforms.blended_transform_factory(ax.transData, ax.transAxes)
        for label, x in (marks or {}).items():
            ax.axvline(x, color="#c44e52", lw=1, ls=":")
            ax.text(x, 1.0, f" {label}", color="#c44e52", fontsize=7, va="top", transform=over)
        if per:
            ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(loc="lower right")
        return to_svg(fig)


def threshold_sweep(suggestion: Mapping[str, Any]) -> str:
    """Precision, recall and F1 against the threshold of one grade, with the current and the
    suggested threshold, the suggestion's interval, and the MQL volume on a second axis.

    The legend sits under the plot, outside both axes: beside it, it covered the right axis's
    label as soon as the volumes had three or four digits."""
    table = suggestion["table"]
    with matplotlib.rc_context(RC):
        fig, (ax,) = _figure(7.5, 3.6)
        ax.set_title(
            f"Grade {suggestion['grade']}: threshold against {suggestion['objective']}",
            loc="left",
            fontweight="bold",
        )
        xs = [row["threshold"] for row in table]
        volume = ax.twinx()
        volume.bar(
            xs, [row["mql_volume"] for row in table], 0.8, color="#999", alpha=0.25,
            label="MQLs in history (right axis)",
        )  # fmt: skip
        volume.set_ylabel("MQLs in history (all grades)", color="#777")
        volume.grid(False)
        for key, color in (("precision", SERIES[0]), ("recall", SERIES[2]), ("f1", SERIES[3])):
            ys = [row[key] if row[key] is not None else float("nan") for row in table]
            ax.plot(xs, ys, "o-", ms=2.5, color=color, label=key, lw=1.4)
        ax.set_ylim(0, 1.05)
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_xlabel(f"MQL engagement threshold, grade {suggestion['grade']}")
        ax.axvline(suggestion["current"], color="#555", ls="--", lw=1, label="current")
        if suggestion["interval"]:
            low, high = suggestion["interval"]
            ax.axvspan(
                low - 0.3, high + 0.3, color=SERIES[3], alpha=0.12, lw=0, label="95 % interval"
            )
        if suggestion["suggested"] is not None:
            ax.axvline(suggestion["suggested"], color=SERIES[3], lw=1.5, label="suggested")
        else:
            ax.text(
                0.5,
                0.55,
                f"no suggestion: {suggestion['positives']} good lead(s) of this grade in history",
                ha="center",
                transform=ax.transAxes,
                color="#777",
            )
        ax.set_zorder(volume.get_zorder() + 1)
        ax.patch.set_visible(False)
        handles, labels = ax.get_legend_handles_labels()
        more, more_labels = volume.get_legend_handles_labels()
        fig.legend(
            handles + more, labels + more_labels, loc="outside lower center", ncol=4, fontsize=8
        )
        return to_svg(fig)
