"""``rescue simulate`` and ``rescue plan``: the network planner's commands."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import typer

from api.cli import app
from api.cli.common import command_settings, fail


def _load(scenario: str, days: float | None, seed: int | None) -> Any:
    from dataclasses import replace

    from simulations.scenario import resolve_scenario

    s = resolve_scenario(scenario)
    if days is not None:
        s = s.with_days(days)
    if seed is not None:
        if seed < 0:
            raise ValueError(f"--seed must be >= 0, got {seed}")
        s = replace(s, seed=seed)
    return s


def _summary_table(summaries: list[Any], title: str) -> Any:
    from rich.table import Table

    from simulations.report import KPI_ROWS, fmt_estimate

    table = Table(title=title)
    table.add_column("KPI")
    for s in summaries:
        table.add_column(f"{s.label or s.scenario}\n({len(s.runs)} rep.)", justify="right")
    for key, name, spec in KPI_ROWS:
        table.add_row(name, *(fmt_estimate(s, key, spec) for s in summaries))
    return table


def _variant(label: str, summary: Any, network: Any) -> Any:
    """A comparison column: the summary with its network's vans and bases."""
    from simulations.report import Variant

    vans = network.vans
    return Variant(label, summary, len(vans), len({v.station_id for v in vans}))


def _comparison_table(variants: list[Any], promise_minutes: float) -> Any:
    """Today's network beside the recommendation (same breakdowns), for the terminal."""
    from rich.table import Table

    from simulations.report import fmt_estimate

    table = Table(title=f"Same breakdowns, same seed: within promise = van on site within "
                  f"{promise_minutes:g} min")  # fmt: skip
    table.add_column("")
    for v in variants:
        table.add_column(v.label, justify="right")
    rows = (
        ("share_within_promise", "Within promise", "{:.1%}"),
        ("arrival_mean_min", "Arrival mean (min)", "{:.1f}"),
        ("arrival_p90_min", "Arrival p90 (min)", "{:.1f}"),
        ("partner_cost_cny", "Partner cost (CNY)", "{:,.0f}"),
    )
    for key, name, spec in rows:
        table.add_row(name, *(fmt_estimate(v.summary, key, spec) for v in variants))
    table.add_row("Vans", *(f"{v.vans:,}" for v in variants))
    table.add_row("Bases", *(f"{v.bases:,}" for v in variants))
    return table


def _policy_table(summaries: list[Any], downtime_cost_per_hour: float) -> Any:
    from rich.table import Table

    from simulations.report import POLICY_KPI_ROWS, fmt_estimate, rank_by_total_cost

    ranked = rank_by_total_cost(summaries)
    table = Table(
        title=f"Replacement booking, ranked by total cost ({downtime_cost_per_hour:,.0f} CNY/h "
        "of needed cargo past its deadline)"
    )
    table.add_column("KPI")
    for rank, s in enumerate(ranked, 1):
        table.add_column(f"{rank}. {s.label or s.scenario}", justify="right")
    for key, name, spec in POLICY_KPI_ROWS:
        table.add_row(name, *(fmt_estimate(s, key, spec) for s in ranked))
    return table


def _offer_table(summaries: list[Any]) -> Any:
    """Partner offers (declines, expiries, partner cost), when the runs report them."""
    from rich.table import Table

    from simulations.report import OFFER_KPI_ROWS, fmt_estimate

    if not all("rescue_offers" in s.runs[0].kpis for s in summaries):
        return None
    table = Table(title="Partner offers (a refusal passes the job to the next partner)")
    table.add_column("KPI")
    for s in summaries:
        table.add_column(f"{s.label or s.scenario}", justify="right")
    for key, name, spec in OFFER_KPI_ROWS:
        table.add_row(name, *(fmt_estimate(s, key, spec) for s in summaries))
    return table


