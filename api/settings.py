"""Runtime settings: environment variables with the ``RESCUE_`` prefix (or a ``.env`` file).

The one place the environment is read. The pure packages take what they need as parameters
(the road graph as :class:`routing.RoadGraphSource`, the Ray address as an argument), and the
API, the CLI and the benchmarks fill those from here. Read when asked (:func:`get_settings`),
never at import time, so tests and the CLI can set the environment first.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from routing import RoadGraphSource


def _default_cache_dir() -> Path:
    """The user cache directory: ``$XDG_CACHE_HOME`` or ``~/.cache``, then ``rescue-dispatch``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "rescue-dispatch"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RESCUE_", env_file=".env", extra="ignore", populate_by_name=True
    )

    database_url: str = Field(
        default="sqlite:///rescue.sqlite",
        description="SQLAlchemy URL; default an SQLite file in the working directory. "
        "PostgreSQL: postgresql+psycopg://user@host/db",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    scenario: str = Field(
        default="china-national",
        description="Network seeded into an empty database: a built-in name or a TOML file",
    )
    road_graph: str | None = Field(
        default=None,
        description="Directory of an imported road graph (rescue routing import-osm); "
        "default: the vendored national graph",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Where parsed road graphs are cached (under routing/); default "
        "$XDG_CACHE_HOME/rescue-dispatch or ~/.cache/rescue-dispatch",
    )
    ray_address: str | None = Field(
        default=None,
        validation_alias="RAY_ADDRESS",
        description="Ray cluster for --backend ray (Ray's own variable, no prefix); "
        "default: a local instance",
    )
    dispatch_interval_s: float = Field(
        default=5.0, ge=0.0, description="Seconds between background dispatch cycles; 0 = off"
    )
    replacement_threshold_hours: float = Field(default=24.0, gt=0)
    rate_limit_per_minute: int = Field(
        default=600,
        ge=0,
        description="POST /v1/requests per client address per minute; 0 = off. Shared by all "
        "processes through Redis (redis_url) or PostgreSQL; per process on SQLite",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated proxy addresses or networks whose X-Forwarded-For is "
        "believed for the client address; empty (default) = the header is ignored",
    )
    redis_url: str | None = Field(
        default=None, description="Redis for the shared rate limit, e.g. redis://127.0.0.1:6379/0"
    )
    redis_key_prefix: str = Field(
        default="rescue", min_length=1, description="Prefix of the rate-limit keys in Redis"
    )
    token_ttl_days: float = Field(
        default=90, gt=0, description="Lifetime of a new staff token (rescue token create)"
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="Server logs as text lines or one JSON object per line"
    )
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    promise_minutes: float = Field(
        default=120.0, gt=0, description="Promised arrival time; KPI 'within promise' uses it"
    )
    travel_provider: Literal["road", "great_circle"] = Field(
        default="road",
        description="Travel times for dispatch: the road graph (falls back to great-circle "
        "if it cannot be loaded) or great-circle estimates",
    )
    dispatch_objective: Literal["eta", "promise"] = Field(
        default="eta",
        description="Van matching objective after the served weight: the priority-weighted ETA "
        "(eta), or first the number reached within promise_minutes, then the ETA (promise)",
    )
    respect_shifts: bool = Field(
        default=True, description="Vans are on shift only while their station is open"
    )
    dispatch_on_request: bool = Field(
        default=True, description="Wake the dispatch loop on each new request"
    )
    live_poll_s: float = Field(default=1.0, gt=0, description="Live stream poll interval")
    log_level: str = "INFO"
    # -- notifications: the outbox delivery worker (webhooks, SMS) --
    outbox_worker: bool = Field(
        default=True, description="Run the outbox delivery worker in this process"
    )
    outbox_interval_s: float = Field(
        default=1.0, gt=0, description="Seconds between polls of the outbox for due deliveries"
    )
    webhook_timeout_s: float = Field(
        default=5.0, gt=0, description="Timeout of one webhook POST (connect, send, answer)"
    )
    webhook_backoff_base_s: float = Field(
        default=5.0, gt=0, description="Retry n waits between half and all of base * 2^(n-1)"
    )
    webhook_backoff_max_s: float = Field(
        default=3600.0, gt=0, description="Longest wait between two attempts"
    )
    webhook_max_age_hours: float = Field(
        default=72.0,
        gt=0,
        description="A delivery still failing this long after it was written "
        "is given up (status failed)",
    )
    sms_gateway: Literal["off", "log"] = Field(
        default="off",
        description="SMS adapter behind the outbox: off, or log (writes the text "
        "to the log with a masked number; no real provider)",
    )

    def road_graph_source(self) -> RoadGraphSource:
        """The road graph and its parse cache, as the pure packages take them."""
        from routing import RoadGraphSource

        return RoadGraphSource(
            directory=Path(self.road_graph).expanduser() if self.road_graph else None,
            cache_dir=self.cache_dir.expanduser() / "routing",
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
