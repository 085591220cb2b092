"""A self-contained HTML report: KPI tables and matplotlib plots embedded as base64 PNGs.

Written for a planner deciding next year's bases: every table says what it counts (the mean
per replication, with a 95% half-width only from two replications on, or totals over all
replications); station charts cover only the stations that serve the scenario's demand;
the province colour scale is fitted to the data and weak provinces are listed first; names
(provinces, stations) are HTML text, never drawn by matplotlib, so they read on a machine
without CJK fonts; a comparison section sets variants (today's network and a recommendation)
side by side on the same random numbers.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulations.results import Summary

_KPI_ROWS = (
    ("breakdowns", "Breakdowns (measured)", "{:,.0f}"),
    ("arrival_mean_min", "Arrival mean (min)", "{:.1f}"),
    ("arrival_p50_min", "Arrival p50 (min)", "{:.1f}"),
    ("arrival_p90_min", "Arrival p90 (min)", "{:.1f}"),
    ("arrival_p95_min", "Arrival p95 (min)", "{:.1f}"),
    ("dispatch_delay_mean_min", "Dispatch delay mean (min)", "{:.1f}"),
    ("travel_mean_min", "Travel mean (min)", "{:.1f}"),
    ("share_within_promise", "Share within promise", "{:.2%}"),
    ("escalated", "Escalated", "{:,.0f}"),
    ("unserved", "Unserved at horizon end", "{:,.0f}"),
    ("tows", "Tows", "{:,.0f}"),
    ("replacement_trips", "Replacement trips", "{:,.0f}"),
    ("replacements_unmatched", "Replacements unmatched", "{:,.0f}"),
    ("cargo_delay_mean_h", "Cargo delay mean (h)", "{:.1f}"),
    ("partner_cost_cny", "Partner cost (CNY)", "{:,.0f}"),
    ("van_utilisation_mean", "Van utilisation mean", "{:.1%}"),
)
KPI_ROWS = _KPI_ROWS
WEAK_SHARE = 0.9
"""Provinces below this share within the promise are flagged (the planners' 90% target)."""
_COMPARISON_ROWS = (
    ("share_within_promise", "Share within promise", "{:.1%}"),
    ("arrival_mean_min", "Arrival mean (min)", "{:.1f}"),
    ("arrival_p90_min", "Arrival p90 (min)", "{:.1f}"),
    ("van_utilisation_mean", "Van utilisation mean (in-region vans)", "{:.1%}"),
    ("partner_cost_cny", "Partner cost per replication (CNY)", "{:,.0f}"),
)


@dataclass(frozen=True)
class Variant:
    """One column of the comparison: a simulated network and its size."""

    label: str
    summary: Summary
    vans: int
    bases: int


def interval_note(replications: int) -> str:
    """What the ± means, or why there is none."""
    if replications >= 2:
        return f"mean per replication ± 95% t-interval half-width over {replications} replications"
    return "one replication: values of that run, no interval (run two or more for one)"


POLICY_KPI_ROWS = (
    ("replacement_trips", "Replacement trips", "{:,.0f}"),
    ("unneeded_trips", "Unneeded trips (repair within the threshold)", "{:,.0f}"),
    ("replacements_released", "Released at the diagnosis", "{:,.0f}"),
    ("replacements_needed", "Cargo that needed a truck", "{:,.0f}"),
    ("cargo_missed", "Needed cargo with no truck or a late one", "{:,.0f}"),
    ("cargo_delay_mean_h", "Cargo delay mean (h)", "{:.1f}"),
    ("cargo_delay_p90_h", "Cargo delay p90 (h)", "{:.1f}"),
    ("partner_cost_cny", "Partner cost (CNY)", "{:,.0f}"),
    ("missed_promise_cost_cny", "Missed-promise cost (CNY)", "{:,.0f}"),
    ("total_cost_cny", "Total cost (CNY)", "{:,.0f}"),
)
"""The replacement booking policy's outcome, one row per KPI."""

OFFER_KPI_ROWS = (
    ("rescue_offers", "Rescue offers made", "{:,.0f}"),
    ("rescue_offer_declines", "Rescue offers declined", "{:,.0f}"),
    ("rescue_offer_expiries", "Rescue offers expired", "{:,.0f}"),
    ("partner_rescue_jobs", "Partner rescue jobs", "{:,.0f}"),
    ("partner_rescue_no_provider", "Requests no provider would take", "{:,.0f}"),
    ("partner_rescue_arrival_mean_min", "Partner arrival after the report, mean (min)", "{:.1f}"),
    ("rescue_decline_delay_mean_min", "Rescue delay added by refusals, mean (min)", "{:.1f}"),
    ("partner_rescue_cost_cny", "Partner rescue cost (CNY)", "{:,.0f}"),
    ("truck_offers", "Truck offers made", "{:,.0f}"),
    ("truck_offer_declines", "Truck offers declined", "{:,.0f}"),
    ("truck_offer_expiries", "Truck offers expired", "{:,.0f}"),
    ("truck_decline_delay_mean_min", "Truck delay added by refusals, mean (min)", "{:.1f}"),
    ("partner_cost_all_cny", "All partner cost: trucks + rescue (CNY)", "{:,.0f}"),
)
"""Offers to partners (``simulations.partner_model``): shown when the runs report them."""


def offer_section(summaries: Sequence[Summary]) -> str:
    """The partner offers' table (HTML), or nothing when the runs did not report offers."""
    if not all("rescue_offers" in s.runs[0].kpis for s in summaries):
        return ""
    reps = min(len(s.runs) for s in summaries)
    parts = [
        "<section id='offers'><h2>Partner offers</h2>",
        "<p>Jobs offered to partner rescue providers (requests no own van took) and "
        "replacement trucks offered to their companies; a refusal (decline, or no answer by "
        "the partner's promised response time) passes the job to the next partner. "
        "Partner rescue arrivals count as on site for the promise.</p>",
    ]
    columns = [f"{s.label or s.scenario} ({len(s.runs)} rep.)" for s in summaries]
    _table(parts, f"Offers: {interval_note(reps)}", ["KPI", *columns])
    for key, name, spec in OFFER_KPI_ROWS:
        _row(parts, [name, *(fmt_estimate(s, key, spec) for s in summaries)])
    parts.append("</table></section>")
    return "".join(parts)


def rank_by_total_cost(summaries: Sequence[Summary]) -> list[Summary]:
    """The variants, cheapest total cost (partner + missed promises) first; stable for ties."""
    return sorted(summaries, key=lambda s: s.estimate("total_cost_cny").mean)


def policy_section(summaries: Sequence[Summary], *, downtime_cost_per_hour: float) -> str:
    """The replacement policies' table, variants ranked by total cost (HTML)."""
    ranked = rank_by_total_cost(summaries)
    parts = [
        "<h2>Replacement booking</h2>",
        f"<p>Variants ranked by total cost: partner cost plus needed cargo's hours past its "
        f"deadline at {downtime_cost_per_hour:,.0f} CNY/h.</p><table><tr><th>KPI</th>",
    ]
    for rank, s in enumerate(ranked, 1):
        parts.append(f"<th>{rank}. {html.escape(s.label or s.scenario)}</th>")
    parts.append("</tr>")
    for key, name, spec in POLICY_KPI_ROWS:
        parts.append(f"<tr><td>{html.escape(name)}</td>")
        parts.extend(f"<td>{html.escape(fmt_estimate(s, key, spec))}</td>" for s in ranked)
        parts.append("</tr>")
    parts.append("</table>")
    return "".join(parts)


def fmt_estimate(summary: Summary, key: str, spec: str) -> str:
    e = summary.estimate(key)
    if math.isnan(e.mean):
        return "-"
    text = spec.format(e.mean)
    if not math.isnan(e.half_width):
        text += " ± " + spec.format(e.half_width).lstrip()
    return text


def color_range(shares: Sequence[float]) -> tuple[float, float]:
    """The colour scale's (low, high): the data's range rounded out to 5 points, at least
    10 points wide, so 82% and 100% differ visibly; (0, 1) without data."""
    vals = [v for v in shares if not math.isnan(v)]
    if not vals:
        return 0.0, 1.0
    low = math.floor(min(vals) * 20) / 20
    high = math.ceil(max(vals) * 20) / 20
    if high - low < 0.1:
        low = max(0.0, high - 0.1)
        high = low + 0.1
    return low, high


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figures(summary: Summary, promise: float) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    from fleet.geography import province_outlines_geojson

    out: list[tuple[str, str]] = []
    arrivals = np.concatenate([r.arrival_minutes for r in summary.runs])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    if len(arrivals):
        top = float(np.quantile(arrivals, 0.995))
        ax.hist(arrivals[arrivals <= top], bins=60, color="#3b7dd8")
    ax.axvline(promise, color="#d33", linestyle="--", label=f"promise {promise:g} min")
    ax.set_xlabel("minutes from report to van on site")
    ax.set_ylabel("breakdowns")
    ax.legend()
    out.append(("Arrival-time distribution", _png(fig)))

    shares = {k: (w / n if n else math.nan) for k, (n, w) in summary.by_province().items()}
    fig, ax = plt.subplots(figsize=(7, 5.5))
    polys: list[np.ndarray] = []
    colors: list[float] = []
    cmap = plt.get_cmap("RdYlGn")
    for feat in province_outlines_geojson()["features"]:
        gb = (feat["properties"].get("gb") or "")[3:]
        geom = feat["geometry"]
        if geom["type"] not in ("Polygon", "MultiPolygon"):
            continue
        polygons = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
        for poly in polygons:
            polys.append(np.asarray(poly[0], dtype=float))
            colors.append(shares.get(gb, math.nan))
    vals = np.array(colors, dtype=float)
    low, high = color_range(list(shares.values()))
    norm = plt.Normalize(low, high)
    face = [cmap(norm(v)) if not math.isnan(v) else (0.9, 0.9, 0.9, 1.0) for v in vals]
    ax.add_collection(PolyCollection(polys, facecolors=face, edgecolors="#555", linewidths=0.3))
    ax.set_xlim(73, 136)
    ax.set_ylim(17, 54)
    ax.set_aspect(1.2)
    ax.set_xticks([])
    ax.set_yticks([])
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=norm)
    fig.colorbar(sm, ax=ax, shrink=0.7, format=lambda x, _: f"{x:.0%}",
                 label=f"share within {promise:g} min, scale fitted to the data "
                 "(grey: no demand)")  # fmt: skip
    out.append(("Share within the promise by province (names in the table below)", _png(fig)))

    util = summary.station_utilisation()
    ok = ~np.isnan(util) & summary.station_serves_demand()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.hist(util[ok] * 100, bins=40, color="#5a9")
    ax.set_xlabel("station van utilisation (%), stations serving this scenario's demand")
    ax.set_ylabel("stations")
    out.append(
        (f"Van utilisation of the {int(ok.sum())} stations that serve the demand", _png(fig))
    )

    fig, ax = plt.subplots(figsize=(7, 3))
    for r in summary.runs[:5]:
        ax.plot(np.arange(len(r.daily_counts)), r.daily_counts, lw=0.8, alpha=0.8,
                label=f"replication {r.replication}")  # fmt: skip
    ax.set_xlabel("measured day")
    ax.set_ylabel("breakdowns per day")
    ax.legend(fontsize=7, loc="upper right")
    out.append(("Daily load (first five replications)", _png(fig)))
    return out


