"""Downloading inputs from a file server on 127.0.0.1 through the address guard.

Names other than ``localhost`` never reach DNS; every connection stays on loopback.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fakedns import FakeDns, install
from tilework.errors import Cancelled, FetchError
from tilework.media.fetch import download
from tilework.media.ffmpeg import CancelToken
from tilework.netguard import guarded_request

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
VIDEO = b"\x00\x00\x00\x18ftypmp42" + os.urandom(300_000)


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    send_length: bool = True
    delay: float = 0.0


class FileServer:
    """A loopback HTTP/1.1 server that answers GETs by path and records them."""

    def __init__(self) -> None:
        self.replies: dict[str, Reply] = {}
        self.paths: list[str] = []
        self.connections = 0
        self._server = self._make_server()
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _make_server(self) -> ThreadingHTTPServer:
        files = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                files._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request: Any, client_address: Any) -> bool:
                files.connections += 1
                return True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        return Server(("127.0.0.1", 0), Handler)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        self.paths.append(handler.path)
        reply = self.replies.get(handler.path, Reply(404, body=b"not here"))
        time.sleep(reply.delay)
        try:
            self._write(handler, reply)
        except OSError:
            handler.close_connection = True

    def _write(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        if reply.send_length:
            handler.send_header("Content-Length", str(len(reply.body)))
        else:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        for start in range(0, len(reply.body), 65536):
            handler.wfile.write(reply.body[start : start + 65536])


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDns]:
    yield install(monkeypatch)


@pytest.fixture
def files() -> Iterator[FileServer]:
    server = FileServer()
    server.replies["/clip.mp4"] = Reply(
        headers={"Content-Type": "video/mp4"}, body=VIDEO
    )
    yield server
    server.close()


def _leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_a_video_is_downloaded_byte_for_byte(files: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "in" / "clip.mp4"

    result = download(
        files.url("/clip.mp4"), dest, allow_networks=LOOPBACK, max_bytes=10**7
    )

    assert result == dest
    assert dest.read_bytes() == VIDEO
    assert _leftovers(dest.parent) == ["clip.mp4"]


def test_a_hostname_is_resolved_once_and_pinned(
    files: FileServer, tmp_path: Path, dns: FakeDns
) -> None:
    dns.answers["cdn.test"] = ["127.0.0.1"]
    dest = tmp_path / "clip.mp4"

    download(
        files.url("/clip.mp4", host="cdn.test"),
        dest,
        allow_networks=LOOPBACK,
        max_bytes=10**7,
    )

    assert dest.read_bytes() == VIDEO
    assert [name for name in dns.lookups if not name[0].isdigit()] == ["cdn.test"]


def test_an_html_page_is_refused(files: FileServer, tmp_path: Path) -> None:
    files.replies["/watch"] = Reply(
        headers={"Content-Type": "text/html; charset=utf-8"}, body=b"<html></html>"
    )
    dest = tmp_path / "clip.mp4"

    with pytest.raises(FetchError, match="served an HTML page, not a video"):
        download(files.url("/watch"), dest, allow_networks=LOOPBACK, max_bytes=10**7)

    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("status", [403, 404, 500])
def test_an_error_status_is_reported(
    status: int, files: FileServer, tmp_path: Path
) -> None:
    files.replies["/gone.mp4"] = Reply(status, body=b"no")

    with pytest.raises(FetchError, match=f"answered HTTP {status}"):
        download(
            files.url("/gone.mp4"),
            tmp_path / "x.mp4",
            allow_networks=LOOPBACK,
            max_bytes=10**7,
        )

    assert _leftovers(tmp_path) == []


def test_a_redirect_chain_is_followed_and_rechecked(
    files: FileServer, tmp_path: Path
) -> None:
    files.replies["/a"] = Reply(301, {"Location": "/b"})
    files.replies["/b"] = Reply(302, {"Location": files.url("/c")})
    files.replies["/c"] = Reply(307, {"Location": "clip.mp4"})
    dest = tmp_path / "clip.mp4"

    download(files.url("/a"), dest, allow_networks=LOOPBACK, max_bytes=10**7)

    assert dest.read_bytes() == VIDEO
    assert files.paths == ["/a", "/b", "/c", "/clip.mp4"]


def test_more_than_five_redirects_fail(files: FileServer, tmp_path: Path) -> None:
    for hop in range(10):
        files.replies[f"/r{hop}"] = Reply(302, {"Location": f"/r{hop + 1}"})

    with pytest.raises(FetchError, match="redirected more than 5 times"):
        download(
            files.url("/r0"), tmp_path / "x", allow_networks=LOOPBACK, max_bytes=10**7
        )

    assert files.paths == [f"/r{hop}" for hop in range(6)]


def test_a_redirect_to_a_disallowed_address_is_blocked(
    files: FileServer, tmp_path: Path
) -> None:
    files.replies["/hop"] = Reply(302, {"Location": f"http://127.0.0.2:{files.port}/"})
    only_one = (ipaddress.ip_network("127.0.0.1/32"),)

    with pytest.raises(FetchError, match=r"127\.0\.0\.2.*loopback"):
        download(
            files.url("/hop"), tmp_path / "x", allow_networks=only_one, max_bytes=10**7
        )

    assert files.paths == ["/hop"]


def test_a_redirect_to_another_scheme_is_refused(
    files: FileServer, tmp_path: Path
) -> None:
    files.replies["/hop"] = Reply(302, {"Location": "ftp://127.0.0.1/clip.mp4"})

    with pytest.raises(FetchError, match="'ftp'"):
        download(
            files.url("/hop"), tmp_path / "x", allow_networks=LOOPBACK, max_bytes=10**7
        )


def test_an_oversize_body_with_content_length_stops_early(
    files: FileServer, tmp_path: Path
) -> None:
    with pytest.raises(FetchError, match="larger than the 1000-byte limit"):
        download(
            files.url("/clip.mp4"),
            tmp_path / "clip.mp4",
            allow_networks=LOOPBACK,
            max_bytes=1000,
        )

    assert _leftovers(tmp_path) == []


def test_an_oversize_body_without_content_length_is_cut_off(
    files: FileServer, tmp_path: Path
) -> None:
    files.replies["/stream"] = Reply(
        headers={"Content-Type": "video/mp4"},
        body=b"\x00" * 2_000_000,
        send_length=False,
    )

    with pytest.raises(FetchError, match="larger than the 100000-byte limit"):
        download(
            files.url("/stream"),
            tmp_path / "clip.mp4",
            allow_networks=LOOPBACK,
            max_bytes=100_000,
        )

    assert _leftovers(tmp_path) == []


def test_a_body_without_content_length_under_the_cap_is_kept(
    files: FileServer, tmp_path: Path
) -> None:
    files.replies["/stream"] = Reply(body=VIDEO, send_length=False)
    dest = tmp_path / "clip.mp4"

    download(files.url("/stream"), dest, allow_networks=LOOPBACK, max_bytes=10**7)

    assert dest.read_bytes() == VIDEO


@pytest.mark.parametrize(
    "url",
    [
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "https://youtube.com/watch?v=dQw4w9WgXcQ",
        "https://m.youtube.com/watch?v=dQw4w9WgXcQ",
        "https://youtu.be/dQw4w9WgXcQ",
        "https://www.youtube.com/shorts/abcdefghijk",
        "http://YouTube.com./watch?v=x",
    ],
)
def test_youtube_links_are_refused_without_any_lookup(
    url: str, tmp_path: Path, dns: FakeDns
) -> None:
    with pytest.raises(FetchError) as caught:
        download(url, tmp_path / "x", allow_networks=(), max_bytes=10**7)

    assert str(caught.value) == (
        "YouTube links need a YouTube downloader, which this server does not have; "
        "upload the video or pass a direct link"
    )
    assert dns.lookups == []


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("ftp://127.0.0.1/clip.mp4", "ftp"),
        ("file:///etc/passwd", "file"),
        ("gopher://127.0.0.1/", "gopher"),
    ],
)
def test_other_schemes_are_refused(
    url: str, scheme: str, tmp_path: Path, dns: FakeDns
) -> None:
    with pytest.raises(FetchError, match=f"'{scheme}'"):
        download(url, tmp_path / "x", allow_networks=LOOPBACK, max_bytes=10**7)

    assert dns.lookups == []


def test_without_allow_the_fetch_is_blocked_and_the_server_gets_nothing(
    files: FileServer, tmp_path: Path
) -> None:
    with pytest.raises(FetchError) as caught:
        download(
            files.url("/clip.mp4"),
            tmp_path / "clip.mp4",
            allow_networks=(),
            max_bytes=10**7,
        )

    assert "loopback" in str(caught.value)
    assert "TILEWORK_FETCH_ALLOW_NETWORKS" in str(caught.value)
    assert files.connections == 0
    assert files.paths == []


def test_localhost_without_allow_is_blocked(files: FileServer, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="'localhost' resolves to"):
        download(
            files.url("/clip.mp4", host="localhost"),
            tmp_path / "clip.mp4",
            allow_networks=(),
            max_bytes=10**7,
        )

    assert files.connections == 0


def test_a_slow_server_times_out(files: FileServer, tmp_path: Path) -> None:
    files.replies["/slow.mp4"] = Reply(body=b"x", delay=1.5)

    started = time.monotonic()
    with pytest.raises(FetchError, match=r"did not respond within 0\.5 seconds"):
        download(
            files.url("/slow.mp4"),
            tmp_path / "slow.mp4",
            allow_networks=LOOPBACK,
            max_bytes=10**7,
            timeout=0.5,
        )

    assert time.monotonic() - started < 1.4


def test_a_refused_connection_is_a_fetch_error(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(FetchError, match="Could not download"):
        download(
            f"http://127.0.0.1:{port}/clip.mp4",
            tmp_path / "clip.mp4",
            allow_networks=LOOPBACK,
            max_bytes=10**7,
        )


class CancelAfter(CancelToken):
    """A cancel token that cancels itself after a given number of checks."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.remaining = checks

    def raise_if_cancelled(self) -> None:
        self.remaining -= 1
        if self.remaining < 0:
            self.cancel()
        super().raise_if_cancelled()


def test_cancelling_mid_download_leaves_no_file(
    files: FileServer, tmp_path: Path
) -> None:
    with pytest.raises(Cancelled):
        download(
            files.url("/clip.mp4"),
            tmp_path / "clip.mp4",
            allow_networks=LOOPBACK,
            max_bytes=10**7,
            cancel=CancelAfter(3),
        )

    assert _leftovers(tmp_path) == []


def test_an_invalid_url_is_a_fetch_error(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="not a valid URL"):
        download("http://[::1", tmp_path / "x", allow_networks=(), max_bytes=1)


def test_guarded_request_reads_the_body_and_follows_nothing(
    files: FileServer,
) -> None:
    files.replies["/hop"] = Reply(302, {"Location": "/clip.mp4"}, b"moved")

    moved = guarded_request("GET", files.url("/hop"), allow=LOOPBACK, timeout=5.0)
    clip = guarded_request("GET", files.url("/clip.mp4"), allow=LOOPBACK, timeout=5.0)

    assert (moved.status_code, moved.content) == (302, b"moved")
    assert clip.content == VIDEO
    assert files.paths == ["/hop", "/clip.mp4"]
