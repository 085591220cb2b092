"""p-median: open ``p`` sites so that the demand-weighted distance to the nearest open site is
least.

Exact method (the radius formulation of Elloumi 2010 and García, Labbé & Marín 2011):

* For every demand point ``i`` sort its distinct site distances ``D_i^0 < D_i^1 < ...``.
  A continuous variable ``z_ik`` is 1 when ``i`` is farther than ``D_i^k`` from every open
  site, so ``i`` pays ``w_i (D_i^0 + sum_k (D_i^{k+1} - D_i^k) z_ik)``. The rows are chained,
  ``z_ik - z_i,k-1 + sum_{j: d_ij = D_i^k} y_j >= 0`` (``z_i,-1 = 1``), which gives O(n m)
  non-zeros instead of the O(n m^2) of the classic assignment model and the same LP bound.
* Only the ``m - p + 1`` nearest sites of a point matter (one of them is always open), and an
  open fixed site caps the radius as well.
* Truncation with row generation (García et al.): each point starts with the levels up to the
  radius it gets in a heuristic solution; beyond its last level the model charges nothing, so
  the model is a relaxation and its optimum a valid lower bound. When the LP (first) or the MIP
  optimum serves a point farther than its last level, that point gets more levels and the
  model is solved again; when no point is beyond its levels, the MIP optimum is the true
  optimum.
* The upper bound and MIP start come from a greedy start improved by vertex substitution
  (Teitz-Bart, with the fast-interchange bookkeeping of Whitaker / Resende-Werneck).

The MIP is solved by HiGHS through OR-Tools' ``model_builder``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from simulations.planning import _validate
from simulations.planning._mip import proven, solve_mip
from simulations.planning.result import PlanResult, relative_gap

logger = logging.getLogger(__name__)

__all__ = ["pmedian_cost", "pmedian_local_search", "solve_pmedian"]

BRANCH_AND_BOUND_MAX_SITES = 1000
"""Sites left after the root penalty tests up to which the Lagrangian branch and bound runs
(more go to the radius-formulation MIP straight away)."""


NODE_STEP_FACTOR = 2.0
"""First Polyak step factor at each branch-and-bound node (halved after 10 steps without
progress). On generated n = 700, p = 10 the tree needs 1,042 nodes with 2.0 and 4,053 with
1.0 (branching on the last chosen site instead: 18,300 / 3,360 / 1,460 / 950 / 4,300 nodes
with 0.5 / 1.0 / 1.5 / 2.0 / 3.0): a warm-started node still needs long steps to lift its
bound past the cutoff within its 20 steps."""


ROOT_FRUITLESS_RESTARTS = 3
"""The root Lagrangian restarts the local search from its bound's sites at each step halving
until this many restarts in a row found nothing better. On generated n = 900, p = 90 every
restart improved (5,065 -> 5,043, the optimum); on n = 700, p = 10 none of the 11 did (the
greedy start was optimal) and they took 40 % of the root's time."""


