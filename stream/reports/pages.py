"""The two reports as pages: headline cards first, then the plots, then the tables behind them.

Built only from the JSON summaries, so the HTML never shows a number the JSON does not hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stream.reports import plots
from stream.reports.html import (
    card,
    cards,
    esc,
    figure,
    interval,
    num,
    page,
    pct,
    table,
    thresholds,
)

SHOWN_CHANGED = 50


def _change(new: float, old: float, pct_value: float | None) -> tuple[str, int]:
    diff = new - old
    if diff == 0:
        return "±0", 0
    text = f"{diff:+g}" + (f" ({pct_value:+.1f} %)" if pct_value is not None else "")
    return text, 1 if diff > 0 else -1


def _replays(s: Mapping[str, Any]) -> str:
    """How the threshold sweep was replayed (the numbers are the same either way)."""
    r = s.get("replays")
    if not r:
        return ""
    how = (
        "only the leads each threshold can change were replayed, the rest taken from a "
        "neighbouring replay"
        if r["strategy"] == "components"
        else esc(r["strategy"])
    )
    return (
        f"<p class=note>Threshold sweep: {r['whole_replays']} whole and "
        f"{r['partial_replays']} partial replays, {r['lines_replayed']:,} lines replayed for "
        f"{r['history_lines']:,} lines of history ({how}).</p>"
    )


def _skipped(s: Mapping[str, Any]) -> str:
    """The bad lines left out of this report (`--skip-bad-lines`), the first ones named."""
    history = s["history"]
    if not history.get("bad_lines"):
        return ""
    named = "".join(
        f"<li><code>{esc(item['where'])}</code>: {esc(item['error'])}</li>"
        for item in history.get("skipped", ())
    )
    more = history["bad_lines"] - len(history.get("skipped", ()))
    return (
        f"<p class=note><b>{history['bad_lines']} bad line(s) of the history were left out</b> "
        "(--skip-bad-lines): every number here comes from the other lines.</p>"
        f"<ul class=note>{named}{f'<li>… and {more} more</li>' if more > 0 else ''}</ul>"
    )


def _weekly(s: Mapping[str, Any], stage: str, title: str, ylabel: str, caption: str) -> str:
    """Baseline and candidate side by side, week by week, for transitions into `stage`."""
    weeks = {side: s["weekly"][side][stage] for side in ("baseline", "candidate")}
    chart = plots.grouped_bars(
        title,
        [w[5:] for w in s["weekly"]["weeks"]],  # MM-DD of each week's Monday
        weeks,
        ylabel=ylabel,
        colors=(plots.BASELINE, plots.CANDIDATE),
    )
    return figure(chart, caption)


def whatif_page(s: Mapping[str, Any]) -> str:
    """The what-if report."""
    b, c, m = s["baseline"], s["candidate"], s["metrics"]
    head = []
    for label, key, metric in (
        ("MQLs", "mqls", "mql"),
        ("sales-ready handoffs", "sales_ready", "sales_ready"),
        ("handoffs to sales (all routes)", "handoffs", "handoffs"),
        ("fast-lane handoffs", "fast_lane", "fast_lane"),
        ("SLA escalations", "sla_breaches", "sla_breaches"),
    ):
        text, direction = _change(c[key], b[key], m.get(f"{metric}_change_pct"))
        head.append(card(f"{label}: {b[key]} → {c[key]}", f"{c[key]}", text, direction))
    head.append(card("leads whose stage path differs", f"{m['leads_changed']}", f"of {m['leads']}"))
    head.append(card("leads with the same path at other times", f"{m['leads_retimed']}"))
    body = [
        f"<p class=note>Baseline <code>{esc(b['model'])}</code> (MQL thresholds "
        f"{esc(thresholds(b['thresholds']))}) against candidate <code>{esc(c['model'])}</code> "
        f"(thresholds {esc(thresholds(c['thresholds']))}), both replayed over the same "
        f"{s['history']['events']:,} events of {s['history']['leads']:,} leads with the "
        "pipeline of <code>leadstream replay</code>.</p>",
        _skipped(s),
        cards(head),
        "<h2>Volume</h2>",
        _weekly(
            s,
            "mql",
            "MQLs per week",
            "MQLs",
            "Transitions into mql, by the ISO week (Monday) of the event that caused them.",
        ),
        _weekly(
            s,
            "sales_ready",
            "Sales-ready handoffs per week",
            "handoffs",
            "Transitions into sales_ready: MQLs with BANT known (route ae) and the fast lane.",
        ),
        "<h2>Sales workload</h2>",
        figure(
            plots.lines_by_day(
                "Handoffs per day, by route/priority",
                s["daily_handoffs"]["days"],
                {side: s["daily_handoffs"][side] for side in ("baseline", "candidate")},
            ),
            "What the SDR and AE queues would have received each day (escalations excluded).",
        ),
        table(
            ["route/priority", "baseline", "candidate"],
            [
                (q, b["handoffs_by_route"].get(q, 0), c["handoffs_by_route"].get(q, 0))
                for q in s["daily_handoffs"]["queues"]
            ],
        ),
        "<h2>Who reaches sales</h2>",
    ]
    grades = sorted({*b["grade_mix_handed_over"], *c["grade_mix_handed_over"]})
    body.append(
        figure(
            plots.grouped_bars(
                "Grade mix of the leads handed to sales",
                grades,
                {
                    "baseline": [b["grade_mix_handed_over"].get(g, 0) for g in grades],
                    "candidate": [c["grade_mix_handed_over"].get(g, 0) for g in grades],
                },
                ylabel="leads",
                colors=(plots.BASELINE, plots.CANDIDATE),
            ),
            "Fit grade at each lead's first handoff (mql or sales_ready).",
        )
    )
    body.append(
        figure(
            plots.distributions(
                "Days from first touch to MQL",
                {"baseline": b["days_to_mql"], "candidate": c["days_to_mql"]},
                "days from the lead's first event to its first MQL",
                "leads that became MQLs, cumulative",
            ),
            "Leads counted, not shares of each side's own MQLs: a model that hands over fewer "
            "leads cannot look faster by dropping its slow ones. "
            f"Median: baseline {num(b['median_days_to_mql'])} d, "
            f"candidate {num(c['median_days_to_mql'])} d.",
        )
    )
    slas = sorted({*b["handoffs_by_sla"], *c["handoffs_by_sla"]})
    body.append(
        figure(
            plots.grouped_bars(
                "Fast lane and SLAs",
                ["fast lane", "SLA escalations", *[f"SLA {x}" for x in slas]],
                {
                    side: [
                        v["fast_lane"],
                        v["sla_breaches"],
                        *[v["handoffs_by_sla"].get(x, 0) for x in slas],
                    ]
                    for side, v in (("baseline", b), ("candidate", c))
                },
                ylabel="count",
                colors=(plots.BASELINE, plots.CANDIDATE),
            ),
            "Fast-lane handoffs, SLA escalations, and handoffs by the SLA they carry.",
        )
    )
    body.append(_changed(s))
    title = "What if: " + c["model"] + " instead of " + b["model"]
    return page(title, f"generated {s['generated_at']}", body)


def _steps(items: list[dict[str, Any]]) -> str:
    rows = []
    for tr in items:
        why = ", ".join(f"{x['type']} {x['value']:.1f}" for x in tr["top_contributors"][:5])
        trig = ", ".join(f"{x['type'] or '?'} @ {(x['at'] or '')[:16]}" for x in tr["triggers"])
        rows.append(
            (
                tr["at"][:16].replace("T", " "),
                f"{tr['from']} → {tr['to']}",
                tr["reason"],
                num(tr["engagement"]),
                "–" if tr["threshold"] is None else f"{tr['threshold']:g}",
                tr["grade"],
                "/".join(x for x in (tr["route"], tr["priority"]) if x) or "–",
                trig or "–",
                why or "–",
            )
        )
    return table(
        ["at", "step", "reason", "engagement", "threshold", "grade", "route", "triggered by",
         "top contributors (per-type points at that instant)"],
        rows,
        left=3,
    )  # fmt: skip


def _changed(s: Mapping[str, Any]) -> str:
    out = [
        f"<h2>Leads whose stage path differs ({s['changed_total']})</h2>",
        "<p class=note>Largest difference first (edit distance between the stage paths, then "
        "the shift of the first handoff). Each lead shows both models' transitions with the "
        "engagement, threshold and grade they were decided on, the events that triggered them "
        "and the per-type points from the ledger at that instant.</p>",
    ]
    if not s["changed"]:
        out.append("<p>No lead's stage path changes: the candidate sends the same leads.</p>")
    for item in s["changed"][:SHOWN_CHANGED]:
        out.append(
            f"<details><summary><b>{esc(item['lead_id'])}</b> — "
            f"{esc(' → '.join(item['baseline_path']) or '(none)')} <i>vs</i> "
            f"{esc(' → '.join(item['candidate_path']) or '(none)')}<br>"
            f"<span class=note>{esc(item['why'])}</span></summary>"
            f"<h3>baseline</h3>{_steps(item['baseline'])}"
            f"<h3>candidate</h3>{_steps(item['candidate'])}</details>"
        )
    if s["changed_total"] > SHOWN_CHANGED:
        out.append(
            f"<p class=note>{s['changed_total'] - SHOWN_CHANGED} more in the JSON summary "
            f"(--json; it lists up to {len(s['changed'])}).</p>"
        )
    retimed = s["retimed"]
    if retimed:
        out.append(
            f"<h2>Same path, other times ({s['metrics']['leads_retimed']})</h2>"
            "<p class=note>Leads that take the same steps under both models, one of them "
            f"earlier or later; median shift {s['metrics']['median_retime_days']:+g} days "
            "(positive: later under the candidate). Largest shift first.</p>"
        )
        out.append(
            table(
                ["lead", "step", "baseline", "candidate", "shift (days)", "engagement b / c"],
                [
                    (
                        r["lead_id"],
                        r["step"],
                        r["baseline_at"][:16].replace("T", " "),
                        r["candidate_at"][:16].replace("T", " "),
                        f"{r['shift_days']:+.2f}",
                        f"{r['baseline_engagement']:.1f} / {r['candidate_engagement']:.1f}",
                    )
                    for r in retimed[:SHOWN_CHANGED]
                ],
                left=4,
            )
        )
    return "".join(out)


def review_page(s: Mapping[str, Any]) -> str:
    """The threshold review."""
    f = s["funnel"]
    target = s["options"]["target"]
    quality = s["quality"][target]["overall"]
    head = [
        card("handed to sales (score or fast lane)", f"{f['counts']['handed_over']}"),
        card("accepted by sales", pct(f["rates"]["accepted"]), interval(f["acceptance_interval"])),
        card("became SQL", pct(f["rates"]["sql"])),
        card("opportunity created", pct(f["rates"]["opportunity"])),
        card("won", pct(f["rates"]["won"])),
        card(f"precision of the thresholds ({target})", pct(quality["precision"]),
             interval(quality["precision_interval"])),
        card(f"recall of the thresholds ({target})", pct(quality["recall"]),
             interval(quality["recall_interval"])),
        card("first sales touch within SLA", pct(s["sla"]["met_rate"])),
    ]  # fmt: skip
    bands = list(s["by_band"])
    body = [
        f"<p class=note>Model <code>{esc(s['model'])}</code>, MQL thresholds "
        f"{esc(thresholds(s['thresholds']))}; {s['history']['events']:,} events of "
        f"{s['history']['leads']:,} leads; objective {esc(s['options']['objective'])} against "
        f"“{esc(target)}”. Intervals are 95 % (Wilson for rates, bootstrap for thresholds).</p>",
        _replays(s),
        _skipped(s),
        cards(head),
        "<h2>Suggested thresholds</h2>",
        _suggestions(s),
        "<h2>Funnel by score band</h2>",
        figure(
            plots.grouped_bars(
                "Share of handed-over leads reaching each outcome, by engagement at handoff",
                bands,
                {
                    k: [s["by_band"][band]["rates"][k] or 0.0 for band in bands]
                    for k in ("accepted", "sql", "opportunity", "won")
                },
                percent=True,
            ),
            "Engagement band at the lead's first handoff; leads in each band: "
            + ", ".join(f"{band} {s['by_band'][band]['counts']['handed_over']}" for band in bands),
        ),
        _funnel_table("band", s["by_band"]),
        "<h2>Funnel by grade</h2>",
        _funnel_table("grade", s["by_grade"]),
        "<h2>Why sales said no</h2>",
    ]
    reasons = sorted({r for c in s["rejections_by_band"].values() for r in c})
    rej_bands = [band for band in bands if band in s["rejections_by_band"]]
    body.append(
        figure(
            plots.stacked_bars(
                "Rejection reasons by engagement band",
                rej_bands,
                {
                    r: [s["rejections_by_band"][band].get(r, 0) for band in rej_bands]
                    for r in reasons
                },
                "rejections",
            ),
            "sales.rejected events after a handoff, by their reason.",
        )
    )
    sla = s["sla"]
    body.append("<h2>Time to first sales touch</h2>")
    body.append(
        figure(
            plots.distributions(
                "Time from handoff to the first sales answer",
                {"handoffs answered": sla["hours_to_first_touch"]},
                "time from handoff to the first answer (logarithmic above 1 h)",
                "share of handoffs with an SLA, cumulative",
                per=sla["met"] + sla["missed"] + sla["untouched"],
                marks={"SLA 1 h": 1.0, "SLA 4 h": 4.0, "SLA 1 day": 24.0},
                hours=True,
            ),
            "Shares of every handoff with an SLA, so the curve stops below 100 % by the ones "
            f"never answered. Within SLA {sla['met']}, late {sla['missed']}, never answered "
            f"{sla['untouched']}; {sla['escalations']} SLA escalations in the replay.",
        )
    )
    body.append("<h2>Precision and recall of the current thresholds</h2>")
    rows = []
    for tgt, per in s["quality"].items():
        for scope, q in per.items():
            rows.append(
                (
                    tgt,
                    scope,
                    q["tp"],
                    q["fp"],
                    q["fn"],
                    f"{pct(q['precision'])} ({interval(q['precision_interval'])})",
                    f"{pct(q['recall'])} ({interval(q['recall_interval'])})",
                )
            )
    body.append(
        table(
            ["outcome", "grade", "MQL & yes", "MQL & no", "missed", "precision", "recall"], rows, 2
        )
    )
    body.append(
        "<p class=note>Leads of graded thresholds that did not come through the fast lane. "
        "“Missed”: the outcome happened although the lead never became an MQL by score.</p>"
    )
    return page("Threshold review: " + s["model"], f"generated {s['generated_at']}", body)


def _funnel_table(label: str, groups: Mapping[str, Any]) -> str:
    rows = []
    for name, g in groups.items():
        n = g["counts"]
        r = g["rates"]
        rows.append(
            (
                name,
                n["handed_over"],
                f"{n['accepted']} ({pct(r['accepted'])})",
                interval(g["acceptance_interval"]),
                f"{n['sql']} ({pct(r['sql'])})",
                f"{n['opportunity']} ({pct(r['opportunity'])})",
                f"{n['won']} ({pct(r['won'])})",
            )
        )
    return table(
        [label, "handed over", "accepted", "accepted 95 %", "SQL", "opportunity", "won"], rows
    )


def _suggestions(s: Mapping[str, Any]) -> str:
    out = []
    rows = []
    for grade, sg in s["suggestions"].items():
        rows.append(
            (
                grade,
                f"{sg['current']:g}",
                "history cannot tell" if sg["suggested"] is None else f"{sg['suggested']:g}",
                interval(sg["interval"], percent=False),
                f"{sg['leads']} ({sg['positives']} good)",
                pct(sg["precision"]),
                pct(sg["recall"]),
            )
        )
    out.append(
        table(
            [
                "grade",
                "current",
                "suggested",
                "95 % interval",
                "leads judged",
                "precision",
                "recall",
            ],
            rows,
        )
    )
    volume = s["suggested_volume"]
    if volume:
        out.append(
            f"<p>With thresholds {esc(thresholds(volume['thresholds']))} the same history gives "
            f"<b>{volume['candidate_mqls']}</b> MQLs instead of {volume['baseline_mqls']} "
            f"({esc(volume['mql_change_pct'])} %), {volume['leads_changed']} leads on another "
            "path (a what-if of the current model against the suggested one).</p>"
        )
    for sg in s["suggestions"].values():
        if sg["table"]:
            out.append(
                figure(
                    plots.threshold_sweep(sg),
                    "Each point is a replay of the history with this grade's threshold changed; "
                    "grey bars: MQLs of that replay; shaded: the suggestion's 95 % interval.",
                )
            )
    return "".join(out)
