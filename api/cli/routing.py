"""``rescue routing ...``: import an OpenStreetMap extract, inspect a road graph, one leg."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from api.cli import app
from api.cli.common import fail, road_graph_source

routing_app = typer.Typer(
    help="Road graph: import OpenStreetMap extracts, inspect a graph, route one leg.",
    no_args_is_help=True,
)
app.add_typer(routing_app, name="routing")

GRAPH_OPTION = typer.Option(
    None, "--graph", help="Graph directory (default: RESCUE_ROAD_GRAPH or the national graph)"
)


@routing_app.command("import-osm")
def import_osm_command(
    file: Path = typer.Argument(..., help="OpenStreetMap extract (.osm.pbf or .osm)"),
    out: Path = typer.Option(..., "--out", help="Directory to write the graph to"),
    all_components: bool = typer.Option(
        False,
        "--all-components",
        help="Keep every component, not only the largest strongly connected one",
    ),
) -> None:
    """Build a directed road graph (one-way streets, maxspeed or class speeds) from FILE and
    write it to --out; use it with RESCUE_ROAD_GRAPH=DIR. Prints a JSON summary."""
    from routing.osm import import_osm

    try:
        result = import_osm(file, out, largest_component_only=not all_components)
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:  # --out not writable, or a file in the way
        fail(f"cannot write the graph to {str(out)!r}: {exc.strerror or exc}")
    typer.echo(json.dumps(result.summary(), ensure_ascii=False))


@routing_app.command("info")
def info_command(graph: str | None = GRAPH_OPTION) -> None:
    """Nodes, edges, components and direction of a road graph (JSON)."""
    import numpy as np

    try:
        provider = road_graph_source(graph).load()
    except ValueError as exc:
        fail(str(exc))
    g = provider.graph
    sizes = np.bincount(g.component)
    typer.echo(
        json.dumps(
            {
                "graph": g.name,
                "nodes": g.n_nodes,
                "edges": g.n_edges,
                "directed": g.directed,
                "edge_speeds": g.edge_speed_kmh is not None,
                "components": len(sizes),
                "largest_component_nodes": int(sizes.max()),
                "km": round(float(g.edge_km.sum()), 1),
            },
            ensure_ascii=False,
        )
    )


def _point(text: str, what: str) -> tuple[float, float]:
    try:
        lat, lon = (float(x) for x in text.split(","))
    except ValueError:
        fail(f"{what} {text!r} is not LAT,LON")
    return lat, lon


@routing_app.command("leg")
def leg_command(
    origin: str = typer.Argument(..., help="LAT,LON"),
    destination: str = typer.Argument(..., help="LAT,LON"),
    profile: str = typer.Option("rescue_van", help="Travel profile"),
    graph: str | None = GRAPH_OPTION,
) -> None:
    """Road km and minutes from ORIGIN to DESTINATION (JSON; null = unreachable)."""
    import math

    a, b = _point(origin, "origin"), _point(destination, "destination")
    try:
        leg = road_graph_source(graph).load().leg([a], [b], profile)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(
        json.dumps(
            {
                "km": round(leg.km, 3) if math.isfinite(leg.km) else None,
                "minutes": round(leg.minutes, 2) if math.isfinite(leg.minutes) else None,
                "profile": profile,
            }
        )
    )
