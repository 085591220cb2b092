"""Erlang C (M/M/c): the queueing check of the simulation and the van counts of the planner."""

from __future__ import annotations

import math


def erlang_c(offered_load: float, servers: int) -> float:
    """P(an arrival waits) in M/M/c with offered load ``a = lambda / mu`` and ``c`` servers
    (1.0 when the queue is unstable, ``a >= c``)."""
    if offered_load < 0 or servers < 1:
        raise ValueError(
            f"need offered_load >= 0 and servers >= 1, got {offered_load!r}, {servers!r}"
        )
    a, c = float(offered_load), int(servers)
    if a >= c:
        return 1.0
    # numerically stable recursion for the Erlang B blocking probability, then C from B
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return c * b / (c - a * (1 - b))


def erlang_c_wait(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Mean wait in the queue of M/M/c (same time unit as the rates); inf when unstable."""
    if arrival_rate < 0 or service_rate <= 0:
        raise ValueError(
            f"need arrival_rate >= 0 and service_rate > 0, got {arrival_rate!r}, {service_rate!r}"
        )
    a = arrival_rate / service_rate
    if a >= servers:
        return math.inf
    return erlang_c(a, servers) / (servers * service_rate - arrival_rate)


def servers_for(offered_load: float, max_wait_probability: float) -> int:
    """Fewest servers with P(wait) <= ``max_wait_probability``."""
    if not 0 < max_wait_probability <= 1:
        raise ValueError(f"max_wait_probability must be in (0, 1], got {max_wait_probability!r}")
    c = max(1, math.floor(offered_load) + 1)
    while erlang_c(offered_load, c) > max_wait_probability:
        c += 1
    return c
