"""The ``rescue`` command line.

Each command group lives in its own module and registers itself on :data:`app` (or on
:data:`api.cli.bench.bench_app` for ``rescue bench ...``). Heavy libraries (OR-Tools, Ray,
the road graph) are imported inside the commands so that ``rescue --help`` stays instant.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="rescue",
    help="Roadside rescue and replacement-vehicle dispatch optimizer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Registration: importing a module adds its commands to ``app`` / ``bench_app``.
from api.cli import bench as _bench  # noqa: E402
from api.cli import dispatch as _dispatch  # noqa: E402, F401
from api.cli import network as _network  # noqa: E402
from api.cli import routing as _routing  # noqa: E402, F401
from api.cli import simulate as _simulate  # noqa: E402, F401
from api.cli import tokens as _tokens  # noqa: E402, F401

app.add_typer(_bench.bench_app, name="bench")
del _network


def main() -> None:
    app()
