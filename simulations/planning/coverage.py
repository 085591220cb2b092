"""Covering models: maximal covering (MCLP, Church & ReVelle 1974), its backup-coverage
variant (Hogan & ReVelle 1986, lexicographic here) and minimum facilities for a target
coverage share (partial set covering).

``coverage`` is a (demand x site) boolean structure: entry ``(i, j)`` is true when site ``j``
reaches demand point ``i`` within the service threshold. Build it with
:func:`coverage_from_distances` from any distance matrix (road km, minutes, ...) and a radius.

Before modelling, demand points with no demand or no covering site are dropped and points with
identical covering sets are merged (their demand added), which shrinks real instances a lot
(many county seats are reached by exactly the same candidate bases).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp

from simulations.planning import _validate
from simulations.planning._mip import proven, solve_mip
from simulations.planning.result import PlanResult, relative_gap

logger = logging.getLogger(__name__)

__all__ = [
    "coverage_from_distances",
    "covered_demand",
    "greedy_mclp",
    "solve_mclp",
    "solve_min_facilities",
]

# Distances within this relative tolerance of the radius count as covered, so that
# d = sqrt(25.000000000000004) is within S = 5.
RADIUS_RTOL = 1e-9

# SCIP rather than HiGHS for the covering models: on a time limit OR-Tools' HiGHS back end
# returns no incumbent at all, SCIP returns its best solution and bound (measured on the
# 1,000-site county-seat instance: HiGHS 0.5 s vs SCIP 1.0 s when the LP is integral, and
# only SCIP has an answer when it is not).
COVER_SOLVER = "scip"

# SCIP settings for the maximal covering model. Its LP is highly degenerate (a node LP can
# take ~10,000 simplex iterations), so SCIP's default reliability branching spends the whole
# budget strong-branching at the root and RENS takes seconds; pseudo-cost branching without
# RENS proves the 1,000-site county-seat instance at p = 50 in ~9 s where the defaults end
# at a 30 s limit with a 0.08 % gap.
MCLP_SCIP_PARAMS = "branching/pscost/priority = 100000\nheuristics/rens/freq = -1"


def coverage_from_distances(dist: np.ndarray, radius: float) -> sp.csr_matrix:
    """Boolean (demand x site) coverage: ``dist[i, j] <= radius`` up to a relative 1e-9
    (float noise on exact ties counts as covered); ``inf`` (unreachable) is never covered."""
    d = _validate.check_distances(dist)
    r = float(radius)
    if not np.isfinite(r) or r < 0:
        raise ValueError(f"radius must be a finite number >= 0, got {radius!r}")
    return sp.csr_matrix(d <= r + RADIUS_RTOL * max(r, 1.0))


def _as_coverage(coverage: object) -> sp.csr_matrix:
    if sp.issparse(coverage):
        cov = sp.csr_matrix(coverage)
    else:
        arr = np.asarray(coverage)
        if arr.ndim != 2:
            raise ValueError(f"coverage must be a 2-D (demand x site) matrix, got {arr.shape}")
        cov = sp.csr_matrix(arr)
    if cov.shape[0] == 0 or cov.shape[1] == 0:
        raise ValueError(f"coverage must be non-empty, got shape {cov.shape}")
    cov.eliminate_zeros()
    cov.sum_duplicates()
    out = sp.csr_matrix(
        (np.ones(cov.nnz, dtype=np.float64), cov.indices, cov.indptr), shape=cov.shape
    )
    return out


def covered_demand(
    coverage: sp.csr_matrix | np.ndarray, demand: np.ndarray, sites: Iterable[int]
) -> tuple[float, float]:
    """(demand covered at least once, demand covered at least twice) by the open ``sites``."""
    cov = _as_coverage(coverage)
    w = np.asarray(demand, dtype=np.float64)
    idx = np.asarray(list(sites), dtype=np.int64)
    counts = np.asarray(cov[:, idx].sum(axis=1)).ravel() if len(idx) else np.zeros(cov.shape[0])
    return float(w[counts >= 1].sum()), float(w[counts >= 2].sum())


def greedy_mclp(
    coverage: sp.csr_matrix | np.ndarray, demand: np.ndarray, p: int, fixed: Iterable[int] = ()
) -> np.ndarray:
    """Classic greedy (add the site with the largest uncovered demand, p times); the baseline
    of the benchmark and the fallback answer when the solver finds nothing in time."""
    cov = _as_coverage(coverage)
    w = np.asarray(demand, dtype=np.float64)
    csc = cov.tocsc()
    chosen = [int(f) for f in fixed]
    uncovered = np.ones(cov.shape[0], dtype=bool)
    if chosen:
        uncovered &= np.asarray(cov[:, chosen].sum(axis=1)).ravel() == 0
    available = np.ones(cov.shape[1], dtype=bool)
    available[chosen] = False
    while len(chosen) < p:
        gain = csc.T @ (w * uncovered)
        gain[~available] = -1.0
        j = int(np.argmax(gain))
        chosen.append(j)
        available[j] = False
        uncovered[csc.indices[csc.indptr[j] : csc.indptr[j + 1]]] = False
    return np.sort(np.asarray(chosen, dtype=np.int64))


def _aggregate(cov: sp.csr_matrix, w: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """Drop rows without demand or coverers; merge rows with the same covering set."""
    useful = (w > 0) & (np.diff(cov.indptr) > 0)
    cov = sp.csr_matrix(cov[np.flatnonzero(useful)])
    w = w[useful]
    cov.sort_indices()
    groups: dict[bytes, int] = {}
    rep: list[int] = []
    total: list[float] = []
    for i in range(cov.shape[0]):
        key = cov.indices[cov.indptr[i] : cov.indptr[i + 1]].tobytes()
        g = groups.get(key)
        if g is None:
            groups[key] = len(rep)
            rep.append(i)
            total.append(float(w[i]))
        else:
            total[g] += float(w[i])
    return sp.csr_matrix(cov[rep]), np.asarray(total)


def _undominated(cov: sp.csr_matrix, keep_always: np.ndarray) -> np.ndarray:
    """Indices of the sites worth modelling for maximal covering: a site whose covering set
    is a subset of another site's (of the lowest-indexed one among equal sets) is dropped,
    as swapping it for its dominator never covers less. Sites covering nothing are dropped;
    ``keep_always`` (the fixed sites) are kept regardless."""
    csc = sp.csc_matrix(cov)
    sizes = np.diff(csc.indptr)
    overlap = sp.csr_matrix(csc.T @ csc)  # |S_j & S_k|
    keep = sizes > 0
    for j in range(csc.shape[1]):
        if not keep[j]:
            continue
        lo, hi = overlap.indptr[j], overlap.indptr[j + 1]
        others = overlap.indices[lo:hi]
        shared = overlap.data[lo:hi]
        # S_j is a subset of S_k iff |S_j & S_k| == |S_j|; among equal sets keep the lowest
        # index. A dominator dropped earlier was itself dominated by a kept superset.
        dominators = (
            (others != j) & (shared == sizes[j]) & ((sizes[others] > sizes[j]) | (others < j))
        )
        if dominators.any():
            keep[j] = False
    keep[keep_always] = True
    return np.flatnonzero(keep)


def _check_common(
    coverage: object, demand: object, fixed: Iterable[int], time_limit_s: object, p: int | None
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, float]:
    cov = _as_coverage(coverage)
    w = _validate.check_demand(demand, cov.shape[0])
    fixed_arr = _validate.check_fixed(fixed, cov.shape[1], p)
    return cov, w, fixed_arr, _validate.check_time_limit(time_limit_s)


def solve_mclp(
    coverage: sp.csr_matrix | np.ndarray,
    demand: np.ndarray,
    p: int,
    *,
    fixed: Iterable[int] = (),
    backup: bool = False,
    time_limit_s: float = 60.0,
) -> PlanResult:
    """Open exactly ``p`` sites covering the most demand.

    ``fixed`` sites are open in every answer. With ``backup=True`` the model is lexicographic:
    first the most demand covered at least once (the reported ``objective``), then, keeping
    that value, the most demand covered at least twice (``backup_covered_demand``).
    ``proven_optimal`` then requires both stages proven; ``best_bound`` and ``gap`` refer to
    the primary objective (stage 2's bound is logged).
    """
    started = time.perf_counter()
    cov, w, fixed_arr, limit = _check_common(coverage, demand, fixed, time_limit_s, None)
    m = cov.shape[1]
    p = _validate.check_p(p, m)
    if len(fixed_arr) > p:
        raise ValueError(f"fixed has {len(fixed_arr)} sites, more than p = {p}")
    integral = _validate.is_integral(w)
    agg, aw = _aggregate(cov, w)
    r = agg.shape[0]
    if r == 0:  # nothing coverable: any p sites do
        sites = _fill(fixed_arr, p, m)
        return _cover_result(0.0, sites, 0.0, cov, w, started, True, "trivial", backup=backup)

    # Primary stage on the undominated sites only (the backup stage below needs them all:
    # a dominated site can still add second coverage). Dropping sites can make covering
    # sets equal again, so the points are re-aggregated.
    cols = _undominated(agg, fixed_arr)
    sub, sw = _aggregate(sp.csr_matrix(agg[:, cols]), aw)
    ms, rs = sub.shape[1], sub.shape[0]
    ps = min(p, ms)
    logger.debug("MCLP model: %d of %d sites, %d of %d point groups", ms, m, rs, r)
    # Variables: y (ms sites, binary) then x (rs aggregated points, continuous in [0, 1]).
    # Rows: x_i - sum_{j covers i} y_j <= 0 ; sum y = ps.
    a_rows = sp.hstack([-sub, sp.identity(rs)], format="csr")
    card = sp.csr_matrix(np.concatenate([np.ones(ms), np.zeros(rs)])[None, :])
    matrix = sp.vstack([a_rows, card], format="csr")
    row_lb = np.concatenate([np.full(rs, -np.inf), [ps]])
    row_ub = np.concatenate([np.zeros(rs), [ps]])
    var_lb = np.zeros(ms + rs)
    var_lb[np.searchsorted(cols, fixed_arr)] = 1.0
    var_ub = np.ones(ms + rs)
    integer = np.concatenate([np.ones(ms, dtype=bool), np.zeros(rs, dtype=bool)])
    c = np.concatenate([np.zeros(ms), sw])
    sol = solve_mip(
        objective=c, matrix=matrix, row_lb=row_lb, row_ub=row_ub, var_lb=var_lb,
        var_ub=var_ub, integer=integer, maximize=True, time_limit_s=limit,
        solver=COVER_SOLVER, extra_params=MCLP_SCIP_PARAMS,
    )  # fmt: skip
    sites = greedy_mclp(cov, w, p, fixed_arr)
    value, _ = covered_demand(cov, w, sites)
    if sol.values is not None:
        chosen = cols[np.flatnonzero(sol.values[:ms] > 0.5)]
        found = _fill(np.union1d(chosen, fixed_arr), p, m)
        found_value, _ = covered_demand(cov, w, found)
        if found_value >= value:
            sites, value = found, found_value
    bound = float(aw.sum())
    if np.isfinite(sol.bound):
        bound = max(min(sol.bound, bound), value)
    ok = sol.status == "OPTIMAL" and proven(value, bound, maximize=True, integral=integral)
    if not backup:
        return _cover_result(value, sites, bound, cov, w, started, ok, "mclp")

    # Stage 2: keep the primary coverage, maximise demand covered twice (Hogan-ReVelle rows
    # x_i + u_i <= sum y, u_i <= x_i with binary x, u).
    remaining = limit - (time.perf_counter() - started)
    zeros_r = sp.csr_matrix((r, r))
    eye = sp.identity(r, format="csr")
    matrix2 = sp.vstack(
        [
            sp.hstack([-agg, eye, eye]),
            sp.hstack([sp.csr_matrix((r, m)), -eye, eye]),
            sp.hstack([sp.csr_matrix((1, m)), sp.csr_matrix(aw[None, :]), zeros_r[:1]]),
            sp.csr_matrix(np.concatenate([np.ones(m), np.zeros(2 * r)])[None, :]),
        ],
        format="csr",
    )
    keep = value - (0.5 if integral else 1e-9 * max(1.0, value))
    row_lb2 = np.concatenate([np.full(2 * r, -np.inf), [keep, p]])
    row_ub2 = np.concatenate([np.zeros(2 * r), [np.inf, p]])
    var_lb2 = np.zeros(m + 2 * r)
    var_lb2[fixed_arr] = 1.0
    sol2 = solve_mip(
        objective=np.concatenate([np.zeros(m + r), aw]), matrix=matrix2, row_lb=row_lb2,
        row_ub=row_ub2, var_lb=var_lb2, var_ub=np.ones(m + 2 * r),
        integer=np.ones(m + 2 * r, dtype=bool), maximize=True,
        time_limit_s=max(remaining, 0.05), solver=COVER_SOLVER,
    )  # fmt: skip
    if sol2.values is not None:
        sites2 = _sites(sol2.values, m, p, fixed_arr)
        value2, double2 = covered_demand(cov, w, sites2)
        if value2 >= value - 1e-9:
            sites = sites2
        ok = (
            ok
            and sol2.status == "OPTIMAL"
            and proven(double2, sol2.bound, maximize=True, integral=integral)
        )
        logger.info("MCLP backup stage: %s, backup bound %.3f", sol2.status, sol2.bound)
    else:
        ok = False
    return _cover_result(value, sites, bound, cov, w, started, ok, "mclp-backup", backup=True)


def solve_min_facilities(
    coverage: sp.csr_matrix | np.ndarray,
    demand: np.ndarray,
    target_share: float,
    *,
    fixed: Iterable[int] = (),
    time_limit_s: float = 60.0,
) -> PlanResult:
    """Fewest open sites (including the ``fixed`` ones) covering at least ``target_share`` of
    the total demand (all demand counts, coverable or not). ``objective`` is the number of
    sites; ``covered_demand`` what they cover.

    Raises ``ValueError`` (naming ``target_share``) when even every site open cannot reach the
    target."""
    started = time.perf_counter()
    cov, w, fixed_arr, limit = _check_common(coverage, demand, fixed, time_limit_s, None)
    share = float(target_share)
    if not 0.0 < share <= 1.0:
        raise ValueError(f"target_share must be in (0, 1], got {target_share!r}")
    m = cov.shape[1]
    total = float(w.sum())
    need = share * total - 1e-9 * max(total, 1.0)
    reachable = float(w[np.diff(cov.indptr) > 0].sum())
    if reachable < need:
        raise ValueError(
            f"target_share {share:g} is unreachable: every site open covers "
            f"{reachable / total if total else 0:.4f} of the demand"
        )
    agg, aw = _aggregate(cov, w)
    r = agg.shape[0]
    have, _ = covered_demand(cov, w, fixed_arr)
    if have >= need or r == 0:
        sites = tuple(int(s) for s in fixed_arr)
        return _cover_result(
            float(len(sites)), np.asarray(sites, dtype=np.int64), float(len(sites)), cov, w,
            started, True, "min-facilities",
        )  # fmt: skip
    matrix = sp.vstack(
        [
            sp.hstack([-agg, sp.identity(r)]),
            sp.csr_matrix(np.concatenate([np.zeros(m), aw])[None, :]),
        ],
        format="csr",
    )
    row_lb = np.concatenate([np.full(r, -np.inf), [need]])
    row_ub = np.concatenate([np.zeros(r), [np.inf]])
    var_lb = np.zeros(m + r)
    var_lb[fixed_arr] = 1.0
    # x binary: with continuous x a point could count as partly covered by a fractional
    # site sum; binary keeps the share exact for the chosen sites.
    sol = solve_mip(
        objective=np.concatenate([np.ones(m), np.zeros(r)]), matrix=matrix, row_lb=row_lb,
        row_ub=row_ub, var_lb=var_lb, var_ub=np.ones(m + r),
        integer=np.ones(m + r, dtype=bool), maximize=False, time_limit_s=limit,
        solver=COVER_SOLVER,
    )  # fmt: skip
    if sol.values is None:
        raise RuntimeError(f"min-facilities solver returned {sol.status} without a solution")
    sites_arr = np.flatnonzero(sol.values[:m] > 0.5)
    count = float(len(sites_arr))
    ok = sol.status == "OPTIMAL" and proven(count, sol.bound, maximize=False, integral=True)
    return _cover_result(count, sites_arr, sol.bound, cov, w, started, ok, "min-facilities")


def _sites(values: np.ndarray, m: int, p: int, fixed: np.ndarray) -> np.ndarray:
    chosen = np.flatnonzero(values[:m] > 0.5)
    return _fill(np.union1d(chosen, fixed), p, m)


def _fill(chosen: np.ndarray, p: int, m: int) -> np.ndarray:
    """Top up to exactly ``p`` sites with the lowest unused indices (they add no coverage
    that the model valued; only happens when the model is indifferent)."""
    out = list(np.asarray(chosen, dtype=np.int64))
    spare = (j for j in range(m) if j not in set(out))
    while len(out) < p:
        out.append(next(spare))
    return np.sort(np.asarray(out[:p], dtype=np.int64))


def _cover_result(
    objective: float,
    sites: np.ndarray,
    bound: float,
    cov: sp.csr_matrix,
    w: np.ndarray,
    started: float,
    ok: bool,
    method: str,
    *,
    backup: bool = False,
) -> PlanResult:
    once, twice = covered_demand(cov, w, sites)
    bound = float(bound)
    return PlanResult(
        objective=float(objective),
        sites=tuple(int(s) for s in np.sort(sites)),
        proven_optimal=bool(ok),
        best_bound=float(objective) if ok else bound,
        gap=0.0 if ok else relative_gap(float(objective), bound),
        seconds=time.perf_counter() - started,
        method=method,
        covered_demand=once,
        backup_covered_demand=twice if backup else None,
    )
