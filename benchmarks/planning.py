"""``rescue bench pmedian|mclp|mclp-random``: the location planner on public instances and a
national-size covering run.

Each function yields (or returns) the records ``rescue bench`` prints, one JSON object per
line; bad input is a ``ValueError`` whose message names the file and the reason.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def pmedian_records(
    files: Iterable[Path], *, generate: Iterable[str] = (), time_limit_s: float = 60.0
) -> Iterator[dict[str, Any]]:
    """OR-Library p-median files, then Beasley-style generated instances (``generate``:
    ``"N,P[,SEED]"`` specs, see :func:`parse_generate_spec`), through the exact p-median
    solver (objective = total distance; gap and best bound are reported, a non-zero gap
    means not proven optimal). Generated records also carry their ``seed``."""
    from simulations.planning.instances import beasley_pmedian, read_orlib_pmedian

    specs = [parse_generate_spec(text) for text in generate]  # all refused before any solve
    for path in files:
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        try:
            started = time.perf_counter()
            inst = read_orlib_pmedian(path)
            read_s = time.perf_counter() - started
            record = _pmedian_record(inst, read_s, time_limit_s)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        yield record
    for n, p, seed in specs:
        started = time.perf_counter()
        inst = beasley_pmedian(n, p, seed)
        read_s = time.perf_counter() - started
        yield {**_pmedian_record(inst, read_s, time_limit_s), "seed": seed}


ORLIB_LARGE_SIZES = (
    (500, 5), (500, 10), (500, 50), (600, 5), (600, 10), (600, 60), (700, 5), (700, 10),
    (700, 70), (800, 5), (800, 10), (800, 80), (900, 5), (900, 10), (900, 90),
)  # fmt: skip
"""(n, p) of OR-Library pmed21-40 with p <= 90 (pmed24, 25, 29, 30 and 34 have p = 100-200);
``rescue bench pmedian --orlib-sizes`` generates one instance of each (seed 0)."""


def pmedian_summary(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One closing record over p-median records: how many, how many proven optimal, their
    total solve seconds and the slowest instance."""
    rows = list(records)
    if not rows:
        raise ValueError("no p-median records to summarise")
    slowest = max(rows, key=lambda r: r["seconds"])
    return {
        "summary": "pmedian",
        "instances": len(rows),
        "proven_optimal": sum(bool(r["proven_optimal"]) for r in rows),
        "seconds_total": round(sum(r["seconds"] for r in rows), 3),
        "slowest": slowest["instance"],
        "slowest_seconds": slowest["seconds"],
    }


def parse_generate_spec(text: str) -> tuple[int, int, int]:
    """``"N,P"`` or ``"N,P,SEED"`` (seed 0 by default) -> ``(n, p, seed)``, checked: n >= 3,
    1 <= p <= n, seed >= 0. A bad spec is a ``ValueError`` quoting it and saying why."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) not in (2, 3):
        raise ValueError(f"--generate {text!r}: expected N,P or N,P,SEED")
    try:
        n, p, seed = (int(part) for part in (*parts, "0")[:3])
    except ValueError:
        raise ValueError(f"--generate {text!r}: N, P and SEED must be integers") from None
    if n < 3:
        raise ValueError(f"--generate {text!r}: N must be >= 3")
    if not 1 <= p <= n:
        raise ValueError(f"--generate {text!r}: P must be in 1..N")
    if seed < 0:
        raise ValueError(f"--generate {text!r}: SEED must be >= 0")
    return n, p, seed


def _pmedian_record(inst: Any, read_s: float, time_limit_s: float) -> dict[str, Any]:
    from simulations.planning.pmedian import solve_pmedian

    result = solve_pmedian(inst.dist, inst.p, time_limit_s=time_limit_s)
    summary = result.summary()
    return {
        "instance": inst.name,
        "n": inst.n,
        "p": inst.p,
        "objective": summary["objective"],
        "proven_optimal": result.proven_optimal,
        "gap": summary["gap"],
        "best_bound": summary["best_bound"],
        "seconds": summary["seconds"],
        "read_seconds": round(read_s, 3),
        "method": result.method,
    }


def mclp_record(
    file: Path, *, radius: float, p: int, backup: bool = False, time_limit_s: float = 60.0
) -> dict[str, Any]:
    """Maximal covering on a points file: every point is demand and a candidate site,
    Euclidean distance, covered iff d <= ``radius`` (objective = covered demand)."""
    from simulations.planning.coverage import coverage_from_distances, solve_mclp
    from simulations.planning.instances import read_points

    if not file.is_file():
        raise ValueError(f"{file}: no such file")
    try:
        inst = read_points(file)
        coverage = coverage_from_distances(inst.distances(), radius)
        result = solve_mclp(coverage, inst.demand, p, backup=backup, time_limit_s=time_limit_s)
    except ValueError as exc:
        raise ValueError(f"{file}: {exc}") from None
    summary = result.summary()
    record: dict[str, Any] = {
        "instance": inst.name,
        "n": len(inst.demand),
        "radius": radius,
        "p": p,
        "objective": summary["objective"],
        "proven_optimal": result.proven_optimal,
        "gap": summary["gap"],
        "best_bound": summary["best_bound"],
        "seconds": summary["seconds"],
    }
    if backup:
        record["backup_covered_demand"] = summary["backup_covered_demand"]
    return record


def mclp_random_records(
    *,
    sites: int = 1000,
    seed: int = 0,
    radius_km: float = 150.0,
    p_values: Iterable[int] = (10, 20),
    time_limit_s: float = 60.0,
) -> Iterator[dict[str, Any]]:
    """Maximal covering at national size: demand at all 2,844 mainland county seats
    (prefecture population proxy, seeded noise), ``sites`` random seats as candidate bases,
    great-circle km; one record per p. Baseline: the greedy heuristic in the same run;
    ``ratio`` is optimal / greedy covered demand, ``speed_ratio`` exact / greedy seconds."""
    from simulations.planning.coverage import (
        coverage_from_distances,
        covered_demand,
        greedy_mclp,
        solve_mclp,
    )
    from simulations.planning.instances import county_seat_instance

    started = time.perf_counter()
    inst = county_seat_instance(sites, seed=seed)
    coverage = coverage_from_distances(inst.dist_km, radius_km)
    build_s = time.perf_counter() - started
    total = float(inst.demand.sum())
    for p in p_values:
        t0 = time.perf_counter()
        greedy_sites = greedy_mclp(coverage, inst.demand, p)
        greedy_s = time.perf_counter() - t0
        greedy_value, _ = covered_demand(coverage, inst.demand, greedy_sites)
        result = solve_mclp(coverage, inst.demand, p, time_limit_s=time_limit_s)
        summary = result.summary()
        yield {
            "instance": f"county-seats-{sites}-seed{seed}",
            "demand_points": len(inst.demand),
            "sites": sites,
            "radius_km": radius_km,
            "p": p,
            "objective": summary["objective"],
            "covered_share": round(result.objective / total, 4),
            "proven_optimal": result.proven_optimal,
            "gap": summary["gap"],
            "best_bound": summary["best_bound"],
            "seconds": summary["seconds"],
            "build_seconds": round(build_s, 3),
            "baseline": "greedy",
            "baseline_objective": round(greedy_value),
            "baseline_seconds": round(greedy_s, 3),
            "ratio": round(result.objective / greedy_value, 4) if greedy_value else None,
            "speed_ratio": round(result.seconds / max(greedy_s, 1e-6), 1),
        }
