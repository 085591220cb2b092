"""``rescue serve``, ``rescue seed``, ``rescue network`` (tokens: ``api/cli/tokens.py``)."""

from __future__ import annotations

import json

import typer

from api.cli import app
from api.cli.common import DB_OPTION, clear_errors, database_url, fail


def _prepare_database(url: str, scenario: str | None, *, seed_if_empty: bool) -> dict[str, int]:
    from api.db.engine import make_engine, session_factory, transaction
    from api.db.migrate import upgrade
    from api.network.seeding import is_seeded, network_counts, seed_network
    from fleet.scenario import resolve_network

    engine = make_engine(url)
    upgrade(engine)
    factory = session_factory(engine)
    with transaction(factory) as db:
        if seed_if_empty and not is_seeded(db_session=db):
            from api.settings import get_settings

            name = scenario or get_settings().scenario
            seed_network(db_session=db, network=resolve_network(name), source=name)
        counts = network_counts(db_session=db)
    engine.dispose()
    return counts


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to bind (default RESCUE_HOST or 127.0.0.1)"),
    port: int = typer.Option(None, help="Port (default RESCUE_PORT or 8000)"),
    db: str | None = DB_OPTION,
    scenario: str | None = typer.Option(
        None, help="Network to seed when the database is empty (default RESCUE_SCENARIO)"
    ),
) -> None:
    """Migrate the database, seed the national network if it is empty, and serve the API
    (OpenAPI at /docs, console at /console)."""
    import logging

    import uvicorn

    from api.app import create_app
    from api.logging_setup import log_config
    from api.settings import get_settings

    with clear_errors():
        settings = get_settings().model_copy(
            update={
                k: v
                for k, v in {"host": host, "port": port, "database_url": db}.items()
                if v is not None
            }
        )
        counts = _prepare_database(settings.database_url, scenario, seed_if_empty=True)
        typer.echo(
            f"network: {counts['stations']} stations, {counts['vans']} vans, "
            f"{counts['partners']} partners, {counts['trucks']} replacement trucks"
        )
        typer.echo(f"serving on http://{settings.host}:{settings.port} (docs at /docs)")
        application = create_app(settings)
    logging.captureWarnings(True)  # warnings with timestamp and level, like every line
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_config=log_config(level=settings.log_level, log_format=settings.log_format),
        # The client address for the rate limit comes from RESCUE_TRUSTED_PROXIES only
        # (api/ratelimit.py); uvicorn's own handling would believe 127.0.0.1's headers.
        proxy_headers=False,
    )


@app.command()
def seed(
    db: str | None = DB_OPTION,
    scenario: str = typer.Option(
        "china-national", help="Built-in network name or a network TOML file"
    ),
    reset: bool = typer.Option(
        False, "--reset", help="Replace an existing network (deletes all requests and history)"
    ),
) -> None:
    """Load a network into the database (migrates first). Refuses if one is already there
    unless --reset; all or nothing (one transaction)."""
    from api.db.engine import make_engine, session_factory, transaction
    from api.db.migrate import upgrade
    from api.network.seeding import NetworkAlreadySeeded, seed_network
    from fleet.scenario import resolve_network

    with clear_errors():
        network = resolve_network(scenario)
        engine = make_engine(database_url(db))
        upgrade(engine)
        try:
            with transaction(session_factory(engine)) as session:
                counts = seed_network(
                    db_session=session, network=network, source=scenario, reset=reset
                )
        except NetworkAlreadySeeded as exc:
            fail(str(exc))
    typer.echo(
        f"seeded {network.name}: {counts['stations']} stations, {counts['vans']} vans, "
        f"{counts['partners']} partners, {counts['trucks']} replacement trucks"
    )


@app.command("network")
def network_info(
    db: str | None = DB_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Show what the database holds (counts of stations, vans, partners, trucks, requests)."""
    from api.db.engine import make_engine, session_factory, transaction
    from api.db.migrate import current_revision, head_revision
    from api.network.seeding import network_counts

    with clear_errors():
        engine = make_engine(database_url(db))
        revision = current_revision(engine)
        if revision is None:
            fail("the database has no schema yet: run `rescue seed` or `rescue serve`")
        with transaction(session_factory(engine)) as session:
            counts = network_counts(db_session=session)
    counts_out: dict[str, object] = {**counts, "schema": revision, "schema_head": head_revision()}
    if as_json:
        typer.echo(json.dumps(counts_out))
    else:
        for key, value in counts_out.items():
            typer.echo(f"{key:>12}: {value}")
