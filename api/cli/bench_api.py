"""``rescue bench api``: throughput and latency of POST /v1/requests (api/bench_api.py)."""

from __future__ import annotations

import json

import typer

from api.cli.bench import bench_app
from api.cli.common import fail


@bench_app.command("api")
def bench_api(
    clients: int = typer.Option(200, min=1, help="Concurrent clients (keep-alive connections)"),
    seconds: float = typer.Option(20.0, min=1.0, help="Load duration per server"),
    warmup: float = typer.Option(2.0, min=0.0, help="Unmeasured warm-up seconds"),
    baseline: bool = typer.Option(True, help="Also measure the bare FastAPI insert endpoint"),
    dispatch_interval: float = typer.Option(
        0.0, help="Background dispatch loop interval during the run (0 = off: intake only)"
    ),
) -> None:
    """Serve the app on a fresh SQLite database (uvicorn, one process), post requests from
    --clients concurrent connections in another process for --seconds, and print throughput,
    p50/p99 latency and "lost" (201 answers minus stored rows); then the same against a bare
    FastAPI endpoint inserting the same row, and the ratio."""
    from api.bench_api import run_benchmark

    try:
        result = run_benchmark(
            clients=clients,
            seconds=seconds,
            warmup=warmup,
            baseline=baseline,
            dispatch_interval=dispatch_interval,
        )
    except (RuntimeError, OSError) as exc:
        fail(str(exc))
    typer.echo(json.dumps(result))
