"""Repair- and service-time distributions, small enough to live in a data file.

One immutable value per distribution with an analytical mean, quantile, tail and density (the
triage uses them) and a vectorised sampler that takes the caller's ``numpy.random.Generator``
(the simulation owns its random streams; nothing here draws from a global seed).
:func:`prob_sum_exceeds` gives the exact tail of the sum of two independent durations (a repair
plus a queue wait) by one numerical integral, so the triage needs no sampling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist
from typing import Any

import numpy as np


class DistributionKind(StrEnum):
    EXPONENTIAL = "exponential"
    LOGNORMAL = "lognormal"
    FIXED = "fixed"
    EMPIRICAL = "empirical"
    GAMMA = "gamma"


@dataclass(frozen=True, slots=True)
class HoursDistribution:
    """A non-negative duration in hours.

    - ``exponential``: ``mean``
    - ``lognormal``: ``median`` and ``sigma`` (of the underlying normal)
    - ``fixed``: ``value``
    - ``empirical``: ``values`` (with optional ``weights``), sampled with replacement
    - ``gamma``: ``mean`` and ``shape`` (an integer shape is the Erlang wait for that many
      exponential completions, e.g. a workshop bay freeing up)
    """

    kind: DistributionKind
    mean_hours: float = 0.0
    median_hours: float = 0.0
    sigma: float = 0.0
    value_hours: float = 0.0
    values: tuple[float, ...] = ()
    weights: tuple[float, ...] = ()
    shape: float = 0.0

    def __post_init__(self) -> None:
        k = self.kind
        if k is DistributionKind.EXPONENTIAL:
            _positive("mean", self.mean_hours)
        elif k is DistributionKind.LOGNORMAL:
            _positive("median", self.median_hours)
            _positive("sigma", self.sigma)
        elif k is DistributionKind.FIXED:
            _non_negative("value", self.value_hours)
        elif k is DistributionKind.GAMMA:
            _positive("mean", self.mean_hours)
            _positive("shape", self.shape)
        elif k is DistributionKind.EMPIRICAL:
            if not self.values:
                raise ValueError("empirical distribution needs at least one value")
            for v in self.values:
                _non_negative("values[]", v)
            if self.weights:
                if len(self.weights) != len(self.values):
                    raise ValueError(
                        f"empirical distribution has {len(self.values)} values but "
                        f"{len(self.weights)} weights"
                    )
                for w in self.weights:
                    _non_negative("weights[]", w)
                if sum(self.weights) <= 0:
                    raise ValueError("empirical distribution weights must not all be zero")

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def exponential(cls, mean: float) -> HoursDistribution:
        return cls(DistributionKind.EXPONENTIAL, mean_hours=float(mean))

    @classmethod
    def lognormal(cls, median: float, sigma: float) -> HoursDistribution:
        return cls(DistributionKind.LOGNORMAL, median_hours=float(median), sigma=float(sigma))

    @classmethod
    def fixed(cls, value: float) -> HoursDistribution:
        return cls(DistributionKind.FIXED, value_hours=float(value))

    @classmethod
    def gamma(cls, mean: float, shape: float) -> HoursDistribution:
        return cls(DistributionKind.GAMMA, mean_hours=float(mean), shape=float(shape))

    @classmethod
    def empirical(
        cls, values: list[float] | tuple[float, ...], weights: list[float] | tuple[float, ...] = ()
    ) -> HoursDistribution:
        return cls(
            DistributionKind.EMPIRICAL,
            values=tuple(float(v) for v in values),
            weights=tuple(float(w) for w in weights),
        )

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any]) -> HoursDistribution:
        """Build from a data-file table, e.g. ``{kind = "lognormal", median = 2, sigma = 0.6}``."""
        known = {"kind", "mean", "median", "sigma", "value", "values", "weights", "shape"}
        unknown = set(spec) - known
        if unknown:
            raise ValueError(f"unknown distribution key(s): {', '.join(sorted(unknown))}")
        try:
            kind = DistributionKind(str(spec.get("kind")))
        except ValueError:
            raise ValueError(
                f"distribution kind {spec.get('kind')!r} is not one of "
                f"{', '.join(k.value for k in DistributionKind)}"
            ) from None
        needed = {
            DistributionKind.EXPONENTIAL: ("mean",),
            DistributionKind.LOGNORMAL: ("median", "sigma"),
            DistributionKind.FIXED: ("value",),
            DistributionKind.EMPIRICAL: ("values",),
            DistributionKind.GAMMA: ("mean", "shape"),
        }[kind]
        for key in needed:
            if key not in spec:
                raise ValueError(f"{kind.value} distribution needs '{key}'")
        if kind is DistributionKind.EXPONENTIAL:
            return cls.exponential(spec["mean"])
        if kind is DistributionKind.LOGNORMAL:
            return cls.lognormal(spec["median"], spec["sigma"])
        if kind is DistributionKind.FIXED:
            return cls.fixed(spec["value"])
        if kind is DistributionKind.GAMMA:
            return cls.gamma(spec["mean"], spec["shape"])
        return cls.empirical(spec["values"], spec.get("weights", ()))

    def to_mapping(self) -> dict[str, Any]:
        k = self.kind
        if k is DistributionKind.EXPONENTIAL:
            return {"kind": k.value, "mean": self.mean_hours}
        if k is DistributionKind.LOGNORMAL:
            return {"kind": k.value, "median": self.median_hours, "sigma": self.sigma}
        if k is DistributionKind.FIXED:
            return {"kind": k.value, "value": self.value_hours}
        if k is DistributionKind.GAMMA:
            return {"kind": k.value, "mean": self.mean_hours, "shape": self.shape}
        out: dict[str, Any] = {"kind": k.value, "values": list(self.values)}
        if self.weights:
            out["weights"] = list(self.weights)
        return out

    # -- statistics ---------------------------------------------------------------------
    @property
    def is_discrete(self) -> bool:
        """Fixed and empirical durations have atoms and no density."""
        return self.kind in (DistributionKind.FIXED, DistributionKind.EMPIRICAL)

    def mean(self) -> float:
        k = self.kind
        if k is DistributionKind.EXPONENTIAL or k is DistributionKind.GAMMA:
            return self.mean_hours
        if k is DistributionKind.LOGNORMAL:
            return self.median_hours * math.exp(self.sigma**2 / 2)
        if k is DistributionKind.FIXED:
            return self.value_hours
        v, w = self._empirical_arrays()
        return float(np.dot(v, w))

    def quantile(self, q: float) -> float:
        if not 0.0 <= q < 1.0:
            raise ValueError(f"quantile q must be in [0, 1), got {q!r}")
        k = self.kind
        if k is DistributionKind.EXPONENTIAL:
            return -self.mean_hours * math.log1p(-q)
        if k is DistributionKind.LOGNORMAL:
            if q == 0.0:
                return 0.0
            return self.median_hours * math.exp(self.sigma * NormalDist().inv_cdf(q))
        if k is DistributionKind.FIXED:
            return self.value_hours
        if k is DistributionKind.GAMMA:
            from scipy.special import gammaincinv

            return self._gamma_scale() * float(gammaincinv(self.shape, q))
        v, w = self._empirical_arrays()
        order = np.argsort(v)
        cdf = np.cumsum(w[order])
        idx = int(np.searchsorted(cdf, q, side="right"))
        return float(v[order][min(idx, len(v) - 1)])

    def prob_exceeds(self, hours: float) -> float:
        """P(duration > hours)."""
        k = self.kind
        if hours < 0:
            return 1.0
        if k is DistributionKind.EXPONENTIAL:
            return math.exp(-hours / self.mean_hours)
        if k is DistributionKind.LOGNORMAL:
            if hours == 0:
                return 1.0
            return 1.0 - NormalDist().cdf(math.log(hours / self.median_hours) / self.sigma)
        if k is DistributionKind.FIXED:
            return 1.0 if self.value_hours > hours else 0.0
        if k is DistributionKind.GAMMA:
            from scipy.special import gammaincc

            return float(gammaincc(self.shape, hours / self._gamma_scale()))
        v, w = self._empirical_arrays()
        return float(w[v > hours].sum())

    def cdf(self, hours: float) -> float:
        """P(duration <= hours)."""
        return 1.0 - self.prob_exceeds(hours)

    def pdf(self, hours: float) -> float:
        """Density at ``hours``; only continuous kinds have one (see :attr:`is_discrete`)."""
        k = self.kind
        if self.is_discrete:
            raise ValueError(f"a {k.value} distribution has no density; use atoms()")
        if hours < 0:
            return 0.0
        if k is DistributionKind.EXPONENTIAL:
            return math.exp(-hours / self.mean_hours) / self.mean_hours
        if k is DistributionKind.LOGNORMAL:
            if hours == 0:
                return 0.0
            z = math.log(hours / self.median_hours) / self.sigma
            return math.exp(-0.5 * z * z) / (hours * self.sigma * math.sqrt(2 * math.pi))
        scale = self._gamma_scale()
        if hours == 0:
            return 1.0 / scale if self.shape == 1 else (0.0 if self.shape > 1 else math.inf)
        return math.exp(
            (self.shape - 1) * math.log(hours)
            - hours / scale
            - math.lgamma(self.shape)
            - self.shape * math.log(scale)
        )

    def atoms(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Values and their probabilities of a discrete (fixed or empirical) distribution."""
        if self.kind is DistributionKind.FIXED:
            return (self.value_hours,), (1.0,)
        if self.kind is DistributionKind.EMPIRICAL:
            v, w = self._empirical_arrays()
            return tuple(float(x) for x in v), tuple(float(x) for x in w)
        raise ValueError(f"a {self.kind.value} distribution is continuous; it has no atoms")

    def sample(self, rng: np.random.Generator, size: int | None = None) -> Any:
        """Draw ``size`` values (a float when ``size`` is None) from ``rng``."""
        k = self.kind
        if k is DistributionKind.EXPONENTIAL:
            return rng.exponential(self.mean_hours, size)
        if k is DistributionKind.LOGNORMAL:
            return rng.lognormal(math.log(self.median_hours), self.sigma, size)
        if k is DistributionKind.FIXED:
            return self.value_hours if size is None else np.full(size, self.value_hours)
        if k is DistributionKind.GAMMA:
            return rng.gamma(self.shape, self._gamma_scale(), size)
        v, w = self._empirical_arrays()
        return rng.choice(v, size=size, p=w)

    def _gamma_scale(self) -> float:
        return self.mean_hours / self.shape

    def _empirical_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        v = np.asarray(self.values, dtype=float)
        w = np.asarray(self.weights or [1.0] * len(v), dtype=float)
        return v, w / w.sum()


