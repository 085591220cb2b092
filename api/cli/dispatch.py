"""``rescue dispatch``: run one dispatch cycle against the database and print the decisions
(van assignments, why others wait, partner offers made: truck and rescue, with the partner and
the expiry; offers that lapsed);
``--loop`` runs a dispatch worker (:mod:`api.dispatching.worker`), ``--regions N`` per region."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

import typer

from api.cli import app
from api.cli.common import DB_OPTION, clear_errors, database_url, fail

if TYPE_CHECKING:
    from api.dispatching.decisions import CycleResult


@app.command("dispatch")
def dispatch_once(
    db: str | None = DB_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the whole result as JSON"),
    great_circle: bool = typer.Option(
        False, "--great-circle", help="Great-circle travel times instead of the road graph"
    ),
    loop: bool = typer.Option(
        False,
        "--loop",
        help="Run as a dispatch worker: a pass every --interval seconds until interrupted "
        "(start several, on one or several machines, with the same --regions)",
    ),
    regions: int = typer.Option(
        None,
        "--regions",
        min=1,
        help="Dispatch each of N regions (groups of provinces) under its own lock, then the "
        "border cycle (default RESCUE_DISPATCH_REGIONS, 1 = whole network)",
    ),
    interval: float = typer.Option(
        None,
        "--interval",
        min=0.1,
        help="--loop: seconds between passes (default RESCUE_DISPATCH_INTERVAL_S)",
    ),
    until_idle: bool = typer.Option(
        False,
        "--until-idle",
        help="--loop: stop after a pass that led every region and decided nothing",
    ),
) -> None:
    """Run one dispatch cycle now (van matching and replacement bookings) and print what was
    assigned, booked, and why the others were not; or run a worker (--loop)."""
    from api.db.engine import make_engine, session_factory
    from api.db.migrate import current_revision, head_revision
    from api.dispatching.cycle import CyclePolicy, run_cycle
    from api.dispatching.travel import travel_provider
    from api.dispatching.worker import DispatchWorker
    from api.partners.service import OfferPolicy
    from api.settings import get_settings

    with clear_errors():
        update: dict[str, object] = {"database_url": database_url(db)}
        if great_circle:
            update["travel_provider"] = "great_circle"
        if regions is not None:
            update["dispatch_regions"] = regions
        if interval is not None:
            update["dispatch_interval_s"] = interval
        settings = get_settings().model_copy(update=update)
        engine = make_engine(settings.database_url)
        if current_revision(engine) != head_revision():
            fail("the database schema is missing or old: run `rescue seed` or `rescue serve`")
        if loop or settings.dispatch_regions > 1:
            worker = DispatchWorker(settings, factory=session_factory(engine), actor="cli")
            if not loop:
                for result in worker.run_pass():
                    _print_result(result, as_json)
            else:

                def print_decided(results: list[CycleResult]) -> None:
                    for r in results:
                        if r.decided or r.conflicts:
                            _print_result(r, as_json)

                worker.run(until_idle=until_idle, on_pass=print_decided)
            engine.dispose()
            return
        provider, name = travel_provider(settings)
        result = run_cycle(
            factory=session_factory(engine),
            provider=provider,
            provider_name=name,
            policy=CyclePolicy.from_settings(settings),
            actor="cli",
            record=True,
            offers=OfferPolicy.from_settings(settings),
        )
        engine.dispose()
    _print_result(result, as_json)


def _print_result(result: CycleResult, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result.as_dict() | {"region": result.region}, default=str))
        return
    if not result.ran:
        typer.echo(f"skipped: {result.skipped_reason}")
        return
    region = f" region {result.region}" if result.region else ""
    typer.echo(
        f"cycle {result.cycle_id}{region}: {result.open_requests} waiting, "
        f"{result.free_vans} free vans on shift, {result.provider} times, {result.seconds:.2f} s"
    )
    for a in result.assigned:
        typer.echo(
            f"  assigned {a.request_id} -> van {a.van_id} "
            f"(ETA {a.eta_minutes:.0f} min, {a.travel_km:.0f} km"
            f"{', designated station' if a.designated else ''})"
        )
    for u in result.unassigned:
        typer.echo(f"  waiting  {u.request_id}: {u.reason} - {u.suggestion}")
    for b in result.booked:
        typer.echo(
            f"  booked   {b.request_id} -> truck {b.truck_id} of {b.partner_id} "
            f"({b.cost_cny:.0f} CNY, {b.lateness_minutes:.0f} min late)"
        )
    for n in result.unmatched:
        typer.echo(f"  no truck {n.request_id}: {n.reason} - {n.detail}")
    for o in result.offered:
        what = f"truck {o.truck_id}" if o.truck_id else f"provider {o.provider_id}"
        eta = (
            f"ETA {o.proposed_eta_minutes:.0f} min, " if o.proposed_eta_minutes is not None else ""
        )
        cost = f"{o.cost_cny:.0f} CNY, " if o.cost_cny is not None else ""
        at = o.expires_at if o.expires_at.tzinfo else o.expires_at.replace(tzinfo=dt.UTC)
        expires = at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        typer.echo(
            f"  offered  {o.request_id} -> {what} of partner {o.partner_id} "
            f"({o.kind} offer {o.offer_id}, {eta}{cost}expires {expires})"
        )
    for offer_id in result.expired:
        typer.echo(f"  expired  offer {offer_id}: unanswered past its expiry, counts as declined")
    for c in result.conflicts:
        typer.echo(f"  conflict {c}")
    if not (
        result.assigned or result.unassigned or result.booked or result.unmatched
        or result.offered or result.expired
    ):  # fmt: skip
        typer.echo("  nothing to decide")
