"""Duration distributions: analytical statistics agree with sampling; bad parameters refused."""

import numpy as np
import pytest

from fleet import HoursDistribution
from fleet.distributions import prob_sum_exceeds


@pytest.mark.parametrize(
    "dist",
    [
        HoursDistribution.exponential(2.0),
        HoursDistribution.lognormal(3.0, 0.6),
        HoursDistribution.fixed(1.5),
        HoursDistribution.empirical([1, 2, 8], [0.5, 0.3, 0.2]),
        HoursDistribution.gamma(6.0, 3),
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
    g = HoursDistribution.gamma(4.0, 2)
    assert g.to_mapping() == {"kind": "gamma", "mean": 4.0, "shape": 2.0}
    assert HoursDistribution.from_mapping(g.to_mapping()) == g


@pytest.mark.parametrize(
    "dist",
    [
        HoursDistribution.exponential(2.0),
        HoursDistribution.lognormal(3.0, 0.6),
        HoursDistribution.gamma(6.0, 3),
        HoursDistribution.gamma(2.0, 1),
    ],
)
def test_density_integrates_to_the_cdf(dist: HoursDistribution) -> None:
    """The density is the derivative of the cdf: its integral from 0 to t is cdf(t)."""
    from scipy.integrate import quad

    for t in (0.5, 3.0, 10.0):
        area, _ = quad(dist.pdf, 0.0, t)
        assert area == pytest.approx(dist.cdf(t), abs=1e-8)
    assert dist.pdf(-1.0) == 0.0


def test_gamma_with_shape_one_is_the_exponential() -> None:
    """Erlang(1) is the exponential: same tail, quantile and density."""
    g, e = HoursDistribution.gamma(5.0, 1), HoursDistribution.exponential(5.0)
    for t in (0.0, 1.0, 7.5, 30.0):
        assert g.prob_exceeds(t) == pytest.approx(e.prob_exceeds(t), rel=1e-12)
        assert g.pdf(t) == pytest.approx(e.pdf(t), rel=1e-12)
    assert g.quantile(0.9) == pytest.approx(e.quantile(0.9), rel=1e-10)


def test_discrete_kinds_have_atoms_not_a_density() -> None:
    """Fixed and empirical durations expose their atoms; asking for a density says why not."""
    assert HoursDistribution.fixed(2.0).atoms() == ((2.0,), (1.0,))
    assert HoursDistribution.empirical([1, 3], [1, 3]).atoms() == ((1.0, 3.0), (0.25, 0.75))
    with pytest.raises(ValueError, match="fixed distribution has no density"):
        HoursDistribution.fixed(2.0).pdf(1.0)
    with pytest.raises(ValueError, match="lognormal distribution is continuous"):
        HoursDistribution.lognormal(2, 0.5).atoms()


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (HoursDistribution.lognormal(8.0, 0.8), HoursDistribution.gamma(10.0, 2)),
        (HoursDistribution.exponential(3.0), HoursDistribution.lognormal(2.0, 0.4)),
        (HoursDistribution.empirical([1, 2, 8], [0.5, 0.3, 0.2]), HoursDistribution.gamma(3, 2)),
        (HoursDistribution.lognormal(4.0, 0.5), HoursDistribution.fixed(2.5)),
    ],
)
def test_tail_of_a_sum_matches_monte_carlo(a: HoursDistribution, b: HoursDistribution) -> None:
    """P(a + b > t) by integration agrees with 400k independent draws within 0.005."""
    rng = np.random.default_rng(11)
    total = a.sample(rng, 400_000) + b.sample(rng, 400_000)
    for t in (3.0, 10.0, 25.0):
        assert prob_sum_exceeds(a, b, t) == pytest.approx(np.mean(total > t), abs=0.005)
    assert prob_sum_exceeds(a, b, -1.0) == 1.0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "exponential", "mean": -1}, "'mean' must be > 0"),
        ({"kind": "lognormal", "median": 2}, "needs 'sigma'"),
        ({"kind": "lognormal", "median": 2, "sigma": 0}, "'sigma' must be > 0"),
        ({"kind": "weibull", "mean": 2}, "kind 'weibull' is not one of"),
        ({"kind": "gamma", "mean": 2}, "gamma distribution needs 'shape'"),
        ({"kind": "gamma", "mean": 2, "shape": 0}, "'shape' must be > 0"),
        ({"kind": "fixed", "value": 1, "mode": 2}, "unknown distribution key"),
        ({"kind": "empirical", "values": [1, 2], "weights": [1]}, "2 values but 1 weights"),
    ],
)
def test_impossible_parameters_are_refused(spec: dict, message: str) -> None:
    """A distribution with impossible parameters raises a ValueError saying which."""
    with pytest.raises(ValueError, match=message):
        HoursDistribution.from_mapping(spec)
