"""HttpSender against real receivers on 127.0.0.1, and the MemorySender twin.

Made-up hostnames are answered by a fake resolver; every connection stays on
loopback.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fakedns import FakeDns, install
from tilework.webhooks.sender import (
    HttpSender,
    MemorySender,
    SendResult,
    SentWebhook,
    judge_response,
    parse_retry_after,
)

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    peer_port: int


class Receiver:
    """A loopback HTTP/1.1 server that records requests and answers by path."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.replies: dict[str, Reply] = {}
        self.received: list[Received] = []
        self.connections = 0
        self.server_names: list[str | None] = []
        self._server = self._make_server()
        if tls is not None:
            tls.sni_callback = self._record_sni
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    @property
    def _tls(self) -> bool:
        return isinstance(self._server.socket, ssl.SSLSocket)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _record_sni(self, sock: Any, name: str | None, context: Any) -> None:
        self.server_names.append(name)

    def _make_server(self) -> ThreadingHTTPServer:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 64

            def verify_request(self, request: Any, client_address: Any) -> bool:
                receiver.connections += 1
                return True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        return Server(("127.0.0.1", 0), Handler)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", "0"))
        body = handler.rfile.read(length)
        path = handler.path
        headers = {name.lower(): value for name, value in handler.headers.items()}
        self.received.append(
            Received("POST", path, headers, body, handler.client_address[1])
        )

        reply = self.replies.get(path, Reply())
        time.sleep(reply.delay)
        try:
            handler.send_response(reply.status)
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(reply.body)))
            handler.end_headers()
            handler.wfile.write(reply.body)
        except OSError:
            handler.close_connection = True


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDns]:
    yield install(monkeypatch)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def sender() -> Iterator[HttpSender]:
    http = HttpSender(allow=LOOPBACK, timeout=5.0)
    yield http
    http.close()


BODY = '{"event": "run.finished", "title": "Café 🎬 ✂️ 日本語"}'.encode()


def test_a_2xx_is_delivered_with_exact_body_and_headers(
    receiver: Receiver, sender: HttpSender
) -> None:
    headers = {"X-Mosaic-Signature": "s3cret", "webhook-id": "msg_1"}

    result = sender.send(receiver.url(), BODY, headers)

    assert result.outcome == "delivered"
    assert result.status_code == 200
    assert result.error is None
    assert result.duration_ms > 0
    [got] = receiver.received
    assert got.body == BODY
    assert got.headers["content-type"] == "application/json"
    assert got.headers["content-length"] == str(len(BODY))
    assert got.headers["x-mosaic-signature"] == "s3cret"
    assert got.headers["webhook-id"] == "msg_1"


def test_204_is_delivered(receiver: Receiver, sender: HttpSender) -> None:
    receiver.replies["/hook"] = Reply(204)

    result = sender.send(receiver.url(), b"{}", {})

    assert (result.outcome, result.status_code) == ("delivered", 204)


def test_a_callers_content_type_cannot_override_json(
    receiver: Receiver, sender: HttpSender
) -> None:
    sender.send(receiver.url(), b"{}", {"content-type": "text/plain"})

    assert receiver.received[0].headers["content-type"] == "application/json"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_not_followed(
    status: int, receiver: Receiver, sender: HttpSender
) -> None:
    elsewhere = receiver.url("/elsewhere")
    receiver.replies["/hook"] = Reply(status, {"Location": elsewhere})

    result = sender.send(receiver.url(), BODY, {})

    assert result.outcome == "retry"
    assert result.status_code == status
    assert result.error == (f"redirects are not followed (got {status} to {elsewhere})")
    assert [got.path for got in receiver.received] == ["/hook"]


def test_410_means_gone(receiver: Receiver, sender: HttpSender) -> None:
    receiver.replies["/hook"] = Reply(410)

    result = sender.send(receiver.url(), BODY, {})

    assert (result.outcome, result.status_code) == ("gone", 410)
    assert "410" in (result.error or "")


def test_429_honours_retry_after_in_seconds(
    receiver: Receiver, sender: HttpSender
) -> None:
    receiver.replies["/hook"] = Reply(429, {"Retry-After": "120"})

    result = sender.send(receiver.url(), BODY, {})

    assert (result.outcome, result.status_code) == ("retry", 429)
    assert result.retry_after == 120.0


def test_429_honours_retry_after_as_a_date(
    receiver: Receiver, sender: HttpSender
) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=90)
    receiver.replies["/hook"] = Reply(
        429, {"Retry-After": format_datetime(later, True)}
    )

    result = sender.send(receiver.url(), BODY, {})

    assert result.outcome == "retry"
    assert result.retry_after is not None
    assert 80 <= result.retry_after <= 91


