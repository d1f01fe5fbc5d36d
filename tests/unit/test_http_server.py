"""Issue #13, low: the HTTP servers had no header-read timeout and no connection cap. A slowloris
client (a partial request head, then nothing) is disconnected; connections beyond the cap get 503.
A real uvicorn server on a loopback port, with each of its HTTP parsers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn

from tests.fixtures.kafka import free_ports
from tests.fixtures.waiting import wait_until
from xpcore.config import CoreSettings
from xpcore.http_server import HttpLimits

PARSERS = ["h11", "httptools"]


async def _app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]


@contextmanager
def _server(limits: HttpLimits, http: str) -> Iterator[int]:
    (port,) = free_ports(1)
    config = uvicorn.Config(
        _app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **limits.uvicorn_options(http)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "the server thread ended before it started serving"
        return bool(server.started)

    wait_until(started, timeout=20, interval=0.02, message="the server to start")
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=20)


def _request(sock: socket.socket) -> bytes:
    sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _closed_by_server(sock: socket.socket) -> bool:
    """True when the server closes the connection (within the socket's 20 s timeout)."""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("http", PARSERS)
def test_a_partial_request_head_is_disconnected(http: str) -> None:
    limits = HttpLimits(header_timeout=0.5, keep_alive_timeout=60)  # keep-alive never closes it here
    with _server(limits, http) as port:
        with _connect(port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            assert _closed_by_server(sock)
        with _connect(port) as sock:  # the same after a first request on a keep-alive connection
            assert _request(sock).startswith(b"HTTP/1.1 200")
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            assert _closed_by_server(sock)
        with _connect(port) as sock:  # a prompt client is served as usual, twice on one connection
            assert _request(sock).startswith(b"HTTP/1.1 200")
            assert _request(sock).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("http", PARSERS)
def test_connections_beyond_the_cap_get_503(http: str) -> None:
    with _server(HttpLimits(max_connections=3, keep_alive_timeout=60), http) as port:
        held = [_connect(port), _connect(port)]
        try:
            for sock in held:
                assert _request(sock).startswith(b"HTTP/1.1 200")
            with _connect(port) as third:
                assert _request(third).startswith(b"HTTP/1.1 503")
        finally:
            for sock in held:
                sock.close()

        def accepted() -> bool:  # once the server has noticed the closed connections
            with _connect(port) as sock:
                return _request(sock).startswith(b"HTTP/1.1 200")

        wait_until(accepted, timeout=20, message="a 200 after the other connections closed")


def test_limits_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XP_HTTP_HEADER_TIMEOUT", "3")
    monkeypatch.setenv("XP_HTTP_MAX_CONNECTIONS", "50")
    limits = HttpLimits.from_settings(CoreSettings())
    assert (limits.header_timeout, limits.max_connections) == (3.0, 50)
    options = limits.uvicorn_options()
    assert options["limit_concurrency"] == 50 and options["timeout_keep_alive"] == 5
    assert options["h11_max_incomplete_event_size"] == 16384
