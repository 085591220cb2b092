"""``rescue bench api``: throughput and latency of ``POST /v1/requests``.

Three processes: the server under test (uvicorn, one worker, on a fresh SQLite database with
the national network), and a load generator (asyncio, raw HTTP/1.1 keep-alive connections,
so the generator costs little CPU) posting request bodies from ``clients`` connections.
The same load then runs against a bare FastAPI endpoint that validates the same body and
inserts the same row (one SQLAlchemy Core insert in its own transaction, a sync route in the
threadpool: the plain way to write it), measured in the same run. The real endpoint does
more per request (triage, tracking token, first event, rate-limit and size-limit layers)
but commits waiting requests together (group commit, api/requests/intake_writer.py), so
the ratio of the two throughputs can exceed 1.

"lost" = 201 answers minus rows stored afterwards (must be 0: a 201 means committed).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from api.schemas import RequestCreate


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _near(seat: Any, rng: random.Random) -> dict[str, float]:
    """A point within about 2 km of ``seat``."""
    return {
        "lat": seat.lat + rng.uniform(-0.015, 0.015),
        "lon": seat.lon + rng.uniform(-0.015, 0.015),
    }


def _bodies(n: int, seed: int = 0) -> list[bytes]:
    from fleet.geography import county_seats

    # Breakdowns near county seats in the box the old bench drew from (30-40 N, 110-120 E):
    # every point is inside the service area, as the intake's plausibility check requires.
    seats = [
        u
        for u in county_seats()
        if u.lat is not None and u.lon is not None and 30 <= u.lat <= 40 and 110 <= u.lon <= 120
    ]
    rng = random.Random(seed)
    deadline = (dt.datetime.now(dt.UTC) + dt.timedelta(days=7)).isoformat()
    classes = ["tractor", "rigid_truck", "light_truck", "van", "car"]
    faults = ["TYRE_PUNCTURE", "BATTERY_FLAT", "ENGINE_NO_START", "AIR_LEAK", None]
    out = []
    for i in range(n):
        body: dict[str, Any] = {
            "customer": {"name": "张伟", "phone": f"138{rng.randrange(10**8):08d}"},
            "vehicle": {
                "plate": f"鲁A{i:05d}",
                "vehicle_class": rng.choice(classes),
                "model": "HOWO T7H",
            },
            "location": _near(rng.choice(seats), rng),
            "fault": {"code": rng.choice(faults), "description": "bench"},
        }
        if rng.random() < 0.5:
            body["cargo"] = {
                "weight_t": round(5 + rng.random() * 25, 1),
                "destination": {"lat": 31.23, "lon": 121.474},
                "deadline": deadline,
            }
        if body["fault"]["code"] is None:
            del body["fault"]["code"]
        out.append(json.dumps(body, ensure_ascii=False).encode("utf-8"))
    return out


# -- the servers -----------------------------------------------------------------------------


def _serve_app(
    url: str, port: int, dispatch_interval: float, dispatch_mode: str, stats_dir: str | None
) -> None:
    import uvicorn

    from api.app import create_app
    from api.settings import Settings

    settings = Settings(
        database_url=url,
        dispatch_interval_s=dispatch_interval,
        dispatch_mode=dispatch_mode,
        rate_limit_per_minute=0,
        travel_provider="great_circle",
        write_lock_stats_dir=stats_dir,
    )
    uvicorn.run(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # as `rescue serve`: the client address is the socket's
    )


def _serve_bare(url: str, port: int) -> None:
    import uuid

    import uvicorn
    from fastapi import FastAPI
    from sqlalchemy import insert

    from api.db import models as m
    from api.db.engine import make_engine

    engine = make_engine(url)
    app = FastAPI()

    @app.post("/v1/requests", status_code=201)
    def create(body: RequestCreate) -> dict[str, str]:
        now = dt.datetime.now(dt.UTC)
        rid = str(uuid.uuid4())
        cargo = body.cargo
        with engine.begin() as conn:
            conn.execute(
                insert(m.RescueRequest).values(
                    id=rid,
                    status="received",
                    created_at=now,
                    updated_at=now,
                    customer_name=body.customer.name,
                    customer_phone=body.customer.phone,
                    plate=body.vehicle.plate,
                    vehicle_class=body.vehicle.vehicle_class.value,
                    vehicle_model=body.vehicle.model,
                    lat=body.location.lat,
                    lon=body.location.lon,
                    fault_code=body.fault.code,
                    fault_description=body.fault.description,
                    cargo_weight_t=cargo.weight_t if cargo else None,
                    cargo_destination_lat=cargo.destination.lat if cargo else None,
                    cargo_destination_lon=cargo.destination.lon if cargo else None,
                    cargo_deadline=cargo.deadline if cargo else None,
                    priority=1.0,
                    needs_tow=False,
                    replacement_threshold_hours=24.0,
                    needs_replacement=False,
                    tracking_token_hash="-",
                )
            )
        return {"id": rid, "status": "received"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- the load generator ----------------------------------------------------------------------


async def _client(
    host: str,
    port: int,
    bodies: list[bytes],
    offset: int,
    start_measure: float,
    stop_at: float,
    latencies: list[float],
    statuses: dict[int, int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = offset
    try:
        while time.perf_counter() < stop_at:
            body = bodies[i % len(bodies)]
            i += 1
            head = (
                f"POST /v1/requests HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            t0 = time.perf_counter()
            writer.write(head + body)
            line = await reader.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            status = int(line.split()[1])
            length = 0
            while True:
                h = await reader.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                name, _, value = h.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            t1 = time.perf_counter()
            statuses[status] = statuses.get(status, 0) + 1
            if t0 >= start_measure:
                latencies.append(t1 - t0)
    finally:
        writer.close()


async def _load(port: int, clients: int, seconds: float, warmup: float) -> dict[str, Any]:
    bodies = _bodies(4096)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    start_measure = start + warmup
    stop_at = start_measure + seconds
    await asyncio.gather(
        *(
            _client("127.0.0.1", port, bodies, k * 37, start_measure, stop_at, latencies, statuses)
            for k in range(clients)
        )
    )
    latencies.sort()
    n = len(latencies)

    def q(p: float) -> float | None:
        return round(latencies[min(n - 1, int(p * n))] * 1000, 2) if n else None

    return {
        "measured": n,
        "requests_per_s": round(n / seconds, 1),
        "p50_ms": q(0.50),
        "p99_ms": q(0.99),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "created": statuses.get(201, 0),
    }


def _run_load(port: int, clients: int, seconds: float, warmup: float) -> dict[str, Any]:
    """The load generator in its own process (so it does not share the server's GIL)."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.api", "load", str(port), str(clients), str(seconds),
         str(warmup)],
        capture_output=True, text=True, check=False, timeout=seconds + warmup + 120,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr.strip().splitlines()[-1:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not start within a minute")


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) used so far by process ``pid``: from
    ``/proc/PID/stat`` (Linux); None where that does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return cpu_s_from_stat(stat, os.sysconf("SC_CLK_TCK"))