def pmedian_cost(
    dist: np.ndarray, sites: Iterable[int], weights: np.ndarray | None = None
) -> float:
    """Demand-weighted distance from every demand point to its nearest site in ``sites``."""
    d = np.asarray(dist, dtype=np.float64)
    idx = np.asarray(list(sites), dtype=np.int64)
    nearest = d[:, idx].min(axis=1)
    w = np.ones(d.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    return float(w @ nearest)


def _nearest_two(dist: np.ndarray, open_sites: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per demand point: nearest distance, its position in ``open_sites``, second distance."""
    sub = dist[:, open_sites]
    pos1 = sub.argmin(axis=1)
    rows = np.arange(sub.shape[0])
    d1 = sub[rows, pos1]
    if sub.shape[1] == 1:
        d2 = np.full_like(d1, np.inf)
    else:
        masked = sub.copy()
        masked[rows, pos1] = np.inf
        d2 = masked.min(axis=1)
    return d1, pos1, d2


def _greedy(dist: np.ndarray, w: np.ndarray, p: int, fixed: np.ndarray) -> np.ndarray:
    """Open, one at a time, the site that saves the most. Its saving
    ``gain_j = sum_i w_i max(0, d1_i - d_ij)`` is kept up to date over the points whose
    nearest distance the last opening lowered only (O(n m) in all instead of per site:
    p = 90 on n = 900 took 3.3 s of a 16.6 s solve on the loaded machine)."""
    big = float(dist.max()) * 2.0 + 1.0
    chosen = list(fixed)
    d1 = dist[:, fixed].min(axis=1) if len(fixed) else np.full(dist.shape[0], big)
    available = np.ones(dist.shape[1], dtype=bool)
    available[fixed] = False
    gain = w @ np.maximum(d1[:, None] - dist, 0.0)
    while len(chosen) < p:
        j = int(np.where(available, gain, -np.inf).argmax())
        chosen.append(j)
        available[j] = False
        lowered = np.minimum(d1, dist[:, j])
        rows = np.flatnonzero(lowered < d1)
        if len(rows):
            near = dist[rows]
            gain -= w[rows] @ (
                np.maximum(d1[rows, None] - near, 0.0) - np.maximum(lowered[rows, None] - near, 0.0)
            )
        d1 = lowered
    return np.asarray(chosen, dtype=np.int64)


def _swap_terms(
    d: np.ndarray,
    w: np.ndarray,
    rows: np.ndarray,
    nearest: tuple[np.ndarray, ...],
    k: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the demand points ``rows`` add to the fast-interchange terms (Resende & Werneck
    2003): ``gain`` (m,) of inserting a site, ``loss`` (k,) of removing the one at a
    position, ``extra`` (m, k) the correction for doing both. A point's share depends only
    on its nearest distance, that site's position and its second distance (``nearest``)."""
    d1, pos1, d2 = (a[rows] for a in nearest)
    near, wr = d[rows], w[rows]
    gain = wr @ np.maximum(d1[:, None] - near, 0.0)
    loss = np.bincount(pos1, weights=wr * (d2 - d1), minlength=k)
    contrib = wr[:, None] * np.maximum(d2[:, None] - np.maximum(near, d1[:, None]), 0.0)
    owner = sp.csr_matrix((np.ones(len(rows)), (np.arange(len(rows)), pos1)), shape=(len(rows), k))
    extra = np.asarray((owner.T @ contrib).T)
    return gain, loss, extra


def pmedian_local_search(
    dist: np.ndarray,
    p: int,
    *,
    weights: np.ndarray | None = None,
    fixed: Iterable[int] = (),
    start: Iterable[int] | None = None,
    max_swaps: int = 100_000,
) -> np.ndarray:
    """Greedy start then best-improvement vertex substitution until no swap helps.

    Each pass evaluates every (insert ``j``, remove ``k``) swap at once:
    ``profit(j, k) = gain(j) - loss(k) + extra(j, k)`` with the fast-interchange terms of
    Resende & Werneck (2003). Fixed sites are never removed. Returns the sorted open sites."""
    d = np.asarray(dist, dtype=np.float64)
    n, m = d.shape
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    fixed_arr = np.asarray(sorted(set(fixed)), dtype=np.int64)
    open_sites = (
        np.asarray(list(start), dtype=np.int64)
        if start is not None
        else _greedy(d, w, p, fixed_arr)
    )
    if p == m or p == len(fixed_arr):
        return np.sort(open_sites)
    fixed_mask = np.zeros(m, dtype=bool)
    fixed_mask[fixed_arr] = True
    nearest = _nearest_two(d, open_sites)
    if not np.isfinite(nearest[2]).all():  # p == 1: every single site is a candidate
        costs = w @ d
        costs[fixed_mask] = np.inf
        best = int(costs.argmin())
        if costs[best] < w @ nearest[0] - 1e-9:
            open_sites = np.array([best])
        return np.sort(open_sites)
    # The terms are summed over the points once, then after each swap only the points whose
    # nearest distance, its position or their second distance changed are taken out with
    # their old share and put back with the new one (on n = 900, p = 90 a few dozen points,
    # instead of recomputing three n x m arrays per swap).
    k_count = len(open_sites)
    gain, loss, extra = _swap_terms(d, w, np.arange(n), nearest, k_count)
    cost = float(w @ nearest[0])
    for _ in range(max_swaps):
        profit = gain[:, None] - loss[None, :] + extra
        is_open = np.zeros(m, dtype=bool)
        is_open[open_sites] = True
        profit[is_open, :] = -np.inf
        profit[:, fixed_mask[open_sites]] = -np.inf
        j, k = np.unravel_index(int(profit.argmax()), profit.shape)
        if profit[j, k] <= 1e-9 * max(1.0, cost):
            break
        removed = int(open_sites[k])
        open_sites = open_sites.copy()
        open_sites[k] = j
        after = _nearest_two(d, open_sites)
        new_cost = float(w @ after[0])
        if new_cost >= cost - 1e-12 * max(1.0, cost):  # rounding drift only: stop here
            open_sites[k] = removed
            break
        changed = np.flatnonzero(
            (after[0] != nearest[0]) | (after[1] != nearest[1]) | (after[2] != nearest[2])
        )
        old_terms = _swap_terms(d, w, changed, nearest, k_count)
        new_terms = _swap_terms(d, w, changed, after, k_count)
        gain += new_terms[0] - old_terms[0]
        loss += new_terms[1] - old_terms[1]
        extra += new_terms[2] - old_terms[2]
        nearest, cost = after, new_cost
    return np.sort(open_sites)


class _RadiusModel:
    """The per-point distance levels of the radius formulation."""

    def __init__(self, dist: np.ndarray, w: np.ndarray, p: int, fixed: np.ndarray) -> None:
        self.dist = dist
        self.w = w
        n, m = dist.shape
        keep = m - p + 1
        order = np.argsort(dist, axis=1, kind="stable")[:, :keep]
        cap = dist[:, fixed].min(axis=1) if len(fixed) else np.full(n, np.inf)
        self.levels: list[np.ndarray] = []
        self.site_level: list[np.ndarray] = []  # for each point: (sites, level) of its levels
        for i in range(n):
            near = dist[i, order[i]]
            near = near[near <= cap[i]] if np.isfinite(cap[i]) else near
            u = np.unique(near)
            self.levels.append(u)
        self.full = np.array([len(u) for u in self.levels], dtype=np.int64)

    def level_of(self, i: int, distance: float) -> int:
        return int(np.searchsorted(self.levels[i], distance, side="left"))

    def build(self, kept: np.ndarray, p: int, fixed: np.ndarray) -> tuple:
        """Rows/columns of the truncated model: ``kept[i]`` levels for point ``i``."""
        dist, w = self.dist, self.w
        n, m = dist.shape
        n_z = int((kept - 1).sum())
        z_start = m + np.concatenate(([0], np.cumsum(kept - 1)[:-1]))
        row_start = 1 + np.concatenate(([0], np.cumsum(kept - 1)[:-1]))
        n_rows = 1 + n_z
        rows: list[np.ndarray] = [np.zeros(m, dtype=np.int64)]
        cols: list[np.ndarray] = [np.arange(m, dtype=np.int64)]
        vals: list[np.ndarray] = [np.ones(m)]
        c = np.zeros(m + n_z)
        offset = 0.0
        for i in range(n):
            u = self.levels[i]
            k_i = int(kept[i])
            offset += w[i] * u[0]
            if k_i <= 1:
                continue
            last = u[k_i - 2]
            sites = np.flatnonzero(dist[i] <= last)
            lev = np.searchsorted(u, dist[i, sites], side="left")
            r0, z0 = int(row_start[i]), int(z_start[i])
            ks = np.arange(k_i - 1)
            rows += [r0 + lev, r0 + ks, r0 + ks[1:]]
            cols += [sites, z0 + ks, z0 + ks[:-1]]
            vals += [np.ones(len(sites)), np.ones(k_i - 1), -np.ones(k_i - 2)]
            c[z0 : z0 + k_i - 1] = w[i] * np.diff(u[:k_i])
        matrix = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n_rows, m + n_z),
        )
        row_lb = np.zeros(n_rows)
        row_lb[0] = p
        row_lb[row_start[kept > 1]] = 1.0
        row_ub = np.full(n_rows, np.inf)
        row_ub[0] = p
        var_lb = np.zeros(m + n_z)
        var_lb[fixed] = 1.0
        var_ub = np.ones(m + n_z)
        integer = np.zeros(m + n_z, dtype=bool)
        integer[:m] = True
        return matrix, row_lb, row_ub, var_lb, var_ub, integer, c, offset, z_start


