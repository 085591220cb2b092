"""p-median: OR-Library optima, brute-force agreement, fixed sites and bad input."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from simulations.planning._mip import solve_mip
from simulations.planning.instances import (
    beasley_pmedian,
    beasley_pmedian_text,
    parse_orlib_pmedian,
    read_orlib_pmedian,
)
from simulations.planning.pmedian import (
    _branch_and_bound,
    _lagrangian,
    pmedian_cost,
    pmedian_local_search,
    solve_pmedian,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "orlib_pmed"

OPTIMA = {
    1: 5819, 2: 4093, 3: 4250, 4: 3034, 5: 1355, 6: 7824, 7: 5631, 8: 4445, 9: 2734,
    10: 1255, 11: 7696, 12: 6634, 13: 4374, 14: 2968, 15: 1729, 16: 8162, 17: 6999,
    18: 4809, 19: 2845, 20: 1789,
}  # fmt: skip


def _check_orlib(k: int) -> None:
    inst = read_orlib_pmedian(DATA / f"pmed{k}.txt")
    result = solve_pmedian(inst.dist, inst.p, time_limit_s=120)
    assert result.objective == OPTIMA[k]
    assert result.proven_optimal
    assert result.gap == 0.0
    assert len(result.sites) == inst.p
    assert pmedian_cost(inst.dist, result.sites) == OPTIMA[k]


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_orlib_small_proven_optimal(k: int) -> None:
    """pmed1-5 (n = 100) reach the published optimum and prove it."""
    _check_orlib(k)


@pytest.mark.slow
@pytest.mark.parametrize("k", list(range(6, 21)))
def test_orlib_medium_proven_optimal(k: int) -> None:
    """pmed6-20 (n = 200-400) reach the published optimum and prove it (about 7 s in all on
    the loaded 2-core machine)."""
    _check_orlib(k)


def _brute(dist: np.ndarray, p: int, w: np.ndarray, fixed: tuple[int, ...] = ()) -> float:
    m = dist.shape[1]
    best = np.inf
    for combo in itertools.combinations(range(m), p):
        if set(fixed) <= set(combo):
            best = min(best, pmedian_cost(dist, combo, w))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_on_weighted_euclidean(seed: int) -> None:
    """On small random weighted instances with real-valued (Euclidean) distances and more
    demand points than sites, the proven optimum equals exhaustive search."""
    rng = np.random.default_rng(seed)
    demand_xy = rng.uniform(0, 100, size=(25, 2))
    site_xy = rng.uniform(0, 100, size=(9, 2))
    dist = np.linalg.norm(demand_xy[:, None] - site_xy[None], axis=2)
    w = rng.uniform(0.5, 3.0, size=25)
    p = int(rng.integers(1, 5))
    result = solve_pmedian(dist, p, weights=w)
    assert result.proven_optimal
    assert result.objective == pytest.approx(_brute(dist, p, w), rel=1e-9)
    assert pmedian_cost(dist, result.sites, w) == pytest.approx(result.objective)


def test_fixed_sites_are_open_and_optimal_given_them() -> None:
    """Fixed sites are in the answer, and the answer is the best among sets containing them
    (worse than the free optimum when the fixed site is a poor one)."""
    inst = read_orlib_pmedian(DATA / "pmed1.txt")
    sub = inst.dist[:30, :12]
    w = np.ones(30)
    free = solve_pmedian(sub, 3)
    worst_site = int(np.argmax(sub.sum(axis=0)))
    forced = solve_pmedian(sub, 3, fixed=[worst_site])
    assert worst_site in forced.sites
    assert forced.proven_optimal
    assert forced.objective == _brute(sub, 3, w, (worst_site,))
    assert forced.objective >= free.objective


def test_local_search_is_a_local_optimum() -> None:
    """Vertex substitution returns p distinct sites no single swap can improve."""
    inst = read_orlib_pmedian(DATA / "pmed2.txt")
    sites = pmedian_local_search(inst.dist, inst.p)
    assert len(set(sites.tolist())) == inst.p
    cost = pmedian_cost(inst.dist, sites)
    for out in sites[:3]:
        for new in range(0, inst.n, 7):
            if new in sites:
                continue
            swapped = [s for s in sites if s != out] + [new]
            assert pmedian_cost(inst.dist, swapped) >= cost - 1e-9


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"p": 0}, "p must be >= 1"),
        ({"p": -2}, "p must be >= 1"),
        ({"p": 5}, "p = 5 exceeds the number of candidate sites"),
        ({"p": 2, "weights": [1, -1, 1]}, "weights must be >= 0"),
        ({"p": 2, "weights": [1, 1]}, "weights must be a vector of length 3"),
        ({"p": 2, "fixed": [7]}, "fixed site 7 is out of range"),
        ({"p": 1, "fixed": [0, 1]}, "more than p = 1"),
        ({"p": 2, "time_limit_s": 0}, "time_limit_s must be > 0"),
    ],
)
def test_bad_input_names_the_argument(kwargs: dict[str, object], match: str) -> None:
    """Bad arguments raise ValueError naming the argument and the reason."""
    dist = np.array([[0.0, 1.0, 2.0, 3.0], [1.0, 0.0, 1.0, 2.0], [2.0, 1.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match=match):
        solve_pmedian(dist, **kwargs)  # type: ignore[arg-type]


def test_bad_distances_raise() -> None:
    """Negative or infinite distances are refused."""
    with pytest.raises(ValueError, match="dist must be >= 0"):
        solve_pmedian(np.array([[0.0, -1.0]]), 1)
    with pytest.raises(ValueError, match="dist must be finite"):
        solve_pmedian(np.array([[0.0, np.inf]]), 1)


def _small_beasley(n: int, p: int, seed: int, edges: int) -> np.ndarray:
    return parse_orlib_pmedian(beasley_pmedian_text(n, p, seed, edges=edges)).dist


@pytest.mark.parametrize(("p", "seed"), [(2, 0), (3, 1), (4, 2), (3, 3), (5, 4)])
def test_matches_brute_force_on_generated_graphs(p: int, seed: int) -> None:
    """On small Beasley-style graphs (14 vertices, 30 edges) the proven optimum equals
    exhaustive search."""
    dist = _small_beasley(14, p, seed, edges=30)
    result = solve_pmedian(dist, p)
    assert result.proven_optimal
    assert result.objective == _brute(dist, p, np.ones(14))


def _classic_mip_optimum(dist: np.ndarray, p: int) -> float:
    """The assignment formulation (ReVelle & Swain 1970), solved by HiGHS on its own."""
    n, m = dist.shape
    x = m + np.arange(n * m).reshape(n, m)
    rows = [np.zeros(m, dtype=np.int64)]
    cols = [np.arange(m)]
    vals = [np.ones(m)]
    for i in range(n):  # sum_j x_ij = 1
        rows.append(np.full(m, 1 + i))
        cols.append(x[i])
        vals.append(np.ones(m))
    link = 1 + n + np.arange(n * m)  # y_j - x_ij >= 0
    rows += [link, link]
    cols += [x.ravel(), np.tile(np.arange(m), n)]
    vals += [-np.ones(n * m), np.ones(n * m)]
    n_rows = 1 + n + n * m
    matrix = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_rows, m + n * m),
    )
    row_lb = np.r_[p, np.ones(n), np.zeros(n * m)]
    row_ub = np.r_[p, np.ones(n), np.full(n * m, np.inf)]
    integer = np.zeros(m + n * m, dtype=bool)
    integer[:m] = True
    solution = solve_mip(
        objective=np.r_[np.zeros(m), dist.ravel()], matrix=matrix, row_lb=row_lb,
        row_ub=row_ub, var_lb=np.zeros(m + n * m), var_ub=np.ones(m + n * m),
        integer=integer, maximize=False, time_limit_s=60,
    )  # fmt: skip
    assert solution.status == "OPTIMAL"
    return solution.objective


@pytest.mark.parametrize(("p", "seed"), [(3, 0), (5, 1), (8, 2)])
def test_matches_the_classic_formulation_on_generated_graphs(p: int, seed: int) -> None:
    """On 40-vertex Beasley-style graphs the optimum equals the assignment-formulation MIP's."""
    dist = _small_beasley(40, p, seed, edges=80)
    result = solve_pmedian(dist, p)
    assert result.proven_optimal
    assert result.objective == pytest.approx(_classic_mip_optimum(dist, p), abs=1e-6)
    assert pmedian_cost(dist, result.sites) == result.objective


