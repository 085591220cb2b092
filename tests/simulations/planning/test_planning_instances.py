"""Parsers of the benchmark formats (OR-Library p-median, Swain points) and the national
county-seat covering instance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulations.planning.instances import (
    beasley_pmedian,
    beasley_pmedian_text,
    county_seat_instance,
    parse_orlib_pmedian,
    parse_points,
    read_orlib_pmedian,
    read_points,
)

DATA = Path(__file__).resolve().parents[2] / "data"


def test_duplicate_edge_last_occurrence_wins() -> None:
    """A repeated (u, v) pair takes the cost of its LAST line, whichever direction it is
    written in, even when an earlier duplicate is cheaper."""
    text = "3 4 1\n1 2 5\n2 3 7\n2 1 9\n1 3 100\n"
    inst = parse_orlib_pmedian(text)
    assert inst.dist[0, 1] == 9
    assert inst.dist[1, 0] == 9
    assert inst.dist[0, 2] == 16  # via vertex 2 (9 + 7) beats the direct 100
    assert inst.n == 3
    assert inst.p == 1


def test_pmed1_distances_are_symmetric_shortest_paths() -> None:
    """pmed1 gives a 100 x 100 symmetric matrix with a zero diagonal that obeys the triangle
    inequality (it is a shortest-path metric)."""
    inst = read_orlib_pmedian(DATA / "orlib_pmed" / "pmed1.txt")
    d = inst.dist
    assert d.shape == (100, 100)
    assert (inst.n, inst.p) == (100, 5)
    np.testing.assert_array_equal(d, d.T)
    assert (np.diag(d) == 0).all()
    assert (d[:, :, None] <= d[:, None, :] + d.T[None, :, :] + 1e-9).all()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("3 2 1\n1 2 5\n", "promises 2 edges"),
        ("3 1 1\n1 4 5\n", "outside 1..3"),
        ("3 1 1\n1 2 5\n", "not connected"),
        ("2 1 3\n1 2 5\n", "p = 3 exceeds n = 2"),
        ("2 1 1\n1 2 -5\n", "costs must be >= 0"),
        ("a b c\n", "not an OR-Library"),
    ],
)
def test_bad_pmedian_files_raise(text: str, match: str) -> None:
    """Malformed p-median files raise ValueError saying what is wrong."""
    with pytest.raises(ValueError, match=match):
        parse_orlib_pmedian(text)


def test_swain_file() -> None:
    """Swain's file has 55 points, total demand 640; the id column is dropped."""
    inst = read_points(DATA / "mclp_swain" / "swain.txt")
    assert inst.xy.shape == (55, 2)
    assert inst.demand.sum() == 640
    assert tuple(inst.xy[0]) == (32.0, 31.0)
    assert inst.demand[0] == 71


def test_points_without_count_or_id() -> None:
    """Plain 'x y demand' rows parse too."""
    inst = parse_points("0 0 1\n3 4 2\n")
    np.testing.assert_allclose(inst.distances(), [[0, 5], [5, 0]])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("2\n1 0 0 1\n", "count line says 2"),
        ("0 0 -1\n", "demand must be >= 0"),
        ("0 0\n", "every row"),
    ],
)
def test_bad_points_files_raise(text: str, match: str) -> None:
    """Malformed points files raise ValueError saying what is wrong."""
    with pytest.raises(ValueError, match=match):
        parse_points(text)


def test_county_seat_instance_is_seeded() -> None:
    """Same seed, same instance; the candidate sites are distinct demand points whose own
    distance column is zero at their seat."""
    a = county_seat_instance(50, seed=3)
    b = county_seat_instance(50, seed=3)
    np.testing.assert_array_equal(a.demand, b.demand)
    np.testing.assert_array_equal(a.site_index, b.site_index)
    assert len(set(a.site_index.tolist())) == 50
    assert np.allclose(a.dist_km[a.site_index, np.arange(50)], 0.0)
    assert (a.demand >= 0).all()
    with pytest.raises(ValueError, match="n_sites"):
        county_seat_instance(0)


def test_beasley_generator_is_reproducible_by_seed() -> None:
    """The same (n, p, seed) gives the same file text; another seed gives another graph."""
    first = beasley_pmedian_text(60, 6, seed=3)
    assert beasley_pmedian_text(60, 6, seed=3) == first
    assert beasley_pmedian_text(60, 6, seed=4) != first
    inst = beasley_pmedian(60, 6, seed=3)
    np.testing.assert_array_equal(inst.dist, parse_orlib_pmedian(first).dist)
    assert (inst.name, inst.n, inst.p) == ("beasley-60-6-s3", 60, 6)


def test_beasley_generator_follows_the_orlib_construction() -> None:
    """Header n, n^2/50 edges, p; the cycle 1-2-...-n-1 first; then distinct-endpoint edges;
    every cost an integer in 1..100 (what pmed1-20 show)."""
    tokens = [int(t) for t in beasley_pmedian_text(100, 5, seed=0).split()]
    n, m, p = tokens[:3]
    assert (n, m, p) == (100, 200, 5)
    edges = np.asarray(tokens[3:]).reshape(m, 3)
    np.testing.assert_array_equal(edges[:n, 0], np.arange(1, n + 1))
    np.testing.assert_array_equal(edges[:n, 1], np.r_[np.arange(2, n + 1), 1])
    assert (edges[:, 0] != edges[:, 1]).all()
    assert ((edges[:, :2] >= 1) & (edges[:, :2] <= n)).all()
    assert edges[:, 2].min() >= 1
    assert edges[:, 2].max() <= 100
    assert len(np.unique(edges[n:, 0])) > n // 2  # the extra edges spread over the vertices


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((2, 1, 0), "n must be >= 3"),
        ((10, 0, 0), "p must be in 1..n = 10"),
        ((10, 11, 0), "p must be in 1..n = 10"),
        ((10, 2, -1), "seed must be >= 0"),
    ],
)
def test_beasley_generator_bad_arguments(args: tuple[int, int, int], match: str) -> None:
    """Bad sizes or seeds raise ValueError naming the argument and the reason."""
    with pytest.raises(ValueError, match=match):
        beasley_pmedian_text(*args)
