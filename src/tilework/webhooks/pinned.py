"""Keep-alive HTTP(S) connections to one checked address, for webhook sends.

A connection is opened to the address the guard checked, never to a name; the
``Host`` header and, for https, the TLS server name and certificate check use the
original host name. Built on the standard library's ``http.client``, which costs a
fraction of a general-purpose client per request: a webhook send is one small POST.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from dataclasses import dataclass

from tilework.netguard import IPAddress

MAX_IDLE_PER_TARGET = 8
DRAIN_LIMIT_BYTES = 64 * 1024


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP connection to ``address``, whatever host the request names."""

    def __init__(
        self,
        host: str,
        address: IPAddress,
        port: int,
        timeout: float,
        tls: ssl.SSLContext | None,
    ) -> None:
        super().__init__(str(address), port, timeout=timeout)
        self._server_name = host.rstrip(".")
        self._tls = tls

    def connect(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect((self.host, self.port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self._server_name)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class PinnedPool:
    """Idle keep-alive connections to one (scheme, host, address, port)."""

    def __init__(
        self,
        host: str,
        address: IPAddress,
        port: int,
        *,
        timeout: float,
        tls: ssl.SSLContext | None,
    ) -> None:
        self.host = host
        self.address = address
        self.port = port
        self.timeout = timeout
        self.tls = tls
        self._idle: list[_PinnedConnection] = []
        self._lock = threading.Lock()

    def post(self, target: str, body: bytes, headers: dict[str, str]) -> Reply:
        """POST ``body`` to the path ``target``; a stale kept-alive socket is redone."""
        connection, reused = self._take()
        try:
            reply, keep = _exchange(connection, target, body, headers)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            connection.close()
            if not reused:
                raise
            connection = self._new()
            reply, keep = _exchange(connection, target, body, headers)
        except BaseException:
            connection.close()
            raise

        self._give_back(connection, keep)
        return reply

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _take(self) -> tuple[_PinnedConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._new(), False

    def _new(self) -> _PinnedConnection:
        return _PinnedConnection(
            self.host, self.address, self.port, self.timeout, self.tls
        )

    def _give_back(self, connection: _PinnedConnection, keep: bool) -> None:
        with self._lock:
            if keep and len(self._idle) < MAX_IDLE_PER_TARGET:
                self._idle.append(connection)
                return
        connection.close()


def _exchange(
    connection: _PinnedConnection, target: str, body: bytes, headers: dict[str, str]
) -> tuple[Reply, bool]:
    connection.request("POST", target, body=body, headers=headers)
    response = connection.getresponse()
    response.read(DRAIN_LIMIT_BYTES)
    finished = response.isclosed()
    reply = Reply(
        response.status, {name.lower(): value for name, value in response.getheaders()}
    )
    keep = finished and not response.will_close
    if not finished:
        response.close()
    return reply, keep


def tls_context(verify: ssl.SSLContext | bool) -> ssl.SSLContext:
    """TLS settings of https sends: the system's trust store unless told otherwise."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
