"""Real parts for end-to-end tests: a server process, a webhook receiver, a database.

Nothing here mocks tilework: the server is ``tilework serve`` in its own process, the
receiver a real HTTP server on loopback, the database a real SQLite file or a fresh
PostgreSQL database.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ADMIN_KEY = "tw_test_admin_key_0123456789abcdef0123456789abcdef"
POSTGRES_ADMIN_URL = os.environ.get(
    "TILEWORK_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"
)
TERMINAL = {"completed", "partial_complete", "failed", "cancelled"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """``tilework serve`` in a child process, on a free loopback port."""

    data_dir: Path
    database_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("TILEWORK_")
        }
        env.update(
            {
                "TILEWORK_DATA_DIR": str(self.data_dir),
                "TILEWORK_BOOTSTRAP_API_KEY": ADMIN_KEY,
                "TILEWORK_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
                "TILEWORK_FETCH_ALLOW_NETWORKS": "127.0.0.0/8",
                "TILEWORK_WEBHOOK_RETRY_SCHEDULE": "0.2,0.5,1",
                "TILEWORK_X264_PRESET": "ultrafast",
                "TILEWORK_LOG_LEVEL": "INFO",
            }
        )
        if self.database_url:
            env["TILEWORK_DATABASE_URL"] = self.database_url
        env.update(self.env)
        return env

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"server-{int(time.time() * 1000)}.log"
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tilework", "serve", "--port", str(self.port)],
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the server exited early:\n{self.log()}")
            try:
                httpx.get(f"{self.url}/whoami", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(
            f"the server did not answer within {timeout} s:\n{self.log()}"
        )

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-8000:]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def client(self, key: str = ADMIN_KEY, **headers: str) -> Api:
        return Api(self.url, key, headers)

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "tilework", *args],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout.strip()


class Api:
    """A thin httpx wrapper that knows the API's conventions."""

    def __init__(
        self, base_url: str, key: str, headers: dict[str, str] | None = None
    ) -> None:
        self.http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {key}", **(headers or {})},
            timeout=60,
        )

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params or None)

    def post(self, path: str, body: Any | None = None) -> httpx.Response:
        return self.http.post(path, json=body if body is not None else {})

    def ok(self, response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, (
            f"{response.status_code}: {response.text}"
        )
        return response.json()

    def upload(self, path: Path, kind: str = "video") -> str:
        grant = self.ok(self.post(f"/uploads/{kind}/get_upload_url"))
        with path.open("rb") as handle:
            sent = httpx.post(
                grant["upload_url"],
                data=grant["upload_fields"],
                files={"file": (path.name, handle)},
                timeout=60,
            )
        assert sent.status_code == 200, sent.text
        self.ok(
            self.post(
                f"/uploads/{kind}/finalize_upload", {f"{kind}_id": grant[f"{kind}_id"]}
            )
        )
        return str(grant[f"{kind}_id"])

    def create_agent(
        self, nodes: list[tuple[str, str, dict[str, Any]]], edges: list[tuple[str, str]]
    ) -> tuple[str, dict[str, str]]:
        """Create an agent from ``(ref, node_type_id, params)`` nodes and ref edges."""
        operations: list[dict[str, Any]] = [
            {
                "op": "create_node",
                "temp_ref_id": ref,
                "node_type_id": kind,
                "params_used": params,
            }
            for ref, kind, params in nodes
        ]
        operations += [
            {
                "op": "create_connection",
                "source_temp_ref_id": a,
                "target_temp_ref_id": b,
            }
            for a, b in edges
        ]
        body = self.ok(
            self.post("/agent/create", {"name": "test agent", "operations": operations})
        )
        return body["agent_id"], body["created_nodes"]

    def wait(
        self,
        run_id: str,
        timeout: float = 120.0,
        until: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.ok(self.get(f"/agent_run/{run_id}"))
            if (until or (lambda r: r["status"] in TERMINAL))(run):
                return run  # type: ignore[no-any-return]
            time.sleep(0.1)
        raise AssertionError(f"run {run_id} did not get there in {timeout} s: {run}")

    def close(self) -> None:
        self.http.close()


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


class Receiver:
    """A webhook receiver on loopback; ``respond`` scripts its answers."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[Received] = []
        self.respond: Callable[[Received], tuple[int, dict[str, str]]] = lambda r: (
            200,
            {},
        )
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                item = Received(body, {k.lower(): v for k, v in self.headers.items()})
                status, headers = receiver.respond(item)
                if 200 <= status < 300:
                    with receiver.lock:
                        receiver.received.append(item)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def events(self, run_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            items = [r.json for r in self.received]
        return [e for e in items if run_id is None or e.get("run_id") == run_id]

    def wait_for(
        self, flag: str, run_id: str, timeout: float = 20.0, count: int = 1
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events(run_id) if e["flag"] == flag]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        flags = [e["flag"] for e in self.events(run_id)]
        raise AssertionError(f"no {flag} for run {run_id}; got {flags}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test module; dropped afterwards."""
    import psycopg

    admin = POSTGRES_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    name = f"tilework_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