@app.command()
def simulate(
    scenario: str = typer.Argument(
        ..., help="Scenario TOML file or shipped name (national, shandong, mmc_check)"
    ),
    days: float = typer.Option(None, "--days", help="Measured days (default: the scenario's)"),
    seed: int = typer.Option(None, "--seed", help="Root seed (default: the scenario's)"),
    replications: int = typer.Option(None, "--replications", "-r", help="Default: scenario's"),
    backend: str = typer.Option("local", "--backend", help="local (process pool) | ray | serial"),
    workers: int = typer.Option(None, "--workers", help="Local processes (default: CPU count)"),
    sweep: str = typer.Option(
        None,
        "--sweep",
        help="e.g. 'vans=1,2,3;policy=nearest-idle,"
        "batch-optimal' (overrides the scenario's [sweep])",
    ),
    json_out: Path = typer.Option(None, "--json", help="Write the results as JSON"),
    report: Path = typer.Option(None, "--report", help="Write a self-contained HTML report"),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar"),
) -> None:
    """Simulate a scenario (replications, sweeps) and print the KPIs with 95% intervals."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from simulations.runner import BACKENDS, run
    from simulations.scenario import parse_sweep_option

    console = Console(stderr=False)
    try:
        if backend not in BACKENDS:
            raise ValueError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if replications is not None and replications < 1:
            raise ValueError(f"--replications must be >= 1, got {replications}")
        s = _load(scenario, days, seed)
        settings = command_settings()
        table = parse_sweep_option(sweep) if sweep else None
        variants = s.variants(table)
        reps = replications or s.replications
        total = len(variants) * reps
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=quiet,
            transient=True,
        ) as bar:
            task = bar.add_task(f"simulating {s.name}: {total} run(s)", total=total)
            done_runs = [0]

            def finished(_res: Any) -> None:
                done_runs[0] += 1
                bar.update(task, completed=done_runs[0])

            def day(frac: float) -> None:
                bar.update(task, completed=done_runs[0] + frac)

            summaries = run(
                s, replications=reps, sweep=table, backend=backend, workers=workers,
                road_graph=settings.road_graph_source(), ray_address=settings.ray_address,
                progress=finished, on_day=day, cache_dir=settings.tables_cache_dir,
            )  # fmt: skip
    except ValueError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    console.print(_summary_table(summaries, f"{s.name}: {s.horizon_days:g} days"))
    console.print(_policy_table(summaries, s.replacement.downtime_cost_per_hour))
    offers = _offer_table(summaries)
    if offers is not None:
        console.print(offers)
    for sm in summaries:
        pr = sm.by_priority()
        line = ", ".join(f"p{k}: {w / n:.1%}" for k, (n, w) in pr.items() if n)
        console.print(f"[{sm.label or sm.scenario}] within {s.promise.arrival_minutes:g} min by "
                      f"priority: {line}")  # fmt: skip
    if json_out is not None:
        payload = {
            "scenario": s.name,
            "source": s.source,
            "seed": s.seed,
            "horizon_days": s.horizon_days,
            "warmup_days": s.warmup_days,
            "promise_minutes": s.promise.arrival_minutes,
            "backend": backend,
            "variants": [sm.to_dict() for sm in summaries],
        }
        try:
            json_out.write_text(json.dumps(payload, ensure_ascii=False, indent=1), "utf-8")
        except OSError as exc:
            fail(f"--json {json_out}: {exc.strerror}")
        console.print(f"wrote {json_out}")
    if report is not None:
        from simulations.report import html_report

        text = html_report(
            summaries,
            title=f"Simulation: {s.name}",
            promise_minutes=s.promise.arrival_minutes,
            station_names={st.id: st.name for st in s.network.stations},
            comparison=[_variant(sm.label or sm.scenario, sm, v.network)
                        for sm, v in zip(summaries, variants, strict=True)],
            downtime_cost_per_hour=s.replacement.downtime_cost_per_hour,
        )  # fmt: skip
        try:
            report.write_text(text, "utf-8")
        except OSError as exc:
            fail(f"--report {report}: {exc.strerror}")
        console.print(f"wrote {report}")


@app.command()
def plan(
    scenario: str = typer.Argument(..., help="Scenario TOML file or shipped name"),
    objective: str = typer.Option(
        "coverage", "--objective", help="coverage | p-median | min-vans | trucks"
    ),
    bases: int = typer.Option(
        None, "--bases", "--vans", help="Number of van bases p (coverage, p-median)"
    ),
    target: float = typer.Option(0.9, "--target", help="min-vans: share of demand to cover"),
    radius_km: float = typer.Option(None, "--radius-km", help="Covered = within this road km"),
    threshold_min: float = typer.Option(
        None, "--threshold-min", help="Covered = within these road minutes (default: the promise)"
    ),
    fix_existing: bool = typer.Option(
        False, "--fix-existing", help="Keep the current AAA stations as bases"
    ),
    backup: bool = typer.Option(False, "--backup", help="coverage: also value double cover"),
    time_limit: float = typer.Option(60.0, "--time-limit", help="Solver seconds"),
    sim_days: float = typer.Option(
        None,
        "--sim-days",
        help="Days of the check simulation (default 14; trucks: the scenario's horizon)",
    ),
    target_share: float = typer.Option(
        0.95,
        "--target-share",
        help="trucks: share of replacement requests with a truck at the cargo within "
        "--within-hours",
    ),
    within_hours: float = typer.Option(
        4.0, "--within-hours", help="trucks: hours from the request to the truck at the cargo"
    ),
    replications: int = typer.Option(
        None, "--replications", "-r", help="trucks: replications (default: the scenario's)"
    ),
    json_out: Path = typer.Option(None, "--json", help="Write the plan as JSON"),
    report: Path = typer.Option(
        None, "--report", help="Write an HTML report comparing the plan with today's network"
    ),
) -> None:
    """Recommend van bases and van counts (or, --objective trucks, replacement trucks per
    province and type), then simulate the recommendation beside today's network on the same
    breakdowns."""
    from rich.console import Console

    from simulations.plan import plan_bases

    console = Console()
    known = ("coverage", "p-median", "min-vans", "trucks")
    if objective not in known:
        fail(f"--objective must be one of {', '.join(known)}, got {objective!r}")
    if objective == "trucks":
        _plan_trucks(
            console, scenario, target_share=target_share, within_hours=within_hours,
            sim_days=sim_days, replications=replications, json_out=json_out, report=report,
        )  # fmt: skip
        return
    sim_days = 14.0 if sim_days is None else sim_days
    settings = command_settings()
    try:
        s = _load(scenario, None, None)
        with console.status("solving the location model ..."):
            rec = plan_bases(
                s, objective=objective, p=bases, target_share=target, radius_km=radius_km,
                threshold_minutes=threshold_min, fix_existing=fix_existing, backup=backup,
                time_limit_s=time_limit, road_graph=settings.road_graph_source(),
            )  # fmt: skip
        console.print(rec.describe())
        with console.status(f"simulating today's network and the plan for {sim_days:g} days"):
            tables = settings.tables_cache_dir  # as rescue simulate: computed once, then read
            today = rec.simulate(days=sim_days, today=True, cache_dir=tables)
            check = rec.simulate(days=sim_days, cache_dir=tables)
    except (ValueError, ImportError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    est = check.estimate("share_within_promise")
    model = rec.model_coverage_share
    console.print(
        f"model coverage {model:.1%} of demand within {rec.criterion}; simulated share reached "
        f"within {s.promise.arrival_minutes:g} min {est.mean:.1%}, arrival mean "
        f"{check.estimate('arrival_mean_min').mean:.1f} min, p90 "
        f"{check.estimate('arrival_p90_min').mean:.1f} min ({sim_days:g} days)"
    )
    variants = [
        _variant("today's network", today, s.network),
        _variant(f"plan ({objective})", check, rec.network),
    ]
    console.print(_comparison_table(variants, s.promise.arrival_minutes))
    if report is not None:
        from simulations.report import html_report

        text = html_report(
            [today, check],
            title=f"Plan: {s.name} ({objective}, {rec.criterion})",
            promise_minutes=s.promise.arrival_minutes,
            station_names={st.id: st.name for st in s.network.stations},
            comparison=variants,
        )
        try:
            report.write_text(text, "utf-8")
        except OSError as exc:
            fail(f"--report {report}: {exc.strerror}")
        console.print(f"wrote {report}")
    if json_out is not None:
        payload = rec.to_dict()
        payload["simulated"] = {
            k: (None if math.isnan(e.mean) else round(e.mean, 6))
            for k, e in check.estimates().items()
        }
        payload["simulated_today"] = {
            k: (None if math.isnan(e.mean) else round(e.mean, 6))
            for k, e in today.estimates().items()
        }
        try:
            json_out.write_text(json.dumps(payload, ensure_ascii=False, indent=1), "utf-8")
        except OSError as exc:
            fail(f"--json {json_out}: {exc.strerror}")
        console.print(f"wrote {json_out}")


def _plan_trucks(
    console: Any,
    scenario: str,
    *,
    target_share: float,
    within_hours: float,
    sim_days: float | None,
    replications: int | None,
    json_out: Path | None,
    report: Path | None,
) -> None:
    """``rescue plan --objective trucks``: pool sizes per province and truck type, checked by
    simulation (:mod:`simulations.truck_pool`)."""
    from rich.table import Table

    from simulations.truck_pool import check_options, plan_trucks

    try:
        check_options(target_share, within_hours)
        if report is not None:
            raise ValueError("--report is not available for --objective trucks; use --json")
        s = _load(scenario, None, None)
        settings = command_settings()
        days = s.horizon_days if sim_days is None else sim_days
        reps = s.replications if replications is None else replications
        with console.status(
            f"sizing the truck pools: {days:g} days x {reps} replication(s), "
            "unlimited pool, today's pool and the recommendation ..."
        ):
            tp = plan_trucks(
                s, target_share=target_share, within_hours=within_hours, days=sim_days,
                replications=replications, road_graph=settings.road_graph_source(),
                cache_dir=settings.tables_cache_dir,
            )  # fmt: skip
    except (ValueError, ImportError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    console.print(tp.describe())
    names = {c.province: c.name for c in tp.checks}
    pools = Table(title="Replacement trucks per province and type (M/M/c on the measured demand)")
    for col in ("province", "type", "today", "M/M/c", "plan", "req/day", "hold h", "load",
                "no wait", "model"):  # fmt: skip
        pools.add_column(col, justify="left" if col in ("province", "type") else "right")
    for c in tp.cells:
        if not c.requests and not c.today:
            continue
        pools.add_row(
            names.get(c.province, c.province),
            c.truck_type.value,
            f"{c.today}",
            f"{c.erlang_trucks}",
            f"{c.recommended}",
            f"{c.requests_per_day:.2f}",
            f"{c.mean_hold_hours:.1f}",
            f"{c.offered_load:.2f}",
            f"{c.ceiling_share:.1%}" + (" *" if c.travel_limited else ""),
            f"{c.model_share:.1%}",
        )  # fmt: skip
    console.print(pools)
    console.print(
        "M/M/c = the model's count, plan = after the simulated check; no wait = share within "
        "the time with an unlimited pool; model = the M/M/c share with the plan's trucks"
    )
    check = Table(
        title=f"Simulated check, same breakdowns: share of replacement requests with a truck at "
        f"the cargo within {tp.within_hours:g} h"
    )
    for col in ("province", "requests", "today", "recommended", "target", "met"):
        check.add_column(col, justify="left" if col == "province" else "right")
    for pc in tp.checks:
        check.add_row(
            pc.name,
            f"{pc.requests}",
            f"{pc.today_share:.1%} ({pc.today_trucks} trucks)",
            f"{pc.plan_share:.1%} ({pc.plan_trucks} trucks)",
            f"{pc.target:.1%}",
            "yes" if pc.met else "NO",
        )
    console.print(check)
    if any(c.travel_limited for c in tp.cells):
        console.print(
            "* travel-limited: even an unlimited pool at today's depots misses the target; "
            "sized to come within 0.5 points of that ceiling"
        )
    if json_out is not None:
        try:
            json_out.write_text(json.dumps(tp.to_dict(), ensure_ascii=False, indent=1), "utf-8")
        except OSError as exc:
            fail(f"--json {json_out}: {exc.strerror}")
        console.print(f"wrote {json_out}")
