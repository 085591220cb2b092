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
        description="Where parsed road graphs (under routing/) and the simulation's travel "
        "tables (under tables/) are cached; default $XDG_CACHE_HOME/rescue-dispatch or "
        "~/.cache/rescue-dispatch",
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
    token_secret: str | None = Field(
        default=None,
        min_length=16,
        description="Secret that tracking tokens are derived from (HMAC of the request id); "
        "unset: one is generated at first start and kept in the database",
    )
    # -- live operations: re-planning, soon-free vans, lateness --
    eta_grace_minutes: float = Field(
        default=10.0,
        ge=0,
        description="A van not there by its promised ETA plus this is at risk (at_risk)",
    )
    replan: bool = Field(
        default=True,
        description="Each cycle also reconsiders assigned requests whose van has not arrived",
    )
    replan_gain_minutes: float = Field(
        default=15.0,
        ge=0,
        description="Re-planning moves a van only when the arrival gains this much "
        "(priority-weighted)",
    )
    replan_freeze_minutes: float = Field(
        default=15.0,
        ge=0,
        description="A van this close to arrival (minutes) is never moved",
    )
    replan_redirect_km: float = Field(
        default=25.0,
        ge=0,
        description="A van on its way is offered other breakdowns only within this many road "
        "km of where it is (0: jobs may move to free vans, vans keep their course)",
    )
    soon_free_minutes: float = Field(
        default=60.0,
        ge=0,
        description="Vans busy on site or towing that expect to be free within this are "
        "candidates for the next job (0 = only idle vans)",
    )
    # -- partners and crews in the loop --
    offer_expiry_minutes: float | None = Field(
        default=None,
        gt=0,
        description="Minutes a partner has to answer an offer before it counts as declined; "
        "unset = each partner's promised response time",
    )
    offer_fanout: int = Field(
        default=1,
        ge=1,
        le=10,
        description="Partner rescue providers offered the same job at once (first accept wins)",
    )
    offer_cny_per_minute: float = Field(
        default=10.0,
        gt=0,
        description="CNY of partner cost worth one minute of the customer's waiting, when "
        "ranking partner rescue providers",
    )
    crew_ack_timeout_minutes: float = Field(
        default=0.0,
        ge=0,
        description="A van assignment its crew has not acknowledged after this many minutes "
        "is re-planned (the van set off shift); 0 = off",
    )
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

    # -- where the dispatch cycle runs (issue 14: intake unharmed, regions across processes) --
    dispatch_mode: Literal["process", "thread", "off"] = Field(
        default="process",
        description="Background dispatch loop of `rescue serve`: process = a child worker "
        "process (the solve never holds the server's event loop or interpreter lock), "
        "thread = a thread of the server, off = none (run `rescue dispatch --loop` elsewhere)",
    )
    dispatch_regions: int = Field(
        default=1,
        ge=1,
        description="Regions the background loop dispatches separately, each under its own "
        "lock (1 = the whole network in one cycle); all workers must use the same count",
    )
    dispatch_worker_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Scheduling niceness of the dispatch worker process: on a busy machine "
        "the intake's answers come first, the batch solve a little later",
    )
    write_lock_stats_dir: str | None = Field(
        default=None,
        description="SQLite: a directory where the server and its dispatch worker process "
        "write how long each holder waited for and held the database's write lock, when "
        "they stop (api/db/write_lock.py; `rescue bench api --lock-stats` sets it)",
    )

    def road_graph_source(self) -> RoadGraphSource:
        """The road graph and its parse cache, as the pure packages take them."""
        from routing import RoadGraphSource

        return RoadGraphSource(
            directory=Path(self.road_graph).expanduser() if self.road_graph else None,
            cache_dir=self.cache_dir.expanduser() / "routing",
        )

    @property
    def tables_cache_dir(self) -> Path:
        """Where the simulation keeps its travel tables (``simulations.tables``)."""
        return self.cache_dir.expanduser() / "tables"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
