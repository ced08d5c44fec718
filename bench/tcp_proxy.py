"""A TCP proxy whose link can be broken on demand: how the chaos suite takes a database away.

It runs its own event loop in a thread, so a synchronous driver (bench/chaos.py) or a test can switch it:

- `pass`: bytes flow both ways, as if the client were connected to the target itself;
- `reset`: every open connection is reset (RST) and every new one is reset as soon as it is accepted, as
  a server that went away, or a firewall rejecting, does to a client;
- `blackhole`: connections are accepted and kept, but nothing is forwarded either way (what was read is
  held, not dropped), as when packets are silently lost; back in `pass`, the held bytes flow on, as TCP
  would retransmit them once the path heals.

The machine's shared PostgreSQL is never stopped: only the proxy's own connections are cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Literal

Mode = Literal["pass", "reset", "blackhole"]
MODES: tuple[Mode, ...] = ("pass", "reset", "blackhole")
_CHUNK = 65536


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN: SO_LINGER on, timeout 0 (socket(7))."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.writers = [client]
        self.tasks: list[asyncio.Task[None]] = []

    def reset(self) -> None:
        for task in self.tasks:
            task.cancel()
        for writer in self.writers:
            _reset(writer)


class TcpProxy:
    """Listens on 127.0.0.1:`port` (0: any free port) and forwards to `target_host`:`target_port`."""

    def __init__(self, target_host: str, target_port: int, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = port
        self.mode: Mode = "pass"
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._flowing: asyncio.Event | None = None
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)

    # --- control, from any thread ---------------------------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)
        return self

    def set_mode(self, mode: Mode) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown proxy mode {mode!r}")
        asyncio.run_coroutine_threadsafe(self._set_mode(mode), self._loop).result(timeout=10)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def broken(self, mode: Mode) -> Iterator[None]:
        """`mode` for the duration of the block, then `pass` again."""
        self.set_mode(mode)
        try:
            yield
        finally:
            self.set_mode("pass")

    # --- the event loop's side ------------------------------------------------------------------------

    async def _listen(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _set_mode(self, mode: Mode) -> None:
        assert self._flowing is not None
        self.mode = mode
        if mode == "pass":
            self._flowing.set()
            return
        self._flowing.clear()
        if mode == "reset":
            for link in list(self._links):
                link.reset()
            self._links.clear()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.reset()
        self._links.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode == "reset":
            _reset(writer)
            return
        link = _Link(writer)
        self._links.add(link)
        # The forwarding runs in a task of its own: a reset cancels that one, never asyncio's
        # handler task (whose cancellation asyncio reports as an error).
        forwarding = asyncio.ensure_future(self._forward(link, reader, writer))
        link.tasks.append(forwarding)
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await forwarding
        finally:
            self._links.discard(link)
            for each in link.writers:
                each.close()

    async def _forward(self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._wait_flowing()  # a black hole accepts, but does not even reach the target
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            link.writers.append(up_writer)
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            link.reset()

    async def _wait_flowing(self) -> None:
        assert self._flowing is not None
        await self._flowing.wait()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(_CHUNK):
            await self._wait_flowing()  # held, not dropped, while black-holed
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