def _table(parts: list[str], caption: str, header: Sequence[str]) -> None:
    parts.append(f"<table><caption>{html.escape(caption)}</caption><tr>")
    parts.extend(f"<th>{html.escape(h)}</th>" for h in header)
    parts.append("</tr>")


def _row(parts: list[str], cells: Sequence[str], css: str = "") -> None:
    attr = f" class='{css}'" if css else ""
    parts.append(f"<tr{attr}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")


def comparison_section(variants: Sequence[Variant], promise_minutes: float) -> str:
    """The variants side by side (the first is the reference); same seeds, same days."""
    parts = ["<section id='comparison'><h2>Comparison on the same random numbers</h2>"]
    reps = min(len(v.summary.runs) for v in variants)
    parts.append(
        f"<p>Each column simulates the same breakdowns (same seeds and days); "
        f"{html.escape(interval_note(reps))}. Within promise = van on site within "
        f"{promise_minutes:g} min of the report.</p>"
    )
    first = variants[0]
    _table(parts, "Per replication, except vans and bases (network size)",
           ["", *(v.label for v in variants), f"{variants[-1].label} - {first.label}"])  # fmt: skip
    for key, name, spec in _COMPARISON_ROWS:
        delta = variants[-1].summary.estimate(key).mean - first.summary.estimate(key).mean
        _row(parts, [name, *(fmt_estimate(v.summary, key, spec) for v in variants),
                     "-" if math.isnan(delta) else f"{delta:+{spec[2:-1]}}"])  # fmt: skip
    _row(
        parts, ["Vans", *(f"{v.vans:,}" for v in variants), f"{variants[-1].vans - first.vans:+,}"]
    )
    _row(parts, ["Bases (stations with vans)", *(f"{v.bases:,}" for v in variants),
                 f"{variants[-1].bases - first.bases:+,}"])  # fmt: skip
    parts.append("</table></section>")
    return "".join(parts)