def solve_pmedian(
    dist: np.ndarray,
    p: int,
    *,
    weights: np.ndarray | None = None,
    fixed: Iterable[int] = (),
    time_limit_s: float = 60.0,
) -> PlanResult:
    """Open exactly ``p`` of the columns of ``dist`` (demand x site distances) minimising the
    weighted distance from each demand point to its nearest open site.

    ``fixed`` sites are open in every answer (existing bases). ``proven_optimal`` is set only
    when the lower bound meets the objective; otherwise ``gap`` says how far apart they are and
    the answer is the best solution found (never worse than the heuristic one).
    """
    started = time.perf_counter()
    d = _validate.check_distances(dist)
    if not np.isfinite(d).all():
        raise ValueError("dist must be finite (every site reachable from every demand point)")
    n, m = d.shape
    p = _validate.check_p(p, m)
    w = np.ones(n) if weights is None else _validate.check_demand(weights, n, name="weights")
    fixed_arr = _validate.check_fixed(fixed, m, p)
    limit = _validate.check_time_limit(time_limit_s)
    integral = _validate.is_integral(d, w)

    best = pmedian_local_search(d, p, weights=w, fixed=fixed_arr)
    best_cost = pmedian_cost(d, best, w)
    if p == m or p == len(fixed_arr) or p == 1:
        # Nothing to choose, or (p = 1) the local search tried every single site.
        return _result(best_cost, best, best_cost, started, integral, "enumeration")

    # Phase 0: the Lagrangian bound (equal to the LP bound at convergence, in a fraction of
    # the LP's time) and the sites it proves closed (or open) in any better solution.
    lagrange = _lagrangian(d, w, p, fixed_arr, best, best_cost, integral, limit, started)
    if lagrange.best_cost < best_cost - 1e-9:
        best, best_cost = lagrange.best, lagrange.best_cost
    lower = lagrange.bound
    logger.debug(
        "p-median Lagrangian bound %.3f, incumbent %.3f, %d of %d sites left, %d kept open",
        lower, best_cost, len(lagrange.candidates), m, len(lagrange.must_open),
    )  # fmt: skip
    if proven(best_cost, lower, maximize=False, integral=integral):
        return _result(best_cost, best, lower, started, integral, "lagrangian")
    if len(lagrange.candidates) == p:  # the only possible better solution
        cost = pmedian_cost(d, lagrange.candidates, w)
        if cost < best_cost - 1e-9:
            best, best_cost = lagrange.candidates, cost
        return _result(best_cost, best, best_cost, started, integral, "lagrangian")
    # The exact model over the sites left: indices below are positions in ``candidates``.
    candidates = lagrange.candidates
    if len(candidates) <= BRANCH_AND_BOUND_MAX_SITES:
        sub = d[:, candidates]
        sub_fixed = np.flatnonzero(np.isin(candidates, np.union1d(fixed_arr, lagrange.must_open)))
        finished, found_bb, found_cost = _branch_and_bound(
            sub, w, p, sub_fixed, lagrange.multipliers, np.zeros(0, dtype=np.int64), best_cost,
            integral, started + 0.8 * limit,
        )  # fmt: skip
        if found_cost < best_cost - 1e-9:
            best, best_cost = candidates[found_bb], found_cost
        if finished:
            return _result(best_cost, best, best_cost, started, integral, "lagrangian-bb")
    sub = d[:, candidates]
    sub_fixed = np.flatnonzero(np.isin(candidates, np.union1d(fixed_arr, lagrange.must_open)))
    served = d[:, best].min(axis=1)
    bound, found = _solve_radius(
        sub, w, p, sub_fixed, served, best_cost, lower, integral, limit, started
    )
    if found is not None:
        cost = pmedian_cost(d, candidates[found], w)
        if cost < best_cost - 1e-9:
            best, best_cost = candidates[found], cost
    # Bounds of the reduced model hold for better solutions only: the incumbent caps them.
    bound = min(bound, best_cost)
    return _result(best_cost, best, bound, started, integral, "radius-mip")


