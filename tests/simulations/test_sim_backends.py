"""Ray: the same replications on a local Ray instance give exactly the serial numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulations.runner import run
from simulations.scenario import load_scenario


def test_ray_equals_serial(small_toml: Path) -> None:
    """Two replications through Ray (local, 2 CPUs, shut down after) equal the serial ones."""
    ray = pytest.importorskip("ray")
    s = load_scenario(small_toml).with_days(5)
    serial = run(s, replications=2, backend="serial")[0]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run(s, replications=2, backend="ray")[0]
    finally:
        ray.shutdown()
    assert [r.kpis for r in remote.runs] == [r.kpis for r in serial.runs]


def test_unknown_backend(small_toml: Path) -> None:
    """An unknown backend is refused before anything runs."""
    with pytest.raises(ValueError, match="backend must be one of serial, local, ray"):
        run(load_scenario(small_toml), backend="spark")
