"""``rescue bench dispatch --regions N``: a storm dispatched by N worker processes, one region
each, against one worker dispatching the whole network, on copies of the same database.

The storm: ``requests`` breakdowns a few km from random stations of the national network
(so every province gets its share), stored through the real intake. Each worker is a
process (``python -m benchmarks.regions worker URL REGIONS``) that loads the road graph,
says ``ready``, waits for ``go`` and runs dispatch passes until a pass decides nothing
(:class:`api.dispatching.worker.DispatchWorker`); its time is from ``go`` to that point.
The run's time is the slowest worker's. ``speedup`` = one worker's time / N workers' time,
both measured in this run.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _seed_storm(url: str, requests: int, seed: int) -> None:
    from api.db.engine import make_engine, session_factory, transaction
    from api.db.migrate import upgrade
    from api.network.seeding import seed_network
    from api.requests.intake import create_request
    from api.schemas import RequestCreate
    from fleet import build_national_network

    network = build_national_network()
    engine = make_engine(url)
    upgrade(engine)
    rng = random.Random(seed)
    classes = ["tractor", "rigid_truck", "light_truck", "van", "car"]
    with transaction(session_factory(engine)) as db:
        seed_network(db_session=db, network=network, source="bench")
        for i in range(requests):
            station = rng.choice(network.stations)
            body = {
                "customer": {"name": "张伟", "phone": f"138{rng.randrange(10**8):08d}"},
                "vehicle": {"plate": f"鲁B{i:05d}", "vehicle_class": rng.choice(classes)},
                "location": {
                    "lat": station.location.lat + rng.uniform(-0.2, 0.2),
                    "lon": station.location.lon + rng.uniform(-0.2, 0.2),
                },
                "fault": {"code": "TYRE_PUNCTURE", "description": "storm"},
            }
            create_request(
                db_session=db,
                body=RequestCreate.model_validate(body),
                threshold_hours=24.0,
                token_secret=b"bench-regions-token-secret",
            )
    engine.dispose()


def _run_workers(url: str, regions: int, workers: int, travel: str) -> dict[str, Any]:
    env = os.environ | {"RESCUE_RESPECT_SHIFTS": "false", "RESCUE_TRAVEL_PROVIDER": travel}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.regions", "worker", url, str(regions)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(workers)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"dispatch worker failed to start (said {line!r})")
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        reports = []
        for p in procs:
            out, _ = p.communicate(timeout=1800)
            if p.returncode != 0:
                raise RuntimeError(f"dispatch worker exited with {p.returncode}")
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return {
        "seconds": round(max(r["seconds"] for r in reports), 3),
        "assigned": sum(r["assigned"] for r in reports),
        "conflicts": sum(r["conflicts"] for r in reports),
        "cycles": sum(r["cycles"] for r in reports),
    }


def regions_benchmark(
    *,
    requests: int = 3000,
    regions: int = 2,
    seed: int = 0,
    engine: str = "road",
    database: str | None = None,
) -> dict[str, Any]:
    """The storm on a fresh database (SQLite file, or a fresh database on the PostgreSQL
    server ``database``), copied; one worker on one copy, ``regions`` workers on the other."""
    from benchmarks.api import _databases

    if regions < 2:
        raise ValueError(f"regions must be >= 2 to compare with one worker, got {regions}")
    travel = {"road": "road", "great-circle": "great_circle"}.get(engine)
    if travel is None:
        raise ValueError(f"engine must be road or great-circle, got {engine!r}")
    with (
        tempfile.TemporaryDirectory(prefix="rescue-regions-") as tmp,
        _databases(database, Path(tmp)) as fresh,
    ):
        one_url = fresh("one")
        _seed_storm(one_url, requests, seed)
        many_url = fresh("many", template=one_url)
        one = _run_workers(one_url, 1, 1, travel)
        many = _run_workers(many_url, regions, regions, travel)
    return {
        "benchmark": "dispatch-regions",
        "database": "postgresql" if database else "sqlite",
        "requests": requests,
        "regions": regions,
        "engine": engine,
        "cpus": os.cpu_count(),
        "one_worker_seconds": one["seconds"],
        "regions_seconds": many["seconds"],
        "speedup": round(one["seconds"] / many["seconds"], 3) if many["seconds"] else None,
        "one_worker_assigned": one["assigned"],
        "regions_assigned": many["assigned"],
        "regions_conflicts": many["conflicts"],
        "regions_cycles": many["cycles"],
    }


def _worker(url: str, regions: int) -> None:
    from api.dispatching.travel import travel_provider
    from api.dispatching.worker import DispatchWorker
    from api.settings import Settings

    settings = Settings(database_url=url, dispatch_regions=regions)
    travel_provider(settings)  # load the road graph before the clock starts
    worker = DispatchWorker(settings, actor="bench")
    print("ready", flush=True)
    sys.stdin.readline()
    totals = {"assigned": 0, "conflicts": 0, "cycles": 0}

    def count(results: list[Any]) -> None:
        for r in results:
            totals["assigned"] += len(r.assigned)
            totals["conflicts"] += len(r.conflicts)
            totals["cycles"] += int(r.ran)

    started = time.perf_counter()
    worker.run(until_idle=True, on_pass=count)
    print(json.dumps(totals | {"seconds": time.perf_counter() - started}), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        _worker(sys.argv[2], int(sys.argv[3]))
    else:
        raise SystemExit(f"unknown mode {sys.argv[1:2]!r}")