@dataclass(frozen=True, slots=True)
class _Lagrangian:
    bound: float
    """Best Lagrangian bound found (a valid lower bound on the optimum)."""
    best: np.ndarray
    best_cost: float
    """Best solution seen (the incumbent, or a better one from the subproblems)."""
    candidates: np.ndarray
    """Sorted sites that may be open in a solution better than the incumbent."""
    must_open: np.ndarray
    """Sites (among ``candidates``) open in every solution better than the incumbent."""
    multipliers: np.ndarray
    """The multipliers of ``bound`` (a warm start for the branch and bound)."""


def _lagrangian(
    d: np.ndarray,
    w: np.ndarray,
    p: int,
    fixed: np.ndarray,
    best: np.ndarray,
    best_cost: float,
    integral: bool,
    limit: float,
    started: float,
    max_iterations: int = 3000,
) -> _Lagrangian:
    """Relax "every point is served once" with multipliers ``lam`` (Cornuéjols, Fisher &
    Nemhauser 1977; Beasley 1993), solved by subgradient steps.

    For given ``lam`` the relaxation opens the ``p`` sites of least
    ``rho_j = sum_i min(0, w_i d_ij - lam_i)``, and ``L(lam) = sum lam + sum of those rho``
    is a lower bound for every ``lam``; its maximum equals the LP bound. It costs O(n m) a
    step instead of a simplex solve. Penalty tests then close every site whose opening
    alone lifts ``L`` past the cutoff (``L + rho_j - rho_last_in``), and keep open every
    chosen site whose closing does (``L + rho_first_out - rho_j``): on pmed16 337 of 400
    sites are closed, which leaves the MIP a small model. Each subproblem's sites are also
    a solution; one better than the incumbent is improved by local search and kept."""
    m = d.shape[1]
    cost = w[:, None] * d
    is_fixed = np.zeros(m, dtype=bool)
    is_fixed[fixed] = True
    free = np.flatnonzero(~is_fixed)
    k = p - len(fixed)  # free sites each subproblem opens (>= 1 here)
    lam = cost[:, best].min(axis=1)
    best_lam, bound = lam, -np.inf
    step_factor, stall = 2.0, 0
    buffer = np.empty_like(cost)
    tried: set[tuple[int, ...]] = set()
    bound_sites = best
    fruitless = 0  # restarts in a row that did not beat the incumbent
    for _ in range(max_iterations):
        rho = _site_rho(cost, lam, buffer)
        chosen = free[np.argpartition(rho[free], k - 1)[:k]]
        opened = np.concatenate((fixed, chosen))
        value = float(lam.sum() + rho[opened].sum())
        if value > bound + 1e-9:
            bound, best_lam, bound_sites, stall = value, lam, opened, 0
        else:
            stall += 1
            if stall >= 20:
                step_factor, stall = step_factor / 2.0, 0
                # The sites of the best bound so far are a good start for the local search
                # (on larger instances it beats the greedy start by up to 1 %).
                key = tuple(np.sort(bound_sites).tolist())
                if key not in tried and fruitless < ROOT_FRUITLESS_RESTARTS:
                    tried.add(key)
                    improved = pmedian_local_search(d, p, weights=w, fixed=fixed, start=key)
                    improved_cost = pmedian_cost(d, improved, w)
                    if improved_cost < best_cost - 1e-9:
                        best, best_cost, fruitless = improved, improved_cost, 0
                    else:
                        fruitless += 1
        if proven(best_cost, bound, maximize=False, integral=integral):
            break
        if step_factor < 1e-3 or time.perf_counter() - started > limit / 4:
            break
        subgradient = 1.0 - (cost[:, opened] < lam[:, None]).sum(axis=1)
        norm = float(subgradient @ subgradient)
        if norm == 0.0:  # the subproblem's solution serves every point once: optimal
            break
        lam = np.maximum(lam + step_factor * (best_cost - value) / norm * subgradient, 0.0)
    # Penalty tests with the best multipliers, against the final incumbent.
    rho = np.minimum(cost - best_lam[:, None], 0.0).sum(axis=0)
    order = free[np.argsort(rho[free], kind="stable")]
    chosen, rest = order[:k], order[k:]
    cutoff = _cutoff(best_cost, integral) + 1e-7 * max(1.0, abs(best_cost))
    keep = np.ones(m, dtype=bool)
    if len(rest):
        keep[rest] = bound + rho[rest] - rho[chosen[-1]] <= cutoff
        must_open = chosen[bound + rho[rest[0]] - rho[chosen] > cutoff]
    else:
        must_open = np.zeros(0, dtype=np.int64)
    return _Lagrangian(
        bound=bound,
        best=np.sort(best),
        best_cost=best_cost,
        candidates=np.flatnonzero(keep),
        must_open=np.sort(must_open),
        multipliers=best_lam,
    )