def cpu_s_from_stat(stat: bytes, ticks_per_s: int) -> float:
    """User + system CPU seconds from a ``/proc/PID/stat`` line: its 14th and 15th fields, in
    clock ticks, counted after the command name (in parentheses, which may hold spaces and
    parentheses itself: the last ``)`` ends it)."""
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / ticks_per_s


def _count_rows(url: str) -> int:
    from sqlalchemy import func, select

    from api.db import models as m
    from api.db.engine import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        n = int(conn.execute(select(func.count()).select_from(m.RescueRequest)).scalar() or 0)
    engine.dispose()
    return n


def _measure(
    kind: str,
    url: str,
    clients: int,
    seconds: float,
    warmup: float,
    interval: float,
    dispatch_mode: str = "process",
    stats_dir: Path | None = None,
) -> dict[str, Any]:
    port = _free_port()
    args = [
        sys.executable, "-m", "benchmarks.api", kind, url, str(port), str(interval), dispatch_mode
    ]  # fmt: skip
    if stats_dir is not None:
        args.append(str(stats_dir))
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
    try:
        try:
            _wait_ready(port, proc)
        except RuntimeError as exc:
            log.seek(0)
            tail = log.read().decode("utf-8", "replace").strip().splitlines()[-1:]
            raise RuntimeError(f"{kind}: {exc} {' '.join(tail)}") from None
        before = _count_rows(url)
        cpu_before = process_cpu_s(proc.pid)
        result = _run_load(port, clients, seconds, warmup)
        cpu_after = process_cpu_s(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    stored = _count_rows(url) - before
    result["stored"] = stored
    result["lost"] = result["created"] - stored
    # The server's CPU over the whole load (warm-up included) per request it answered: what
    # the intake costs, whatever the machine's load (which inflates seconds, not CPU time).
    answered = sum(result["statuses"].values())
    result["server_cpu_ms_per_request"] = (
        round(1000 * (cpu_after - cpu_before) / answered, 3)
        if cpu_before is not None and cpu_after is not None and answered
        else None
    )
    if stats_dir is not None:
        result["write_lock"] = _lock_stats(stats_dir)
    return result


def _lock_stats(directory: Path) -> dict[str, Any]:
    """The write-lock records the server and its worker wrote at shutdown
    (api/db/write_lock.py), one entry per ``role:holder``."""
    out: dict[str, Any] = {}
    for path in sorted(directory.glob("write-lock-*.json")):
        record = json.loads(path.read_text())
        for holders in record["locks"].values():
            for label, summary in holders.items():
                out[f"{record['role']}:{label}"] = summary
    return out


@contextlib.contextmanager
def _databases(server_url: str | None, tmp: Path) -> Iterator[Callable[..., str]]:
    """``fresh(name, template=None)`` -> a fresh database URL: an SQLite file in ``tmp`` (a
    copy of ``template``'s file), or a database created on the PostgreSQL server of
    ``server_url`` (from ``template``'s URL as its template; all dropped at exit)."""
    if server_url is None:

        def fresh_file(name: str, template: str | None = None) -> str:
            path = tmp / (name + ".sqlite")
            if template is not None:
                shutil.copyfile(template.removeprefix("sqlite:///"), path)
            return f"sqlite:///{path}"

        yield fresh_file
        return
    import uuid

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from api.db.engine import make_engine, normalise_url

    if not normalise_url(server_url).startswith("postgresql"):
        raise ValueError(
            f"--db must be a PostgreSQL URL (SQLite is the default), got {server_url!r}"
        )
    admin = make_engine(server_url, isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def fresh(name: str, template: str | None = None) -> str:
        db_name = f"rescue_bench_{name}_{uuid.uuid4().hex[:8]}"
        like = f' TEMPLATE "{make_url(template).database}"' if template else ""
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{db_name}"{like}'))
        created.append(db_name)
        url = make_url(normalise_url(server_url)).set(database=db_name)
        return url.render_as_string(hide_password=False)

    try:
        yield fresh
    finally:
        with admin.connect() as conn:
            for db_name in created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        admin.dispose()


def run_benchmark(
    *,
    clients: int = 200,
    seconds: float = 20.0,
    warmup: float = 2.0,
    baseline: bool = True,
    dispatch_interval: float = 0.0,
    dispatch_mode: str = "process",
    database: str | None = None,
    lock_stats: bool = False,
) -> dict[str, Any]:
    """Serve the app on a fresh SQLite database (or, with ``database`` a PostgreSQL URL, a
    fresh database on that server, dropped afterwards) seeded with the national network
    (uvicorn, one process; the dispatch loop every ``dispatch_interval`` s in
    ``dispatch_mode``), post requests from ``clients`` connections in another process for
    ``seconds``, and report throughput, p50/p99 latency and "lost"; then the same against
    the bare FastAPI insert (``baseline``), and the ratio of the two throughputs. With
    ``lock_stats`` (SQLite), ``write_lock``: each holder's waits for and holds of the
    database's write lock in the app's run."""
    from api.db.engine import make_engine, session_factory, transaction
    from api.db.migrate import upgrade
    from api.network.seeding import seed_network
    from fleet import build_national_network

    with (
        tempfile.TemporaryDirectory(prefix="rescue-bench-") as tmp,
        _databases(database, Path(tmp)) as make_url,
    ):
        urls = {}
        for name in ("app", "bare"):
            url = make_url(name)
            engine = make_engine(url)
            upgrade(engine)
            if name == "app":
                with transaction(session_factory(engine)) as db:
                    seed_network(db_session=db, network=build_national_network(), source="bench")
            engine.dispose()
            urls[name] = url
        stats_dir = Path(tmp) / "lock-stats" if lock_stats and database is None else None
        app = _measure(
            "serve-app", urls["app"], clients, seconds, warmup, dispatch_interval, dispatch_mode,
            stats_dir,
        )  # fmt: skip
        bare = (
            _measure("serve-bare", urls["bare"], clients, seconds, warmup, 0.0)
            if baseline
            else None
        )
    out: dict[str, Any] = {
        "benchmark": "api",
        "endpoint": "POST /v1/requests",
        "database": "postgresql" if database else "sqlite",
        "clients": clients,
        "seconds": seconds,
        "cpus": os.cpu_count(),
        "dispatch_interval_s": dispatch_interval,
        "dispatch_mode": dispatch_mode,
        "requests_per_s": app["requests_per_s"],
        "p50_ms": app["p50_ms"],
        "p99_ms": app["p99_ms"],
        "lost": app["lost"],
        "created": app["created"],
        "stored": app["stored"],
        "statuses": app["statuses"],
        "server_cpu_ms_per_request": app["server_cpu_ms_per_request"],
    }
    if "write_lock" in app:
        out["write_lock"] = app["write_lock"]
    if bare is not None:
        out["baseline_requests_per_s"] = bare["requests_per_s"]
        out["baseline_p50_ms"] = bare["p50_ms"]
        out["baseline_p99_ms"] = bare["p99_ms"]
        out["baseline_lost"] = bare["lost"]
        out["baseline_server_cpu_ms_per_request"] = bare["server_cpu_ms_per_request"]
        out["ratio"] = (
            round(app["requests_per_s"] / bare["requests_per_s"], 3)
            if bare["requests_per_s"]
            else None
        )
    return out


def main(argv: list[str]) -> None:
    """The child processes: ``serve-app URL PORT INTERVAL MODE [STATS_DIR]``,
    ``serve-bare URL PORT``, ``load PORT CLIENTS SECONDS WARMUP`` (prints its JSON result)."""
    kind = argv[0]
    if kind == "serve-app":
        _serve_app(
            argv[1], int(argv[2]), float(argv[3]), argv[4], argv[5] if len(argv) > 5 else None
        )
    elif kind == "serve-bare":
        _serve_bare(argv[1], int(argv[2]))
    elif kind == "load":
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        port, clients, seconds, warmup = int(argv[1]), int(argv[2]), float(argv[3]), float(argv[4])
        print(json.dumps(asyncio.run(_load(port, clients, seconds, warmup))))
    else:
        raise SystemExit(f"unknown mode {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