@pytest.mark.parametrize("seed", range(4))
def test_branch_and_bound_alone_finds_the_optimum(seed: int) -> None:
    """From zero multipliers and a poor incumbent (the first p sites), the Lagrangian branch
    and bound finishes with the exhaustive-search optimum, also with real-valued weighted
    distances and a fixed site."""
    rng = np.random.default_rng(seed)
    dist = np.linalg.norm(rng.uniform(0, 100, (20, 1, 2)) - rng.uniform(0, 100, (1, 11, 2)), axis=2)
    w = rng.uniform(0.5, 3.0, size=20)
    p = 3
    for fixed in ((), (int(rng.integers(11)),)):
        fixed_arr = np.asarray(fixed, dtype=np.int64)
        start = np.r_[fixed_arr, [j for j in range(11) if j not in fixed][: p - len(fixed)]]
        finished, sites, cost = _branch_and_bound(
            dist, w, p, fixed_arr, np.zeros(20), start, pmedian_cost(dist, start, w),
            integral=False, deadline=time.perf_counter() + 60,
        )  # fmt: skip
        assert finished
        assert set(fixed) <= set(sites.tolist())
        assert cost == pytest.approx(_brute(dist, p, w, fixed), rel=1e-9)
        assert pmedian_cost(dist, sites, w) == pytest.approx(cost)