def _site_rho(cost: np.ndarray, lam: np.ndarray, buffer: np.ndarray) -> np.ndarray:
    """``rho_j = sum_i min(0, cost_ij - lam_i)``, in place in ``buffer`` (no n x m temporaries:
    this is the whole cost of a subgradient step)."""
    np.subtract(cost, lam[:, None], out=buffer)
    np.minimum(buffer, 0.0, out=buffer)
    result: np.ndarray = buffer.sum(axis=0)
    return result


def _branch_and_bound(
    d: np.ndarray,
    w: np.ndarray,
    p: int,
    fixed: np.ndarray,
    lam: np.ndarray,
    best: np.ndarray,
    best_cost: float,
    integral: bool,
    deadline: float,
    max_node_iterations: int = 20,
) -> tuple[bool, np.ndarray, float]:
    """Depth-first branch and bound on the sites with the Lagrangian bound (Beasley 1993).

    Meant for the few sites the root penalty tests leave (HiGHS and SCIP need 35-40 s on
    pmed16's 63 sites: the LP is degenerate and every node re-solves it; a node here is at most
    ``max_node_iterations`` O(n m) steps warm-started from its parent's multipliers: with
    step factor 1, 25 proved a generated n = 500, p = 5 instance in 2.6 s, 50 in 4.3 s, 150
    in 7.6 s; with factor 2, generated 700,10 needs 15,100 / 15,700 / 19,000 / 21,300 steps
    with at most 15 / 20 / 25 / 35 a node, and 1,353 / 1,049 / 1,042 / 844 nodes). Each
    node fixes sites open or closed; its penalty tests fix more; a node with ``p`` sites
    open is a solution.
    Branches on the subproblem's free site of least ``rho``, "open" first. Returns whether
    the search finished (then the incumbent is optimal), the incumbent and its cost."""
    m = d.shape[1]
    cost = w[:, None] * d
    start_open = np.zeros(m, dtype=bool)
    start_open[fixed] = True
    buffer = np.empty_like(cost)
    stack: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [
        (start_open, np.zeros(m, dtype=bool), lam)
    ]
    while stack:
        if time.perf_counter() > deadline:
            return False, best, best_cost
        is_open, closed, lam = stack.pop()
        cutoff = _cutoff(best_cost, integral) + 1e-7 * max(1.0, abs(best_cost))
        opened = np.flatnonzero(is_open)
        free = np.flatnonzero(~is_open & ~closed)
        k = p - len(opened)
        if len(free) < k:
            continue
        if k == 0 or len(free) == k:
            sites = np.concatenate((opened, free[:k] if k else free[:0]))
            value = pmedian_cost(d, sites, w)
            if value < best_cost - 1e-9:
                best, best_cost = sites, value
            continue
        bound, node_lam, step_factor, stall = -np.inf, lam, NODE_STEP_FACTOR, 0
        pruned = False
        # Closed sites leave the node's matrix: deep nodes step over a few columns only.
        active = np.flatnonzero(~closed)
        node_cost = cost[:, active]
        node_buffer = buffer[:, : len(active)]
        rho = np.full(m, np.inf)
        for _ in range(max_node_iterations):
            rho[active] = _site_rho(node_cost, lam, node_buffer)
            chosen = free[np.argpartition(rho[free], k - 1)[:k]]
            sites = np.concatenate((opened, chosen))
            value = float(lam.sum() + rho[sites].sum())
            if value > bound + 1e-9:
                bound, node_lam, stall = value, lam, 0
            else:
                stall += 1
                if stall >= 10:
                    step_factor, stall = step_factor / 2.0, 0
            # The subproblem's sites as a solution, when they gave a better bound (the
            # others are mostly repeats; the leaves are evaluated anyway).
            primal = pmedian_cost(d, sites, w) if stall == 0 else np.inf
            if primal < best_cost - 1e-9:
                best, best_cost = sites, primal
                cutoff = _cutoff(best_cost, integral) + 1e-7 * max(1.0, abs(best_cost))
            if bound > cutoff:
                pruned = True
                break
            subgradient = 1.0 - (cost[:, sites] < lam[:, None]).sum(axis=1)
            norm = float(subgradient @ subgradient)
            if norm == 0.0 or step_factor < 1e-3:
                break
            lam = lam + step_factor * (best_cost - value) / norm * subgradient
        if pruned:
            continue
        # Penalty tests with the node's best multipliers.
        rho[active] = _site_rho(node_cost, node_lam, node_buffer)
        order = free[np.argsort(rho[free], kind="stable")]
        chosen, rest = order[:k], order[k:]
        closed = closed.copy()
        closed[rest[bound + rho[rest] - rho[chosen[-1]] > cutoff]] = True
        is_open = is_open.copy()
        is_open[chosen[bound + rho[rest[0]] - rho[chosen] > cutoff]] = True
        if is_open.sum() > p:
            continue  # more sites must be open than allowed: no better solution here
        free_chosen = chosen[~is_open[chosen]]
        if len(free_chosen) == 0:  # the tests opened p sites: evaluate them as a leaf
            stack.append((is_open, closed, node_lam))
            continue
        branch = int(free_chosen[0])
        with_site = is_open.copy()
        with_site[branch] = True
        without_site = closed.copy()
        without_site[branch] = True
        stack.append((is_open, without_site, node_lam))
        stack.append((with_site, closed, node_lam))
    return True, best, best_cost


