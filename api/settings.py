"""Runtime settings: environment variables with the ``RESCUE_`` prefix (or a ``.env`` file).

Read when asked (:func:`get_settings`), never at import time, so tests and the CLI can set
the environment first.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RESCUE_", env_file=".env", extra="ignore")

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
        default=None, description="Directory of an imported road graph (rescue routing import-osm)"
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
    respect_shifts: bool = Field(
        default=True, description="Vans are on shift only while their station is open"
    )
    dispatch_on_request: bool = Field(
        default=True, description="Wake the dispatch loop on each new request"
    )
    live_poll_s: float = Field(default=1.0, gt=0, description="Live stream poll interval")
    log_level: str = "INFO"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