def test_503_is_retried_with_its_retry_after(
    receiver: Receiver, sender: HttpSender
) -> None:
    receiver.replies["/hook"] = Reply(503, {"Retry-After": "7"})

    result = sender.send(receiver.url(), BODY, {})

    assert (result.outcome, result.status_code, result.retry_after) == (
        "retry",
        503,
        7.0,
    )


@pytest.mark.parametrize("status", [400, 404, 500, 502])
def test_other_errors_are_retried(
    status: int, receiver: Receiver, sender: HttpSender
) -> None:
    receiver.replies["/hook"] = Reply(status, {"Retry-After": "5"}, b"oops")

    result = sender.send(receiver.url(), BODY, {})

    assert (result.outcome, result.status_code) == ("retry", status)
    assert result.retry_after is None
    assert str(status) in (result.error or "")


def test_a_slow_receiver_times_out(receiver: Receiver) -> None:
    receiver.replies["/hook"] = Reply(delay=1.5)
    impatient = HttpSender(allow=LOOPBACK, timeout=0.5)

    started = time.monotonic()
    result = impatient.send(receiver.url(), BODY, {})
    impatient.close()

    assert result.outcome == "retry"
    assert result.status_code is None
    assert result.error == "the receiver did not answer within 0.5 seconds"
    assert time.monotonic() - started < 1.4


def test_a_refused_connection_is_retried(sender: HttpSender) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = sender.send(f"http://127.0.0.1:{port}/hook", BODY, {})

    assert result.outcome == "retry"
    assert result.status_code is None
    assert "could not connect" in (result.error or "")


def test_loopback_without_allow_is_blocked_and_nothing_is_sent(
    receiver: Receiver,
) -> None:
    strict = HttpSender(allow=(), timeout=2.0)

    result = strict.send(receiver.url(), BODY, {})
    strict.close()

    assert result.outcome == "blocked"
    assert result.status_code is None
    assert "loopback" in (result.error or "")
    assert "TILEWORK_WEBHOOK_ALLOW_NETWORKS" in (result.error or "")
    assert receiver.connections == 0
    assert receiver.received == []


@pytest.mark.parametrize(
    "host", ["0x7f000001", "2130706433", "127.1", "0177.0.0.1", "[::ffff:127.0.0.1]"]
)
def test_odd_spellings_of_loopback_are_blocked(
    host: str, receiver: Receiver, dns: FakeDns
) -> None:
    strict = HttpSender(allow=(), timeout=2.0)

    result = strict.send(f"http://{host}:{receiver.port}/hook", BODY, {})
    strict.close()

    assert result.outcome == "blocked"
    assert receiver.connections == 0
    assert dns.names() == []


def test_an_unsupported_url_is_blocked(sender: HttpSender) -> None:
    result = sender.send("ftp://127.0.0.1/hook", BODY, {})

    assert result.outcome == "blocked"
    assert "ftp" in (result.error or "")


def test_an_unresolvable_name_is_retried(sender: HttpSender) -> None:
    result = sender.send("http://no-such-host.invalid/hook", BODY, {})

    assert result.outcome == "retry"
    assert "no-such-host.invalid" in (result.error or "")


def test_localhost_is_pinned_and_the_body_arrives_byte_identical(
    receiver: Receiver, sender: HttpSender, dns: FakeDns
) -> None:
    url = receiver.url("/hook", host="localhost")

    result = sender.send(url, BODY, {})

    assert result.outcome == "delivered"
    [got] = receiver.received
    assert got.body == BODY
    assert int(got.headers["content-length"]) == len(BODY)
    assert len(BODY) > len(BODY.decode())
    assert got.headers["host"] == f"localhost:{receiver.port}"
    assert dns.names() == ["localhost"]


def test_a_made_up_name_is_resolved_once_and_pinned(
    receiver: Receiver, sender: HttpSender, dns: FakeDns
) -> None:
    dns.answers["hooks.test"] = ["127.0.0.1"]

    result = sender.send(receiver.url("/hook", host="hooks.test"), BODY, {})

    assert result.outcome == "delivered"
    assert receiver.received[0].headers["host"] == f"hooks.test:{receiver.port}"
    assert dns.names() == ["hooks.test"]


def test_one_disallowed_answer_blocks_the_name(
    receiver: Receiver, dns: FakeDns
) -> None:
    dns.answers["hooks.test"] = ["127.0.0.1", "127.0.0.2"]
    narrow = HttpSender(allow=[ipaddress.ip_network("127.0.0.1/32")], timeout=2.0)

    result = narrow.send(receiver.url("/hook", host="hooks.test"), BODY, {})
    narrow.close()

    assert result.outcome == "blocked"
    assert "127.0.0.2" in (result.error or "")
    assert receiver.connections == 0