def _solve_radius(
    d: np.ndarray,
    w: np.ndarray,
    p: int,
    fixed_arr: np.ndarray,
    served: np.ndarray,
    best_cost: float,
    lower: float,
    integral: bool,
    limit: float,
    started: float,
) -> tuple[float, np.ndarray | None]:
    """The radius formulation over the columns of ``d``, by row generation (LP, then MIP).

    ``served`` is each point's distance in the incumbent (of cost ``best_cost``), which sets
    the first truncation; ``lower`` a bound already known. Returns the best bound and the
    best solution found that beats the incumbent (positions in ``d``'s columns), if any."""
    n, m = d.shape
    found: np.ndarray | None = None
    model = _RadiusModel(d, w, p, fixed_arr)
    kept = np.minimum(
        model.full, np.array([model.level_of(i, served[i]) + 2 for i in range(n)], dtype=np.int64)
    )
    lp_fixing: tuple[float, np.ndarray, np.ndarray] | None = None
    # Phase 1: the LP relaxation, growing the levels of points the LP serves beyond them.
    for _ in range(50):
        built = model.build(kept, p, fixed_arr)
        matrix, row_lb, row_ub, var_lb, var_ub, integer, c, offset, z_start = built
        remaining = limit - (time.perf_counter() - started)
        lp = solve_mip(
            objective=c, matrix=matrix, row_lb=row_lb, row_ub=row_ub, var_lb=var_lb,
            var_ub=var_ub, integer=np.zeros_like(integer), maximize=False,
            time_limit_s=remaining, offset=offset,
        )  # fmt: skip
        if lp.status != "OPTIMAL" or lp.values is None:
            break
        lower = max(lower, lp.objective)
        if lp.reduced_costs is not None:
            lp_fixing = (lp.objective, lp.reduced_costs[:m], lp.values[:m])
        tail = _tail_values(lp.values, kept, z_start)
        grow = (tail > 1e-6) & (kept < model.full)
        if not grow.any():
            break
        kept[grow] = np.minimum(model.full[grow], 2 * kept[grow] + 1)
    logger.debug("p-median LP bound %.3f, heuristic %.3f", lower, best_cost)
    if proven(best_cost, lower, maximize=False, integral=integral):
        return lower, None

    # Phase 2: the MIP, re-solved with more levels while its optimum leaves them. Only
    # solutions better than the incumbent are searched for (a cutoff, and reduced-cost fixing
    # of the sites whose LP reduced cost already lifts the bound past the incumbent).
    bound = lower
    for _ in range(50):
        remaining = limit - (time.perf_counter() - started)
        if remaining <= 0.05:
            break
        cutoff = _cutoff(best_cost, integral)
        built = model.build(kept, p, fixed_arr)
        matrix, row_lb, row_ub, var_lb, var_ub, integer, c, offset, z_start = built
        if lp_fixing is not None:
            _reduced_cost_fixing(var_lb, var_ub, lp_fixing, fixed_arr, cutoff)
        sol = solve_mip(
            objective=c, matrix=matrix, row_lb=row_lb, row_ub=row_ub, var_lb=var_lb,
            var_ub=var_ub, integer=integer, maximize=False, time_limit_s=remaining,
            offset=offset, cutoff=cutoff,
        )  # fmt: skip
        if sol.status == "INFEASIBLE":  # nothing beats the incumbent
            bound = max(bound, best_cost if integral else cutoff)
            break
        if np.isfinite(sol.bound):
            bound = max(bound, min(sol.bound, best_cost))
        if sol.values is None:
            break
        sites = np.flatnonzero(sol.values[:m] > 0.5)
        cost = pmedian_cost(d, sites, w)
        if cost < best_cost - 1e-9:
            found, best_cost = sites, cost
        if sol.status != "OPTIMAL":
            break
        served = d[:, sites].min(axis=1)
        caps = np.array([model.levels[i][kept[i] - 1] for i in range(n)])
        beyond = served > caps + 1e-9
        bound = max(bound, min(sol.objective, best_cost))
        if not beyond.any():
            break  # the relaxation's optimum is a true solution, hence optimal
        for i in np.flatnonzero(beyond):
            kept[i] = min(
                int(model.full[i]), max(model.level_of(int(i), served[i]) + 1, 2 * int(kept[i]))
            )
    return bound, found


