"""Wiring: every long-lived part of a tilework process, built from settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from tilework.billing.ledger import Ledger
from tilework.billing.plans import seed_plans
from tilework.config import Settings
from tilework.engine.events import Outbox
from tilework.engine.scheduler import Scheduler
from tilework.engine.views import Viewer
from tilework.executors.local import LocalExecutor
from tilework.executors.runner import TaskRunner
from tilework.media.ffmpeg import FFmpeg, find_ffmpeg
from tilework.media.signing import UrlSigner, load_or_create_key
from tilework.media.storage import LocalStorage
from tilework.store.db import Database
from tilework.tiles.catalog import TileCatalog
from tilework.webhooks.dispatcher import Dispatcher, DispatchPolicy
from tilework.webhooks.sender import HttpSender, Sender

log = logging.getLogger(__name__)


class MediaLinks:
    """Signed, expiring links to stored media, served by ``GET /files/...``."""

    def __init__(self, signer: UrlSigner, ttl_seconds: int) -> None:
        self.signer = signer
        self.ttl = ttl_seconds

    def media(
        self,
        key: str,
        *,
        filename: str | None = None,
        ttl: int | None = None,
        until: datetime | None = None,
    ) -> str:
        """A signed link valid ``ttl`` seconds, and never past ``until``."""
        params = {"filename": filename} if filename else None
        return self.route(file_path(key), ttl=ttl, until=until, params=params)

    def route(
        self,
        path: str,
        *,
        ttl: int | None = None,
        until: datetime | None = None,
        params: dict[str, str] | None = None,
    ) -> str:
        seconds = ttl or self.ttl
        if until is not None:
            left = int((until - datetime.now(UTC)).total_seconds())
            seconds = max(1, min(seconds, left))
        return self.signer.sign(path, ttl_seconds=seconds, params=params)


def file_path(key: str) -> str:
    """The decoded URL path of a stored file; the signer percent-encodes it."""
    return "/files/" + key


@dataclass
class Tilework:
    settings: Settings
    db: Database
    storage: LocalStorage
    signer: UrlSigner
    links: MediaLinks
    catalog: TileCatalog
    viewer: Viewer
    scheduler: Scheduler
    ffmpeg: FFmpeg
    dispatcher: Dispatcher
    executor: LocalExecutor | None
    ledger: Ledger

    @classmethod
    def build(
        cls, settings: Settings, *, sender: Sender | None = None, execute: bool = True
    ) -> Tilework:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.resolved_database_url)
        storage = LocalStorage(settings.media_dir)
        signer = UrlSigner(
            load_or_create_key(settings.data_dir, settings.signing_key),
            settings.base_url,
        )
        links = MediaLinks(signer, settings.signed_url_ttl_seconds)
        catalog = TileCatalog(docs_url=f"{settings.base_url}/docs/tiles")
        viewer = Viewer(links=links, describe_type=catalog.describe)
        outbox = Outbox(viewer, coalesce_seconds=settings.webhook_coalesce_seconds)
        ledger = Ledger(
            unlimited=settings.billing_unlimited,
            prices=catalog.prices(settings.tile_prices),
        )
        scheduler = Scheduler(
            db,
            outbox,
            is_input=catalog.is_input,
            gate=ledger,
            render_retention_seconds=settings.render_retention_seconds,
            lease_seconds=settings.task_lease_seconds,
        )
        ffmpeg = FFmpeg(find_ffmpeg(settings.ffmpeg_binary))
        dispatcher = Dispatcher(
            db,
            sender
            or HttpSender(
                allow=settings.webhook_allow_networks,
                timeout=settings.webhook_timeout_seconds,
            ),
            DispatchPolicy(
                retry_schedule=settings.webhook_retry_schedule,
                order_wait_seconds=settings.webhook_order_wait_seconds,
                timeout_seconds=settings.webhook_timeout_seconds,
                max_payload_bytes=settings.webhook_max_payload_bytes,
                poll_seconds=settings.webhook_poll_seconds,
            ),
        )
        outbox.on_emit = dispatcher.wake.set
        executor = None
        if execute:
            runner = TaskRunner(settings, db, scheduler, storage, ffmpeg)
            executor = LocalExecutor(runner, scheduler, workers=settings.workers)
        return cls(
            settings,
            db,
            storage,
            signer,
            links,
            catalog,
            viewer,
            scheduler,
            ffmpeg,
            dispatcher,
            executor,
            ledger,
        )

    def start(self) -> None:
        self.db.migrate()
        with self.db.write() as session:
            seed_plans(session)
        if self.executor is not None:
            self.executor.start()
        self.dispatcher.start()
        log.info("tilework started (data in %s)", self.settings.data_dir.resolve())

    def stop(self) -> None:
        if self.executor is not None:
            self.executor.stop()
        self.dispatcher.stop()
        self.db.dispose()
