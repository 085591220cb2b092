"""``rescue bench routing``: candidate generation on the road graph against networkx."""

from __future__ import annotations

import json

import typer

from api.cli.bench import bench_app
from api.cli.common import fail


@bench_app.command("routing")
def bench_routing(
    breakdowns: int = typer.Option(1000, help="Random breakdown points"),
    vans: int = typer.Option(3000, help="Vans at random home stations"),
    repeat: int = typer.Option(5, help="Timed repetitions of the fast run (median reported)"),
    seed: int = typer.Option(0, help="Random seed"),
    radius_km: float = typer.Option(150.0, help="Service radius of every van (road km)"),
    naive: bool = typer.Option(True, help="Also time the networkx baseline and compare"),
    keep_balls: bool = typer.Option(
        True, help="Keep the stations' balls first (as the dispatch cycle does)"
    ),
    graph: str | None = typer.Option(
        None,
        "--graph",
        help="Graph directory (default: RESCUE_ROAD_GRAPH or the national "
        "graph); off the national graph, stations are random graph nodes",
    ),
) -> None:
    """For each breakdown, every van within the radius (road km from its home station) and its
    travel time: the engine's median time over --repeat runs, the naive networkx time, their
    ratio, whether both found identical candidate sets, and the engine's memory (MB)."""
    import numpy as np

    from routing import load_road_provider
    from routing.benchmark import run_routing_benchmark

    try:
        if graph is None:
            from fleet.demo import build_national_network

            stations = np.array(
                [[s.location.lat, s.location.lon] for s in build_national_network().stations]
            )
        else:
            g = load_road_provider(graph).graph
            pick = np.random.default_rng(seed + 1).choice(g.n_nodes, size=min(938, g.n_nodes))
            stations = np.column_stack((g.lat[pick], g.lon[pick]))
        result = run_routing_benchmark(
            lambda: load_road_provider(graph),
            stations,
            breakdowns=breakdowns,
            vans=vans,
            repeat=repeat,
            seed=seed,
            radius_km=radius_km,
            naive=naive,
            keep_balls=keep_balls,
        )
    except ValueError as exc:
        fail(str(exc))
    typer.echo(json.dumps(result))
