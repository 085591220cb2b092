"""Covering models: Swain's MCLP table, backup coverage, fixed sites, min-facilities and bad
input."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from simulations.planning.coverage import (
    coverage_from_distances,
    covered_demand,
    greedy_mclp,
    solve_mclp,
    solve_min_facilities,
)
from simulations.planning.instances import read_points

SWAIN = Path(__file__).resolve().parents[2] / "data" / "mclp_swain" / "swain.txt"

# Church & ReVelle's table for Swain's 55 nodes (tests/data/BENCHMARKS_README.md).
SWAIN_OPTIMA = {
    5: [303, 366, 405, 433, 452, 470, 499, 524],
    10: [425, 502, 548, 581, 609, 625, 638, 640],
    15: [515, 593, 625, 638, 640, 640, 640, 640],
}
P_VALUES = [1, 2, 3, 4, 5, 6, 8, 10]


@pytest.fixture(scope="module")
def swain() -> tuple[np.ndarray, np.ndarray]:
    inst = read_points(SWAIN)
    return inst.distances(), inst.demand


@pytest.mark.parametrize(
    ("radius", "p", "expected"),
    [(s, p, SWAIN_OPTIMA[s][k]) for s in SWAIN_OPTIMA for k, p in enumerate(P_VALUES)],
)
def test_swain_table(
    swain: tuple[np.ndarray, np.ndarray], radius: int, p: int, expected: int
) -> None:
    """Every cell of the Swain table is reached exactly and proven optimal with p sites."""
    dist, demand = swain
    cov = coverage_from_distances(dist, radius)
    result = solve_mclp(cov, demand, p)
    assert result.objective == expected
    assert result.proven_optimal
    assert len(result.sites) == p
    assert covered_demand(cov, demand, result.sites)[0] == expected


def test_radius_tie_counts_as_covered() -> None:
    """A distance equal to the radius up to float noise is covered; just beyond is not."""
    d = np.array([[np.sqrt(2.0) * np.sqrt(2.0), 2.0000001, np.inf]])
    cov = coverage_from_distances(d, 2.0).toarray()
    assert cov.tolist() == [[True, False, False]]


def _random_instance(seed: int, n: int = 14, m: int = 8) -> tuple[sp.csr_matrix, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 10, size=(n, 2))
    b = rng.uniform(0, 10, size=(m, 2))
    cov = coverage_from_distances(np.linalg.norm(a[:, None] - b[None], axis=2), 3.5)
    return cov, rng.integers(0, 20, size=n).astype(float)


def _brute_mclp(
    cov: sp.csr_matrix, w: np.ndarray, p: int, fixed: tuple[int, ...] = ()
) -> tuple[float, float]:
    best = (-1.0, -1.0)
    for combo in itertools.combinations(range(cov.shape[1]), p):
        if set(fixed) <= set(combo):
            best = max(best, covered_demand(cov, w, combo))
    return best


@pytest.mark.parametrize("seed", range(5))
def test_backup_is_lexicographic_optimum(seed: int) -> None:
    """With backup=True the primary coverage is still the maximum and the double coverage is
    the largest possible among the sets achieving it (exhaustive search)."""
    cov, w = _random_instance(seed)
    p = 3
    best_once, best_twice = _brute_mclp(cov, w, p)
    plain = solve_mclp(cov, w, p)
    result = solve_mclp(cov, w, p, backup=True)
    assert plain.objective == best_once
    assert result.objective == best_once
    assert result.backup_covered_demand == best_twice
    assert result.proven_optimal


@pytest.mark.parametrize("seed", range(4))
def test_dominated_and_duplicate_sites_keep_the_optimum(seed: int) -> None:
    """Sites whose covering set is a subset or a copy of another's (which the solver leaves
    out of its model) change nothing: the optimum matches exhaustive search, also when a
    dominated site is fixed, and exactly p sites are returned."""
    cov, w = _random_instance(seed)
    dense = cov.toarray()
    sub = dense[:, 0] & (np.arange(dense.shape[0]) % 2 == 0)  # a subset of site 0
    wide = sp.csr_matrix(np.column_stack([dense, dense[:, 1], sub, dense[:, 2]]))
    m = wide.shape[1]
    for p, fixed in ((3, ()), (4, (m - 2,)), (4, (m - 3, 1))):
        result = solve_mclp(wide, w, p, fixed=fixed)
        assert result.proven_optimal
        assert len(result.sites) == p
        assert set(fixed) <= set(result.sites)
        assert result.objective == _brute_mclp(wide, w, p, fixed)[0]
        assert result.objective == covered_demand(wide, w, result.sites)[0]


@pytest.mark.parametrize("seed", range(3))
def test_fixed_sites_honoured(seed: int) -> None:
    """Fixed sites are open, and the rest is optimal given them (exhaustive search)."""
    cov, w = _random_instance(seed)
    fixed = (0, 5)
    result = solve_mclp(cov, w, 4, fixed=fixed)
    assert set(fixed) <= set(result.sites)
    assert len(result.sites) == 4
    assert result.objective == _brute_mclp(cov, w, 4, fixed)[0]


@pytest.mark.parametrize(("seed", "share"), [(0, 0.5), (1, 0.8), (2, 0.6), (3, 0.7)])
def test_min_facilities_is_fewest(seed: int, share: float) -> None:
    """min-facilities returns the smallest k for which some k sites reach the target share
    (exhaustive search), and its sites do reach it."""
    cov, w = _random_instance(seed)
    total = w.sum()
    reachable = covered_demand(cov, w, range(cov.shape[1]))[0]
    if reachable < share * total:
        pytest.skip("target not reachable on this draw")
    fewest = next(
        k for k in range(1, cov.shape[1] + 1) if _brute_mclp(cov, w, k)[0] >= share * total - 1e-9
    )
    result = solve_min_facilities(cov, w, share)
    assert result.objective == fewest == len(result.sites)
    assert result.proven_optimal
    assert result.covered_demand is not None
    assert result.covered_demand >= share * total - 1e-9


def test_min_facilities_counts_fixed_sites(swain: tuple[np.ndarray, np.ndarray]) -> None:
    """Fixed sites are open and counted; Swain at S = 15 needs 5 sites for all 640."""
    dist, demand = swain
    cov = coverage_from_distances(dist, 15)
    full = solve_min_facilities(cov, demand, 1.0)
    assert full.objective == 5
    forced = solve_min_facilities(cov, demand, 1.0, fixed=[0])
    assert 0 in forced.sites
    assert forced.objective >= 5


def test_min_facilities_unreachable_target() -> None:
    """A share that even every site cannot cover raises ValueError naming target_share."""
    cov = sp.csr_matrix(np.array([[True], [False]]))
    with pytest.raises(ValueError, match=r"target_share 0\.9 is unreachable"):
        solve_min_facilities(cov, np.array([1.0, 1.0]), 0.9)
    with pytest.raises(ValueError, match="target_share must be in"):
        solve_min_facilities(cov, np.array([1.0, 1.0]), 0.0)


def test_greedy_never_beats_exact(swain: tuple[np.ndarray, np.ndarray]) -> None:
    """The greedy baseline is feasible (p distinct sites) and never covers more than MCLP."""
    dist, demand = swain
    cov = coverage_from_distances(dist, 5)
    for p in (2, 6, 10):
        g = greedy_mclp(cov, demand, p)
        assert len(set(g.tolist())) == p
        assert covered_demand(cov, demand, g)[0] <= solve_mclp(cov, demand, p).objective


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c, w: solve_mclp(c, w, 0), "p must be >= 1"),
        (lambda c, w: solve_mclp(c, w, 4), "p = 4 exceeds the number of candidate sites"),
        (lambda c, w: solve_mclp(c, -w, 1), "demand must be >= 0"),
        (lambda c, w: solve_mclp(c, w[:1], 1), "demand must be a vector of length 2"),
        (lambda c, w: solve_mclp(c, w, 1, fixed=[0, 1]), "more than p = 1"),
        (lambda c, w: solve_mclp(c, w, 2, fixed=[3]), "fixed site 3 is out of range"),
        (lambda c, w: solve_mclp(c, w, 2, fixed=[1, 1]), "fixed must not repeat"),
        (lambda c, w: solve_mclp(c, w, 1.5), "p must be an integer"),  # type: ignore[arg-type]
        (lambda c, w: coverage_from_distances(np.ones((2, 3)), -1), "radius must be"),
        (lambda c, w: coverage_from_distances(np.ones((2, 3)), np.nan), "radius must be"),
    ],
)
def test_bad_input_names_the_argument(call, match: str) -> None:  # type: ignore[no-untyped-def]
    """Bad arguments raise ValueError naming the argument and the reason."""
    cov = sp.csr_matrix(np.array([[True, False, True], [False, True, False]]))
    with pytest.raises(ValueError, match=match):
        call(cov, np.array([1.0, 2.0]))
