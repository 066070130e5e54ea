"""Fixtures shared by the whole suite: real servers, receivers and media."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import Api, Receiver, ServerProcess, postgres_database

SHARED_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A tilework server on SQLite, shared by the tests of one module."""
    process = ServerProcess(tmp_path_factory.mktemp("server")).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A tilework server on a fresh PostgreSQL database."""
    with postgres_database() as url:
        process = ServerProcess(
            tmp_path_factory.mktemp("pg-server"), database_url=url
        ).start()
        yield process
        process.stop()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[Api]:
    client = server.client()
    yield client
    client.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()


@pytest.fixture(scope="session")
def shared_media() -> Path:
    if not (SHARED_MEDIA / "carphone.mp4").exists():
        pytest.skip(f"the shared test footage is not at {SHARED_MEDIA}")
    return SHARED_MEDIA
