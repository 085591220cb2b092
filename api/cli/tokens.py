"""``rescue token create | list | revoke``: staff tokens for the HTTP API."""

from __future__ import annotations

import datetime as dt
import json

import typer
from sqlalchemy.orm import Session, sessionmaker

from api.cli import app
from api.cli.common import DB_OPTION, clear_errors, database_url, fail

token_app = typer.Typer(help="Staff tokens for the HTTP API.", no_args_is_help=True)
app.add_typer(token_app, name="token")


def _session_factory(db: str | None) -> sessionmaker[Session]:
    from api.db.engine import make_engine, session_factory
    from api.db.migrate import upgrade

    engine = make_engine(database_url(db))
    upgrade(engine)
    return session_factory(engine)


@token_app.command("create")
def token_create(
    role: str = typer.Option(..., help="dispatcher | planner | admin | partner | crew"),
    partner: str | None = typer.Option(
        None, "--partner", help="The partner company a partner token is bound to"
    ),
    van: str | None = typer.Option(None, "--van", help="The van a crew token is bound to"),
    label: str = typer.Option("", help="Who or what the token is for"),
    ttl_days: float = typer.Option(
        None, "--ttl-days", help="Days until it expires (default RESCUE_TOKEN_TTL_DAYS, 90)"
    ),
    db: str | None = DB_OPTION,
) -> None:
    """Create a staff token and print it (shown once; only its hash is stored)."""
    from api.db.engine import transaction
    from api.security import Role, create_staff_token
    from api.settings import get_settings

    try:
        role_value = Role(role)
    except ValueError:
        fail(f"--role {role!r} is not one of {', '.join(r.value for r in Role)}")
    days = ttl_days if ttl_days is not None else get_settings().token_ttl_days
    if not days > 0:
        fail("--ttl-days must be greater than 0")
    token = ""
    with clear_errors(), transaction(_session_factory(db)) as session:
        try:
            token = create_staff_token(
                db_session=session, role=role_value, label=label, ttl_days=days,
                partner_id=partner, van_id=van,
            )  # fmt: skip
        except ValueError as exc:
            fail(f"--{str(exc).split(':', 1)[0].replace('_id', '')}: {str(exc).split(': ', 1)[1]}")
    typer.echo(token)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


@token_app.command("list")
def token_list(
    show_all: bool = typer.Option(False, "--all", help="Also revoked and expired tokens"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line"),
    db: str | None = DB_OPTION,
) -> None:
    """List staff tokens (id, role, label, created, expires, last used; never the secret)."""
    from api.db.engine import transaction
    from api.security import list_staff_tokens

    now = dt.datetime.now(dt.UTC)
    with clear_errors(), transaction(_session_factory(db)) as session:
        tokens = list_staff_tokens(db_session=session, include_inactive=show_all)
    for t in tokens:
        row = {
            "id": t.id,
            "role": t.role,
            "state": t.state(now),
            "label": t.label,
            "created_at": _iso(t.created_at),
            "expires_at": _iso(t.expires_at),
            "last_used_at": _iso(t.last_used_at),
        }
        if as_json:
            typer.echo(json.dumps(row, ensure_ascii=False))
        else:
            typer.echo(
                f"{t.id:>5}  {t.role:<10} {row['state']:<8} expires {row['expires_at'] or 'never'}"
                f"  last used {row['last_used_at'] or 'never'}  {t.label}"
            )


@token_app.command("revoke")
def token_revoke(
    token_id: int = typer.Argument(..., help="The id shown by `rescue token list`"),
    db: str | None = DB_OPTION,
) -> None:
    """Revoke a staff token at once (every later request with it gets 401)."""
    from api.db.engine import transaction
    from api.exceptions import NotFound
    from api.security import revoke_staff_token

    with clear_errors():
        try:
            with transaction(_session_factory(db)) as session:
                changed = revoke_staff_token(db_session=session, token_id=token_id)
        except NotFound:
            fail(f"no staff token with id {token_id} (see `rescue token list --all`)")
    typer.echo(f"token {token_id} {'revoked' if changed else 'was already revoked'}")
