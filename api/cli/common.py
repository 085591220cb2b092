"""Shared CLI helpers: one-line errors, database options."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer

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