def test_an_address_that_refuses_falls_back_to_the_next(
    receiver: Receiver, sender: HttpSender, dns: FakeDns
) -> None:
    dns.answers["hooks.test"] = ["127.0.0.2", "127.0.0.1"]

    result = sender.send(receiver.url("/hook", host="hooks.test"), BODY, {})

    assert result.outcome == "delivered"
    assert len(receiver.received) == 1


def test_connections_are_kept_alive_between_sends(
    receiver: Receiver, sender: HttpSender
) -> None:
    results = [sender.send(receiver.url(), BODY, {}) for _ in range(5)]

    assert {result.outcome for result in results} == {"delivered"}
    assert len(receiver.received) == 5
    assert receiver.connections == 1
    assert len({got.peer_port for got in receiver.received}) == 1


def test_concurrent_sends_all_arrive(receiver: Receiver, sender: HttpSender) -> None:
    results: list[SendResult] = []

    def post(index: int) -> None:
        results.append(sender.send(receiver.url(), b'{"n": %d}' % index, {}))

    threads = [threading.Thread(target=post, args=(index,)) for index in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(results) == 20
    assert {result.outcome for result in results} == {"delivered"}
    assert sorted(got.body for got in receiver.received) == sorted(
        b'{"n": %d}' % index for index in range(20)
    )


def _tls_pair(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for ``name`` and a client that trusts it."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tilework test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
        .sign(ca_key, hashes.SHA256())
    )

    cert_file = tmp_path / "leaf.pem"
    key_file = tmp_path / "leaf.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(
        cadata=ca.public_bytes(serialization.Encoding.PEM).decode()
    )
    return server, client


def test_https_uses_the_hostname_for_sni_and_the_certificate(
    tmp_path: Path, dns: FakeDns
) -> None:
    server_tls, client_tls = _tls_pair(tmp_path, "hooks.test")
    receiver = Receiver(tls=server_tls)
    dns.answers["hooks.test"] = ["127.0.0.1"]
    sender = HttpSender(allow=LOOPBACK, timeout=5.0, verify=client_tls)

    result = sender.send(f"https://hooks.test:{receiver.port}/hook", BODY, {})
    sender.close()
    receiver.close()

    assert result.outcome == "delivered", result.error
    assert receiver.server_names == ["hooks.test"]
    assert receiver.received[0].headers["host"] == f"hooks.test:{receiver.port}"
    assert receiver.received[0].body == BODY
    assert dns.names() == ["hooks.test"]


def test_https_rejects_a_certificate_for_another_name(
    tmp_path: Path, dns: FakeDns
) -> None:
    server_tls, client_tls = _tls_pair(tmp_path, "other.test")
    receiver = Receiver(tls=server_tls)
    dns.answers["hooks.test"] = ["127.0.0.1"]
    sender = HttpSender(allow=LOOPBACK, timeout=5.0, verify=client_tls)

    result = sender.send(f"https://hooks.test:{receiver.port}/hook", BODY, {})
    sender.close()
    receiver.close()

    assert result.outcome == "retry"
    assert "certificate" in (result.error or "").lower()
    assert receiver.received == []


def test_retry_after_parsing() -> None:
    now = 1_700_000_000.0
    date = format_datetime(dt.datetime.fromtimestamp(now + 30, dt.UTC), usegmt=True)

    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(" 42 ") == 42.0
    assert parse_retry_after(date, now=now) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None
    assert parse_retry_after("") is None


def test_a_redirect_without_location_still_says_so() -> None:
    result = judge_response(303, {}, duration_ms=1.0)

    assert result.outcome == "retry"
    assert result.error == "redirects are not followed (got 303 to nowhere)"


def test_memory_sender_records_calls_and_plays_its_script() -> None:
    gone = SendResult(410, 1.0, "gone", None, "gone")
    retry = SendResult(503, 1.0, "busy", 30.0, "retry")
    memory = MemorySender([retry])
    memory.script(gone)

    first = memory.send("https://receiver.test/a", b"1", {"X-A": "1"})
    second = memory.send("https://receiver.test/b", b"2", {})
    third = memory.send("https://receiver.test/c", b"3", {})

    assert (first, second) == (retry, gone)
    assert third.outcome == "delivered"
    assert memory.calls[0] == SentWebhook("https://receiver.test/a", b"1", {"X-A": "1"})
    assert [call.body for call in memory.calls] == [b"1", b"2", b"3"]


def test_memory_sender_default_can_be_set() -> None:
    blocked = SendResult(None, 0.0, "no", None, "blocked")
    memory = MemorySender(default=blocked)

    assert memory.send("https://receiver.test/", b"", {}) is blocked
