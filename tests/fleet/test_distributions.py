"""Duration distributions: analytical statistics agree with sampling; bad parameters refused."""

import numpy as np
import pytest

from fleet import HoursDistribution


@pytest.mark.parametrize(
    "dist",
    [
        HoursDistribution.exponential(2.0),
        HoursDistribution.lognormal(3.0, 0.6),
        HoursDistribution.fixed(1.5),
        HoursDistribution.empirical([1, 2, 8], [0.5, 0.3, 0.2]),
    ],
)
def test_mean_and_quantile_match_samples(dist: HoursDistribution) -> None:
    """The analytical mean and p90 agree with 200k samples (within sampling error)."""
    rng = np.random.default_rng(7)
    x = dist.sample(rng, 200_000)
    assert np.mean(x) == pytest.approx(dist.mean(), rel=0.02)
    if dist.kind.value != "empirical":
        assert np.quantile(x, 0.9) == pytest.approx(dist.quantile(0.9), rel=0.03)
        assert np.mean(x > 4.0) == pytest.approx(dist.prob_exceeds(4.0), abs=0.01)


def test_empirical_quantile_and_tail() -> None:
    d = HoursDistribution.empirical([1, 2, 8], [0.5, 0.3, 0.2])
    assert d.quantile(0.4) == 1 and d.quantile(0.6) == 2 and d.quantile(0.9) == 8
    assert d.prob_exceeds(2) == pytest.approx(0.2)


def test_round_trip_through_mapping() -> None:
    d = HoursDistribution.lognormal(2, 0.5)
    assert HoursDistribution.from_mapping(d.to_mapping()) == d


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "exponential", "mean": -1}, "'mean' must be > 0"),
        ({"kind": "lognormal", "median": 2}, "needs 'sigma'"),
        ({"kind": "lognormal", "median": 2, "sigma": 0}, "'sigma' must be > 0"),
        ({"kind": "gamma", "mean": 2}, "kind 'gamma' is not one of"),
        ({"kind": "fixed", "value": 1, "mode": 2}, "unknown distribution key"),
        ({"kind": "empirical", "values": [1, 2], "weights": [1]}, "2 values but 1 weights"),
    ],
)
def test_impossible_parameters_are_refused(spec: dict, message: str) -> None:
    """A distribution with impossible parameters raises a ValueError saying which."""
    with pytest.raises(ValueError, match=message):
        HoursDistribution.from_mapping(spec)
