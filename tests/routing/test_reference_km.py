"""The national engine reproduces the reference prefecture-pair road km table."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest

from fleet.geography import prefecture_seats
from routing import RoadGraphProvider, TravelProfile

DATA = Path(__file__).parents[1] / "data"
SNAP_FILE = Path(__file__).parents[2] / "routing" / "data" / "prefecture_seat_snap.csv"
# The reference adds the straight-line seat-to-node km at both ends (circuity 1).
REFERENCE_PROFILE = TravelProfile("reference", speed_kmh=60.0, off_network_circuity=1.0)


def _reference() -> list[tuple[str, str, float | None]]:
    with gzip.open(DATA / "prefecture_pair_road_km.csv.gz", "rt") as f:
        return [
            (r["from_adcode"], r["to_adcode"], float(r["road_km"]) if r["road_km"] else None)
            for r in csv.DictReader(f)
        ]


def test_reference_pairs_within_one_percent(national: RoadGraphProvider) -> None:
    """On >= 1,000 random pairs of prefecture seats (from fleet.geography), graph km with the
    reference snap nodes agrees within 1%, and blank (unreachable) pairs are inf."""
    with SNAP_FILE.open(encoding="utf-8") as f:
        snap = {r["adcode"]: r for r in csv.DictReader(f)}
    seats = {s.adcode: (s.lat, s.lon) for s in prefecture_seats()}
    assert set(seats) == set(snap)
    rows = _reference()
    rng = np.random.default_rng(2024)
    origins = set(rng.choice(sorted(seats), size=40, replace=False).tolist())
    sample = [r for r in rows if r[0] in origins]
    sample = [sample[i] for i in rng.choice(len(sample), size=1200, replace=False)]
    assert any(km is None for _, _, km in sample)
    # Same snapping as the reference: its snap node and its seat-to-node km.
    o_codes = sorted({a for a, _, _ in sample})
    d_codes = sorted({b for _, b, _ in sample})
    o_nodes = np.array([int(snap[c]["snap_node"]) for c in o_codes])
    d_nodes = np.array([int(snap[c]["snap_node"]) for c in d_codes])
    net = national._dense(np.unique(o_nodes), np.unique(d_nodes))
    oi = {c: int(np.searchsorted(np.unique(o_nodes), int(snap[c]["snap_node"]))) for c in o_codes}
    di = {c: int(np.searchsorted(np.unique(d_nodes), int(snap[c]["snap_node"]))) for c in d_codes}
    for a, b, ref in sample:
        km = float(snap[a]["snap_km"]) + net[oi[a], di[b]] + float(snap[b]["snap_km"])
        if ref is None:
            assert np.isinf(km), (a, b)
        else:
            assert km == pytest.approx(ref, rel=0.01, abs=0.1), (a, b)


def test_reference_through_public_api(national: RoadGraphProvider) -> None:
    """Through matrix() with the engine's own snapping of the seat coordinates, >= 99% of 1,000
    sampled reachable pairs agree within 1% (the others differ by near-tie snap nodes), and
    every blank pair is inf."""
    seats = {s.adcode: (s.lat, s.lon) for s in prefecture_seats()}
    wide = RoadGraphProvider(national.graph, max_snap_km=400.0)  # Sansha's seat is 300 km out
    rows = _reference()
    rng = np.random.default_rng(7)
    origins = sorted(rng.choice(sorted(seats), size=40, replace=False).tolist())
    dests = sorted(seats)
    km, _ = wide.matrix([seats[c] for c in origins], [seats[c] for c in dests], REFERENCE_PROFILE)
    oi, di = {c: i for i, c in enumerate(origins)}, {c: j for j, c in enumerate(dests)}
    sample = [r for r in rows if r[0] in oi]
    sample = [sample[i] for i in rng.choice(len(sample), size=1000, replace=False)]
    good = reachable = 0
    for a, b, ref in sample:
        got = km[oi[a], di[b]]
        if ref is None:
            assert np.isinf(got), (a, b)
            continue
        reachable += 1
        good += abs(got - ref) <= 0.01 * ref + 0.1
    assert good >= 0.99 * reachable
