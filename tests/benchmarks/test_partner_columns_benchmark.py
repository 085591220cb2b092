"""``rescue bench dispatch --partners``: the same batch decided with the national network's
partner rescue providers as columns, beside the decision without them, in one record."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from api.cli import app
from benchmarks.dispatch import dispatch_benchmark

PARTNER_KEYS = {
    "providers", "partner_arcs", "median_seconds", "median_partner_columns_seconds",
    "without_partners_seconds", "ratio_with_over_without", "served_by_own_vans",
    "served_by_own_vans_without_partners", "offered_to_partners",
}  # fmt: skip


def test_partners_record_beside_the_plain_decision() -> None:
    """A small great-circle batch: the record has the plain keys plus ``partners``; the 62
    synthetic providers give arcs; own vans serve no more than without partners, and own vans
    plus partners serve at least as many requests as own vans alone."""
    record = dispatch_benchmark(
        requests=60, vans=400, seed=2, engine="great-circle", repeats=1, networkx=False,
        partners=True,
    )  # fmt: skip
    p = record["partners"]
    assert set(p) == PARTNER_KEYS
    assert p["providers"] == 62 and p["partner_arcs"] > 0
    assert p["served_by_own_vans_without_partners"] == record["optimal"]["served"]
    assert p["served_by_own_vans"] <= p["served_by_own_vans_without_partners"]
    assert (
        p["served_by_own_vans"] + p["offered_to_partners"]
        >= p["served_by_own_vans_without_partners"]
    )
    assert p["served_by_own_vans"] + p["offered_to_partners"] <= 60
    assert "partners" not in dispatch_benchmark(
        requests=10, vans=100, seed=2, engine="great-circle", repeats=1, networkx=False
    )


def test_cli_partners_flag() -> None:
    out = CliRunner().invoke(
        app,
        ["bench", "dispatch", "--requests", "20", "--vans", "200", "--engine", "great-circle",
         "--repeats", "1", "--no-networkx", "--partners"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    record = json.loads(out.output.strip().splitlines()[-1])
    assert record["partners"]["providers"] == 62
