"""Shared CLI helpers: one-line errors, database options."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from api.settings import Settings
    from routing import RoadGraphSource

DB_OPTION = typer.Option(
    None, "--db", help="Database URL (default: RESCUE_DATABASE_URL or sqlite:///rescue.sqlite)"
)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one clear line on stderr and exit (no traceback)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def clear_errors() -> Iterator[None]:
    """Turn the expected failures (bad input, unreachable database) into one line."""
    from api.db.engine import DatabaseUnavailable

    try:
        yield
    except (DatabaseUnavailable, ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        sys.exit(130)


def database_url(db: str | None) -> str:
    from api.settings import get_settings

    return db or get_settings().database_url


def command_settings() -> Settings:
    """The settings as the environment holds them when the command starts (read afresh: a
    command is one process, and tests invoke several with different environments)."""
    from api.settings import Settings

    return Settings()


def road_graph_source(graph: str | None = None) -> RoadGraphSource:
    """The road graph of the settings (``RESCUE_ROAD_GRAPH``, ``RESCUE_CACHE_DIR``), or the
    ``--graph`` directory when one is given."""
    from dataclasses import replace
    from pathlib import Path

    source = command_settings().road_graph_source()
    return source if graph is None else replace(source, directory=Path(graph).expanduser())