def test_penalty_tests_keep_every_better_solution() -> None:
    """Given an incumbent worse than the optimum (the next-best value), the sites the
    Lagrangian penalty tests leave include the optimal ones and the sites they keep open are
    among them; and they do close sites. (19 steps: before any step halving, so the local
    search never replaces the incumbent.)"""
    closed_any = False
    for seed in range(6):
        dist = _small_beasley(14, 3, seed, edges=30)
        w = np.ones(14)
        ranked = sorted(
            itertools.combinations(range(14), 3), key=lambda s: pmedian_cost(dist, s, w)
        )
        best_value = pmedian_cost(dist, ranked[0], w)
        optimum = ranked[0]
        incumbent = np.asarray(next(s for s in ranked if pmedian_cost(dist, s, w) > best_value))
        assert pmedian_cost(dist, incumbent, w) > pmedian_cost(dist, optimum, w)
        lagrange = _lagrangian(
            dist, w, 3, np.zeros(0, dtype=np.int64), incumbent, pmedian_cost(dist, incumbent, w),
            True, 60.0, time.perf_counter(), max_iterations=19,
        )  # fmt: skip
        assert lagrange.best_cost == pmedian_cost(dist, incumbent, w)
        assert lagrange.bound <= pmedian_cost(dist, optimum, w) + 1e-9
        assert set(optimum) <= set(lagrange.candidates.tolist())
        assert set(lagrange.must_open.tolist()) <= set(optimum)
        closed_any |= len(lagrange.candidates) < 14
    assert closed_any


@pytest.mark.parametrize(("n", "p", "seed"), [(60, 4, 0), (60, 4, 2), (60, 6, 1)])
def test_branch_and_bound_path_matches_the_classic_formulation(n: int, p: int, seed: int) -> None:
    """Full-density Beasley-style graphs (n^2/50 edges) whose root bound leaves a gap, so the
    Lagrangian branch and bound (with its long node steps) does the proof: its optimum equals
    the assignment-formulation MIP's."""
    dist = beasley_pmedian(n, p, seed).dist
    result = solve_pmedian(dist, p)
    assert result.method == "lagrangian-bb"
    assert result.proven_optimal
    assert result.objective == pytest.approx(_classic_mip_optimum(dist, p), abs=1e-6)
    assert pmedian_cost(dist, result.sites) == result.objective
