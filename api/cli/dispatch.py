"""``rescue dispatch``: run one dispatch cycle against the database and print the decisions."""

from __future__ import annotations

import json

import typer

from api.cli import app
from api.cli.common import DB_OPTION, clear_errors, database_url, fail


@app.command("dispatch")
def dispatch_once(
    db: str | None = DB_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the whole result as JSON"),
    great_circle: bool = typer.Option(
        False, "--great-circle", help="Great-circle travel times instead of the road graph"
    ),
) -> None:
    """Run one dispatch cycle now (van matching and replacement bookings) and print what was
    assigned, booked, and why the others were not."""
    from api.db.engine import make_engine, session_factory
    from api.db.migrate import current_revision, head_revision
    from api.dispatching.cycle import match_params, run_cycle
    from api.dispatching.travel import travel_provider
    from api.settings import get_settings

    with clear_errors():
        settings = get_settings().model_copy(
            update={"database_url": database_url(db)}
            | ({"travel_provider": "great_circle"} if great_circle else {})
        )
        engine = make_engine(settings.database_url)
        if current_revision(engine) != head_revision():
            fail("the database schema is missing or old: run `rescue seed` or `rescue serve`")
        provider, name = travel_provider(settings)
        result = run_cycle(
            factory=session_factory(engine),
            provider=provider,
            provider_name=name,
            respect_shifts=settings.respect_shifts,
            actor="cli",
            match_params=match_params(settings),
            record=True,
        )
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(result.as_dict(), default=str))
        return
    if not result.ran:
        typer.echo(f"skipped: {result.skipped_reason}")
        return
    typer.echo(
        f"cycle {result.cycle_id}: {result.open_requests} waiting, {result.free_vans} free vans "
        f"on shift, {result.provider} times, {result.seconds:.2f} s"
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
    for c in result.conflicts:
        typer.echo(f"  conflict {c}")
    if not (result.assigned or result.unassigned or result.booked or result.unmatched):
        typer.echo("  nothing to decide")
