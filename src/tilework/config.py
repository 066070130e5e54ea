"""Every setting tilework reads, in one place.

Settings come from ``TILEWORK_*`` environment variables (or a ``.env`` file in the
working directory). Nothing else in the package reads the environment.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TILEWORK_", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = Path("tilework-data")
    database_url: str | None = None
    public_url: str | None = None
    """Base URL that signed links point at; defaults to the address the server binds."""

    host: str = "127.0.0.1"
    port: int = 8000

    bootstrap_api_key: str | None = None
    signing_key: str | None = None
    """Key for URL signatures; generated and kept in the data folder when unset."""

    workers: int = Field(default=2, ge=1, le=64)
    task_lease_seconds: float = Field(default=30.0, gt=0)
    heartbeat_seconds: float = Field(default=1.0, gt=0)

    signed_url_ttl_seconds: int = 7 * 24 * 3600
    upload_url_ttl_seconds: int = 3600
    view_url_ttl_seconds: int = 3600

    render_retention_seconds: float | None = None
    """Renders are deleted this long after they are made; kept forever when unset."""
    upload_retention_seconds: float | None = None
    """Uploads are deleted this long after they are finalized; kept when unset."""

    max_video_bytes: int = 5 * 1024**3
    max_audio_bytes: int = 500 * 1024**2
    max_image_bytes: int = 50 * 1024**2
    max_input_seconds: float = 3 * 3600

    webhook_allow_networks: Annotated[tuple[IPNetwork, ...], NoDecode] = ()
    fetch_allow_networks: Annotated[tuple[IPNetwork, ...], NoDecode] = ()
    webhook_timeout_seconds: float = 15.0
    webhook_retry_schedule: Annotated[tuple[float, ...], NoDecode] = (
        DEFAULT_RETRY_SCHEDULE
    )
    webhook_order_wait_seconds: float = 60.0
    webhook_coalesce_seconds: float = 0.25
    webhook_poll_seconds: float = Field(default=0.1, gt=0, le=10)
    """How often an idle dispatcher looks for due events it was not woken for."""
    webhook_max_payload_bytes: int = 256 * 1024

    ffmpeg_binary: str | None = None
    x264_preset: str = "veryfast"

    asr_model: str | None = None
    """A faster-whisper model folder; the bundled tiny English model when unset."""
    asr_threads: int = Field(default=2, ge=1, le=64)
    espeak_binary: str | None = None
    billing_unlimited: bool = False
    """Let every task run without credits, for operators who do not bill."""
    tile_prices: dict[str, int] = Field(default_factory=dict)
    """Credits per started minute of input, by node type id or tile name."""
    admin_token: str | None = None
    """Bearer token of the operator's admin routes; they are off when unset."""
    generation_provider: str | None = None
    """The entry point name of the provider that generation tiles use."""

    log_level: str = "INFO"

    @field_validator("webhook_allow_networks", "fetch_allow_networks", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> object:
        if isinstance(value, str):
            items = [part.strip() for part in value.split(",") if part.strip()]
            return tuple(ipaddress.ip_network(item, strict=False) for item in items)
        return value

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _parse_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(float(part) for part in value.split(",") if part.strip())
        return value

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'tilework.db').resolve()}"

    @cached_property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")
