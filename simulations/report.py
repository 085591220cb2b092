"""A self-contained HTML report: KPI tables and matplotlib plots embedded as base64 PNGs."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
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
    face = [cmap(v) if not math.isnan(v) else (0.9, 0.9, 0.9, 1.0) for v in vals]
    ax.add_collection(PolyCollection(polys, facecolors=face, edgecolors="#555", linewidths=0.3))
    ax.set_xlim(73, 136)
    ax.set_ylim(17, 54)
    ax.set_aspect(1.2)
    ax.set_xticks([])
    ax.set_yticks([])
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1))
    fig.colorbar(sm, ax=ax, shrink=0.7, label=f"share within {promise:g} min (grey: no demand)")
    out.append(("Share within the promise by province", _png(fig)))

    util = summary.station_utilisation()
    ok = ~np.isnan(util)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].hist(util[ok] * 100, bins=40, color="#5a9")
    axes[0].set_xlabel("station van utilisation (%)")
    axes[0].set_ylabel("stations")
    ids = np.array(summary.runs[0].station_ids)[ok]
    busiest = np.argsort(util[ok])[::-1][:15]
    axes[1].barh(ids[busiest][::-1], util[ok][busiest][::-1] * 100, color="#5a9")
    axes[1].set_xlabel("busiest stations: utilisation (%)")
    axes[1].tick_params(axis="y", labelsize=7)
    out.append(("Van utilisation by station", _png(fig)))

    fig, ax = plt.subplots(figsize=(7, 3))
    for r in summary.runs[:5]:
        ax.plot(np.arange(len(r.daily_counts)), r.daily_counts, lw=0.8, alpha=0.8)
    ax.set_xlabel("measured day")
    ax.set_ylabel("breakdowns")
    out.append(("Daily load (first replications)", _png(fig)))
    return out


def html_report(
    summaries: Sequence[Summary],
    *,
    title: str,
    promise_minutes: float,
    downtime_cost_per_hour: float | None = None,
) -> str:
    """The report as one HTML string (no external resources); with ``downtime_cost_per_hour``
    also the replacement policies' section."""
    from fleet.geography import province_name

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:right}th:first-child,td:first-child{text-align:left}"
        "img{max-width:100%}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p>Means over replications with 95% t-based confidence half-widths.</p>",
        "<table><tr><th>KPI</th>",
    ]
    for s in summaries:
        parts.append(f"<th>{html.escape(s.label or s.scenario)} ({len(s.runs)} rep.)</th>")
    parts.append("</tr>")
    for key, name, spec in _KPI_ROWS:
        parts.append(f"<tr><td>{html.escape(name)}</td>")
        for s in summaries:
            parts.append(f"<td>{html.escape(fmt_estimate(s, key, spec))}</td>")
        parts.append("</tr>")
    parts.append("</table>")
    if downtime_cost_per_hour is not None:
        parts.append(policy_section(summaries, downtime_cost_per_hour=downtime_cost_per_hour))
    for s in summaries:
        parts.append(f"<h2>{html.escape(s.label or s.scenario)}</h2>")
        parts.append("<h3>Share within the promise by priority</h3><table>")
        parts.append("<tr><th>priority</th><th>breakdowns</th><th>share</th></tr>")
        for k, (n, w) in s.by_priority().items():
            parts.append(f"<tr><td>{k}</td><td>{n:,}</td><td>{w / n:.1%}</td></tr>")
        parts.append("</table>")
        for caption, png in _figures(s, promise_minutes):
            parts.append(f"<h3>{html.escape(caption)}</h3>")
            parts.append(f"<img alt='{html.escape(caption)}' src='data:image/png;base64,{png}'>")
        parts.append("<h3>By province</h3><table><tr><th>province</th><th>breakdowns</th>")
        parts.append("<th>share within promise</th></tr>")
        for k, (n, w) in s.by_province().items():
            share = f"{w / n:.1%}" if n else "-"
            parts.append(
                f"<tr><td>{html.escape(province_name(k))}</td><td>{n:,}</td><td>{share}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)