def _cutoff(best_cost: float, integral: bool) -> float:
    """Objective value a solution must beat to improve on ``best_cost``."""
    return best_cost - 1.0 + 1e-6 if integral else best_cost * (1.0 - 1e-10)


def _reduced_cost_fixing(
    var_lb: np.ndarray,
    var_ub: np.ndarray,
    lp_fixing: tuple[float, np.ndarray, np.ndarray],
    fixed: np.ndarray,
    cutoff: float,
) -> None:
    """Fix sites whose other value would lift the LP bound above ``cutoff``.

    ``lp_fixing`` is (LP optimum, reduced costs of the sites, LP values of the sites). A site
    at 0 with LP + rc > cutoff cannot be open in a solution that beats the incumbent; a site
    at 1 with LP - rc > cutoff cannot be closed. Valid for every larger truncation too (each
    one is a tighter relaxation of the same problem)."""
    lp_value, rc, y = lp_fixing
    m = len(y)
    free = np.ones(m, dtype=bool)
    free[fixed] = False
    close = free & (y < 1e-9) & (lp_value + rc > cutoff + 1e-7)
    keep_open = free & (y > 1 - 1e-9) & (lp_value - rc > cutoff + 1e-7)
    var_ub[:m][close] = 0.0
    var_lb[:m][keep_open] = 1.0
    logger.debug("reduced-cost fixing: %d sites closed, %d kept open", close.sum(), keep_open.sum())


def _tail_values(values: np.ndarray, kept: np.ndarray, z_start: np.ndarray) -> np.ndarray:
    """The last z of each point (its residual beyond the kept levels); 0 when it has none."""
    out = np.zeros(len(kept))
    has = kept > 1
    out[has] = values[z_start[has] + kept[has] - 2]
    return out


def _result(
    cost: float, sites: np.ndarray, bound: float, started: float, integral: bool, method: str
) -> PlanResult:
    optimal = proven(cost, bound, maximize=False, integral=integral)
    return PlanResult(
        objective=cost,
        sites=tuple(int(s) for s in np.sort(sites)),
        proven_optimal=optimal,
        best_bound=float(bound),
        gap=0.0 if optimal else relative_gap(cost, bound),
        seconds=time.perf_counter() - started,
        method=method,
    )
