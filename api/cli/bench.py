"""``rescue bench ...``: exactness runs on public OR instances and the performance benchmarks.

Every bench command prints one JSON object per line on stdout.
"""

from __future__ import annotations

import typer

bench_app = typer.Typer(
    help="Benchmarks: OR-Library instances through the optimisers, and performance runs. "
    "Each prints one JSON object per line.",
    no_args_is_help=True,
)
