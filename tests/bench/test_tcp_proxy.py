"""The chaos suite's TCP proxy (bench/tcp_proxy.py) against a local echo server: pass, reset, blackhole."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from bench.tcp_proxy import TcpProxy

TIMEOUT_S = 2.0


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A threaded echo server on a free port, closed (with its connections) after the test."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(conn)
            threading.Thread(target=_quietly, args=(echo, conn), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(TIMEOUT_S)
        listener.close()
        for conn in accepted:
            conn.close()


def _quietly(target: object, conn: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the test reset or closed it
        target(conn)  # type: ignore[operator]


@pytest.fixture
def proxy(echo_port: int) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", echo_port) as running:
        yield running


def _connect(proxy: TcpProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT_S)


def _round_trip(conn: socket.socket, data: bytes) -> bytes:
    conn.sendall(data)
    received = b""
    while len(received) < len(data):
        chunk = conn.recv(4096)
        if not chunk:
            break
        received += chunk
    return received


def _reset_by_peer(conn: socket.socket) -> bool:
    """True when the connection was reset (RST), as opposed to closed in order or left hanging."""
    try:
        _round_trip(conn, b"probe")
        _round_trip(conn, b"probe")  # the first send may still land in the kernel's buffer
    except ConnectionResetError:
        return True
    return False


def _new_connection_reset(proxy: TcpProxy) -> bool:
    """The proxy resets a new connection at once: during the handshake's completion or at the first use."""
    try:
        fresh = _connect(proxy)
    except ConnectionResetError:
        return True
    with fresh:
        return _reset_by_peer(fresh)


def test_pass_forwards_both_ways(proxy: TcpProxy) -> None:
    with _connect(proxy) as conn:
        assert _round_trip(conn, b"hello") == b"hello"
        assert _round_trip(conn, b"x" * 100_000) == b"x" * 100_000


def test_reset_cuts_open_connections_and_refuses_new_ones(proxy: TcpProxy) -> None:
    with _connect(proxy) as conn:
        assert _round_trip(conn, b"before") == b"before"
        proxy.set_mode("reset")
        assert _reset_by_peer(conn)
    assert _new_connection_reset(proxy)
    proxy.set_mode("pass")
    with _connect(proxy) as again:
        assert _round_trip(again, b"after") == b"after"


def test_blackhole_holds_bytes_until_pass(proxy: TcpProxy) -> None:
    with _connect(proxy) as conn, _connect(proxy) as late:
        assert _round_trip(conn, b"before") == b"before"
        proxy.set_mode("blackhole")
        conn.settimeout(0.5)
        with pytest.raises(TimeoutError):
            _round_trip(conn, b"held")
        with _connect(proxy) as new:  # accepted, never answered
            new.settimeout(0.5)
            with pytest.raises(TimeoutError):
                _round_trip(new, b"new")
        proxy.set_mode("pass")
        conn.settimeout(TIMEOUT_S)
        assert conn.recv(4096) == b"held"  # held, not dropped
        assert _round_trip(late, b"late") == b"late"


def test_unknown_mode_is_refused(proxy: TcpProxy) -> None:
    with pytest.raises(ValueError, match="unknown proxy mode"):
        proxy.set_mode("drop")  # type: ignore[arg-type]