def html_report(
    summaries: Sequence[Summary],
    *,
    title: str,
    promise_minutes: float,
    station_names: Mapping[str, str] | None = None,
    comparison: Sequence[Variant] = (),
    weak_share: float = WEAK_SHARE,
    downtime_cost_per_hour: float | None = None,
) -> str:
    """The report as one HTML string (no external resources). ``station_names`` turns
    station ids into names; ``comparison`` (two or more variants) adds the side-by-side
    section; ``downtime_cost_per_hour`` adds the replacement policies' section."""
    from fleet.geography import province_name

    names = station_names or {}
    reps = min(len(s.runs) for s in summaries)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,'Noto Sans CJK SC','Microsoft YaHei',sans-serif;"
        "margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
        "caption{text-align:left;font-weight:600;padding:4px 0}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:right}th:first-child,td:first-child{text-align:left}"
        "tr.weak td{background:#fdecea}img{max-width:100%}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if len(comparison) >= 2:
        parts.append(comparison_section(comparison, promise_minutes))
    parts.append("<section id='kpis'><h2>Key figures</h2>")
    columns = [f"{s.label or s.scenario} ({len(s.runs)} rep.)" for s in summaries]
    _table(parts, f"KPIs: {interval_note(reps)}", ["KPI", *columns])
    for key, name, spec in _KPI_ROWS:
        label = name if key != "van_utilisation_mean" else name + " (vans serving the demand)"
        _row(parts, [label, *(fmt_estimate(s, key, spec) for s in summaries)])
    parts.append("</table></section>")
    parts.append(offer_section(summaries))
    if downtime_cost_per_hour is not None:
        parts.append(policy_section(summaries, downtime_cost_per_hour=downtime_cost_per_hour))
    for s in summaries:
        n_reps = len(s.runs)
        parts.append(f"<section class='variant'><h2>{html.escape(s.label or s.scenario)}</h2>")
        _table(parts, f"Share within the promise by priority: totals over all {n_reps} "
               "replications", ["priority", "breakdowns", "within promise", "share"])  # fmt: skip
        for k, (n, w) in s.by_priority().items():
            _row(parts, [k, f"{n:,}", f"{w:,}", f"{w / n:.1%}" if n else "-"])
        parts.append("</table>")
        for caption, png in _figures(s, promise_minutes):
            parts.append(f"<h3>{html.escape(caption)}</h3>")
            parts.append(f"<img alt='{html.escape(caption)}' src='data:image/png;base64,{png}'>")
        provinces = sorted(
            s.by_province().items(), key=lambda kv: (kv[1][1] / kv[1][0]) if kv[1][0] else 2.0
        )
        weak = [k for k, (n, w) in provinces if n and w / n < weak_share]
        parts.append(
            f"<p class='weak-summary'>{len(weak)} province(s) below {weak_share:.0%} within "
            f"the promise" + (": " + html.escape(", ".join(province_name(k) for k in weak))
                              if weak else "") + ".</p>"
        )  # fmt: skip
        _table(parts, f"By province, weakest first: totals over all {n_reps} replications",
               ["province", "breakdowns", "within promise", "share", "flag"])  # fmt: skip
        for k, (n, w) in provinces:
            is_weak = k in weak
            _row(parts, [province_name(k), f"{n:,}", f"{w:,}", f"{w / n:.1%}" if n else "-",
                         f"below {weak_share:.0%}" if is_weak else ""],
                 "weak" if is_weak else "")  # fmt: skip
        parts.append("</table>")
        util = s.station_utilisation()
        serves = s.station_serves_demand()
        ids = s.runs[0].station_ids
        ranked = sorted(
            (i for i in range(len(ids)) if serves[i] and not math.isnan(util[i])),
            key=lambda i: -util[i],
        )[:15]
        _table(parts, "Busiest stations serving the demand: utilisation, mean over "
               f"{n_reps} replication(s)", ["station", "id", "utilisation"])  # fmt: skip
        for i in ranked:
            _row(parts, [names.get(ids[i], ids[i]), ids[i], f"{util[i]:.1%}"])
        parts.append("</table></section>")
    parts.append("</body></html>")
    return "".join(parts)