def prob_sum_exceeds(a: HoursDistribution, b: HoursDistribution, hours: float) -> float:
    """P(a + b > hours) for independent ``a`` and ``b``, exactly up to quadrature error (~1e-9).

    A discrete side is a finite sum over its atoms; two continuous sides are one integral
    P(b > h) + int_0^h f_b(w) P(a > h - w) dw (scipy ``quad``).
    """
    if hours < 0:
        return 1.0
    if a.is_discrete or b.is_discrete:
        atoms, other = (a, b) if a.is_discrete else (b, a)
        values, probs = atoms.atoms()
        return min(
            1.0, sum(p * other.prob_exceeds(hours - v) for v, p in zip(values, probs, strict=True))
        )
    from scipy.integrate import quad

    inner, _ = quad(
        lambda w: b.pdf(w) * a.prob_exceeds(hours - w), 0.0, hours, limit=200, epsabs=1e-11
    )
    return min(1.0, max(0.0, b.prob_exceeds(hours) + inner))


def _positive(name: str, value: float) -> None:
    if not isinstance(value, int | float) or math.isnan(value) or value <= 0:
        raise ValueError(f"distribution parameter '{name}' must be > 0, got {value!r}")


def _non_negative(name: str, value: float) -> None:
    if not isinstance(value, int | float) or math.isnan(value) or value < 0:
        raise ValueError(f"distribution parameter '{name}' must be >= 0, got {value!r}")
