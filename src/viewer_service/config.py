"""Settings, read from VIEWER_* environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIEWER_", extra="ignore")

    # Storage. A plain postgresql:// URL is accepted and given the asyncpg driver.
    database_url: str = "sqlite+aiosqlite:///./viewer.db"
    # Unset: an in-process cache (one serving process only).
    redis_url: str | None = None
    redis_prefix: str = "vs:"
    # VIEWER_REDIS_URL names one node of a Redis Cluster; the client discovers the others.
    redis_cluster: bool = False
    cache_ttl_seconds: int = 7 * 24 * 3600
    cache_max_scopes: int = 100_000  # in-process cache bound

    auth: Literal["none", "jwt"] = "none"
    jwt_secret: str | None = None  # HS256
    jwt_public_keys: str | None = None  # RS256: PEM text, or paths to PEM files separated by ","
    jwt_audience: str | None = None
    admin_roles: str = "admin,service"
    # Token roles that may read course-wide reports (besides the admin roles): course staff.
    report_roles: str = "COURSE_MENTOR,mentor"

    # A Sunbird-compatible hierarchy endpoint for collections the catalog does not know:
    # GET {catalog_url}/{collectionId} -> {"result": {"content": <hierarchy>}}.
    catalog_url: str | None = None

    # How writes and reads resolve their (collection, context) keys; one per instance, recorded
    # in the database (docs/modes.md).
    context_mode: Literal["strict", "content", "collection"] = "strict"
    # Carry-forward on top of strict mode: the default for contexts that set none of their own.
    carry_forward: Literal["none", "copy-content", "copy-collection", "move"] = "none"
    carry_forward_window_days: int | None = Field(default=None, ge=0, le=36_500)
    carry_forward_within_context_dates: bool = False
    max_clock_skew_seconds: int = 300
    max_body_bytes: int = 1_048_576
    max_progress_details_bytes: int = 65_536
    max_timespent_seconds: float = 86_400
    max_assess_events: int = 1000

    write_batch_max: int = 256
    write_flushers: int = 2
    db_pool_size: int = 10
    # Ping a pooled PostgreSQL connection before every use (a round trip per checkout). Off: a
    # connection the server closed (a restart) is already never handed out; this also catches
    # ones that died silently (a network partition), at ~0.2 ms a checkout (docs/reliability.md).
    db_pre_ping: bool = False
    repair_interval_seconds: float = 1.0

    # Aggregation worker (collection progress). None: inside `serve` on SQLite only; production
    # runs `viewer-service worker` processes.
    worker_in_serve: bool | None = None
    worker_batch: int = 100
    worker_poll_seconds: float = 0.2
    # On PostgreSQL a committed mark wakes the workers at once (LISTEN/NOTIFY, adapters/db/notify.py);
    # this slower poll only covers missed notifications and work that falls due later.
    worker_listen_poll_seconds: float = 2.0
    worker_lease_seconds: float = 30.0
    unknown_collection_retry_seconds: float = 60.0

    # Where completion events go: file:<path> (JSON lines), redis-stream:<name>, or none.
    event_sink: str = "file:./viewer-events.jsonl"

    # Summary downloads: files under this directory, removed after the expiry.
    download_dir: str = "./viewer-downloads"
    download_expiry_seconds: int = 3600

    # Operations (docs/operations.md): Prometheus metrics at /metrics, log format, one log line per request.
    metrics: bool = True
    log_format: Literal["text", "json"] = "text"
    access_log: bool = True

    # lms-service's /private/ routes (docs/sunbird.md): they trust the body's user, for callers
    # inside the gateway only. False for a service reachable without that gateway.
    private_routes: bool = True
    # `viewer-service archive`: where the Parquet files go when --dir is not given (docs/archive.md).
    archive_dir: str = "./viewer-archive"


    @field_validator("database_url")
    @classmethod
    def _driver(cls, v: str) -> str:
        for plain in ("postgresql://", "postgres://"):
            if v.startswith(plain):
                return "postgresql+asyncpg://" + v[len(plain):]
        if v.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + v[len("sqlite:///"):]
        return v

    @field_validator("redis_prefix")
    @classmethod
    def _no_hash_tag(cls, v: str) -> str:
        if "{" in v or "}" in v:
            raise ValueError("may not contain '{' or '}': Redis Cluster hash tags are the service's own")
        return v

    @model_validator(mode="after")
    def _carry_needs_strict(self):
        if self.carry_forward != "none" and self.context_mode != "strict":
            raise ValueError("VIEWER_CARRY_FORWARD works on top of VIEWER_CONTEXT_MODE=strict only")
        return self

    @property
    def carry_rule(self):
        from .domain.carry import CarryRule

        return CarryRule(self.carry_forward, self.carry_forward_window_days, self.carry_forward_within_context_dates)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def runs_worker_in_serve(self) -> bool:
        return self.is_sqlite if self.worker_in_serve is None else self.worker_in_serve

    @property
    def admin_role_set(self) -> frozenset[str]:
        return frozenset(r.strip() for r in self.admin_roles.split(",") if r.strip())

    @property
    def report_role_set(self) -> frozenset[str]:
        return frozenset(r.strip() for r in self.report_roles.split(",") if r.strip())
