"""Self-contained HTML pages: inline CSS and SVG, no script, no font or network request.

A report is mailed, attached to a pull request or opened from a CI artifact; it must show the
same everywhere, offline. Every value that came from the history is escaped here.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
 margin:0;color:#222;background:#fafafa}
main{max-width:1080px;margin:0 auto;padding:24px 28px 60px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:32px 0 8px;border-bottom:1px solid #ddd;
 padding-bottom:4px}h3{font-size:14px;margin:18px 0 6px}
.sub{color:#666;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:20px}.card span{color:#666;font-size:12px}
.up{color:#9a5b00}.down{color:#245d8f}
figure{background:#fff;border:1px solid #e3e3e3;border-radius:6px;margin:12px 0;padding:8px}
figure svg{width:100%;height:auto;display:block}
figcaption{color:#666;font-size:12px;padding:4px 6px 0}
table{border-collapse:collapse;background:#fff;margin:8px 0;font-size:13px}
th,td{border:1px solid #e3e3e3;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f1f1f1}td.l,th.l{text-align:left}
details{background:#fff;border:1px solid #e3e3e3;border-radius:6px;margin:6px 0;padding:6px 10px}
summary{cursor:pointer}code{font-size:12px}
.note{color:#555;font-size:13px}
"""


def esc(value: Any) -> str:
    """Any value as escaped text (None as an en dash)."""
    return "–" if value is None else html.escape(str(value), quote=True)


def num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def pct(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f} %"


def interval(pair: Sequence[float] | None, percent: bool = True) -> str:
    if pair is None:
        return "–"
    low, high = pair
    return f"{pct(low)} – {pct(high)}" if percent else f"{low:g} – {high:g}"


def thresholds(values: dict[str, float]) -> str:
    """MQL thresholds as people write them: `A 35, B 45`."""
    return ", ".join(f"{grade} {value:g}" for grade, value in values.items()) or "none"


def card(label: str, value: str, change: str = "", direction: int = 0) -> str:
    cls = {1: "up", -1: "down"}.get(direction, "")
    extra = f' <em class="{cls}">{esc(change)}</em>' if change else ""
    return f"<div class=card><b>{esc(value)}{extra}</b><span>{esc(label)}</span></div>"


def cards(items: Iterable[str]) -> str:
    return "<div class=cards>" + "".join(items) + "</div>"


def figure(svg: str, caption: str) -> str:
    """A plot (an `<svg>` from plots.to_svg, trusted: we made it) with its caption."""
    return f"<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], left: int = 1) -> str:
    """A table; the first `left` columns are left-aligned text, the rest numbers."""

    def cell(tag: str, i: int, value: Any) -> str:
        cls = " class=l" if i < left else ""
        return f"<{tag}{cls}>{esc(value)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, subtitle: str, body: Iterable[str]) -> str:
    """The whole document."""
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{esc(title)}</h1><p class=sub>{esc(subtitle)}</p>"
        + "".join(body)
        + "</main></body></html>\n"
    )
