"""The learn report: one self-contained HTML page (inline SVG) and the JSON it is made from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from stream.reports.html import card, cards, esc, figure, num, page, pct, table
from stream.reports.plots import RC, SERIES, to_svg


def calibration_plot(models: Sequence[Mapping[str, Any]]) -> str:
    """Observed share against predicted probability, per fifth of the held-out leads."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(5.0, 4.0), layout="constrained")
        ax = fig.subplots()
        ax.set_title("Calibration on the newer 30 %", loc="left", fontweight="bold")
        ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1, label="perfect")
        for i, m in enumerate(models):
            points = m["calibration"]
            ax.plot(
                [p["predicted"] for p in points],
                [p["observed"] for p in points],
                marker="o",
                color=SERIES[i % len(SERIES)],
                label=m["label"],
            )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("predicted probability (mean of the fifth)")
        ax.set_ylabel("share with the outcome")
        ax.legend(loc="upper left")
        return to_svg(fig)


def _interval(pair: Sequence[float] | None, digits: int = 1) -> str:
    return "–" if pair is None else f"{num(pair[0], digits)} – {num(pair[1], digits)}"


def _weights_table(rows: Sequence[Mapping[str, Any]], what: str) -> str:
    return table(
        [what, "before", "learned", "95 % interval", "after", "leads with it"],
        [
            (
                r["name"],
                f"{r['before']:g}",
                num(r["learned"]),
                _interval(r["interval"]),
                f"{r['after']:g}",
                r["leads"],
            )
            for r in rows
        ],
    )


def learn_page(s: Mapping[str, Any]) -> str:
    """The whole report."""
    ev = s["evaluation"]
    by = {m["role"]: m for m in ev["models"]}
    cur, cand = by["current"], by["candidate"]
    head = [
        card("leads judged", f"{s['sample']['judged']:,}"),
        card(f"with the outcome '{s['outcome']}'", f"{s['sample']['positive']:,}"),
        card("held-out AUC, current → candidate", f"{num(cur['auc'], 3)} → {num(cand['auc'], 3)}"),
        card(
            f"precision at the current MQL volume ({cur['at_volume']['k']})",
            f"{pct(cur['at_volume']['precision'])} → {pct(cand['at_volume']['precision'])}",
        ),
    ]
    w = s.get("whatif")
    if w:
        head.append(
            card(
                "MQLs on the whole history (what-if)",
                f"{w['baseline_mqls']} → {w['candidate_mqls']}",
            )
        )
    eval_rows = [
        (
            m["label"],
            num(m["auc"], 3),
            _interval(m["auc_interval"], 3),
            m["at_volume"]["hits"],
            pct(m["at_volume"]["precision"]),
            pct(m["at_volume"]["recall"]),
        )
        for m in ev["models"]
    ]
    learned = s["learned"]
    body = [
        f"<p class=note>Current model <code>{esc(s['current'])}</code>, candidate "
        f"<code>{esc(s['candidate']['model'])}</code> written to "
        f"<code>{esc(s['candidate']['path'])}</code>. {s['history']['events']:,} events of "
        f"{s['sample']['leads']:,} leads; {s['sample']['judged']:,} judged at their decision "
        f"({s['sample']['handed']:,} handed over by score, the others at their peak before sales "
        f"answered); {s['sample']['fast_lane']:,} fast-lane leads left out.</p>",
        cards(head),
        "<h2>Held-out evaluation</h2>",
        "<p class=note>Learned on the older 70 % of the decisions "
        f"({ev['train']} leads, {ev['train_positive']} with the outcome), judged on the newer "
        f"30 % ({ev['test']} leads, {ev['test_positive']} with it). Each model ranks by how far a "
        "lead is over its grade's MQL threshold; precision and recall are of each model's top "
        f"{cur['at_volume']['k']} — the number the current model handed over by score.</p>",
        table(
            ["model", "AUC", "95 % interval", "top-k with outcome", "precision", "recall"],
            eval_rows,
        ),
        figure(
            calibration_plot([{**m, "label": m["label"]} for m in ev["models"]]),
            "Share with the outcome against predicted probability, per fifth of the held-out "
            "leads; the rule models' margins mapped to a probability by a logistic fit on the "
            "training part.",
        ),
        "<h2>Points per event type</h2>",
        "<p class=note>Before → learned (fit on every decision), its bootstrap 95 % interval "
        f"({learned['resamples']} resamples), and what the candidate file says (rounded; a type "
        "keeps its group's sign). Type caps scale with the points.</p>",
        _weights_table(s["weights"]["types"], "event type"),
        "<h2>Fit points</h2>",
        _weights_table(s["weights"]["fit"], "profile entry"),
        "<h2>How it was learned</h2>",
        "<p class=note>" + "<br>".join(esc(line) for line in s["candidate"]["comment"]) + "</p>",
    ]
    if w:
        body += [
            "<h2>What-if: current against candidate</h2>",
            f"<p class=note>The whole history replayed under both models: MQLs "
            f"{w['baseline_mqls']} → {w['candidate_mqls']}, handoffs {w['baseline_handoffs']} → "
            f"{w['candidate_handoffs']}, {w['leads_changed']} of {w['leads']} leads on another "
            f"path. Full report: <code>{esc(s['whatif_report'])}</code>.</p>",
        ]
    return page(
        "Learned model: " + s["candidate"]["model"],
        f"leadstream learn, outcome '{s['outcome']}', generated {s['generated_at']}",
        body,
    )
