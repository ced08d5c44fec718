"""What every fake push service shares: its server's life, its script of answers and its records.

A fake is a real server on 127.0.0.1 (a free port, `origin`) run by its own event loop in a thread, so
sync tests, async tests and a server under test in a subprocess can all reach it. With `tls=True` it
serves HTTPS with a certificate for 127.0.0.1 and localhost from a test CA whose PEM is `ca_file`.

`FakeServer` owns the thread, the loop, the certificates, the per-key scripts, the records (`received`,
`errors`, `requests`, `accepted`), `wait_for` and an idempotent `stop` that releases hanging requests,
closes the port and deletes the files. A subclass brings the server: `AiohttpFake` serves an aiohttp
application (HTTP/1.1); the APNs fake serves an ASGI app with hypercorn (HTTP/2).
"""

import asyncio
import shutil
import ssl
import tempfile
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

from aiohttp import web

from tests.fakes.tls import write_certificates

SSL_SHUTDOWN_TIMEOUT_S = 0.5  # see _TlsLoop
START_TIMEOUT_S = 10
STOP_TIMEOUT_S = 15  # servers wait 2 s for requests in flight; then their connections are closed


@dataclass(frozen=True, slots=True)
class Hang:
    """Never answer; the request is released only when the fake stops."""


ReceivedT = TypeVar("ReceivedT")
FailureT = TypeVar("FailureT")
RequestT = TypeVar("RequestT")
RespondT = TypeVar("RespondT")


class FakeServer(Generic[ReceivedT, FailureT, RequestT, RespondT]):
    """A fake's machinery; a subclass serves in `_serve_on_free_port` and ends it in `_close`."""

    thread_name = "fake-server"
    accepted_noun = "messages"  # for wait_for's message

    def __init__(self, *, tls: bool = False) -> None:
        self._cond = threading.Condition()
        self._scripts: dict[str, deque[RespondT | Hang]] = {}
        self._received: list[ReceivedT] = []
        self._errors: list[FailureT] = []
        self._requests: list[RequestT] = []
        self._accepted = 0
        self._stopped = False
        self._stopping = asyncio.Event()
        self._tls_dir = _certificates_dir(self.thread_name) if tls else None
        self._loop: asyncio.AbstractEventLoop = _TlsLoop() if tls else asyncio.new_event_loop()
        self._loop.set_exception_handler(self._loop_error)
        self._thread = threading.Thread(target=self._loop.run_forever, name=self.thread_name, daemon=True)
        self._thread.start()
        try:
            self.port: int = self._run(self._serve_on_free_port(), START_TIMEOUT_S)
        except BaseException:
            self._end_thread()
            raise
        self.origin = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"

    # --- the test's side -------------------------------------------------------------------------

    def script(self, key: str, responses: Iterable[RespondT | Hang]) -> None:
        """Answer the next (well-formed) requests for `key` with these, in order; then as usual."""
        with self._cond:
            self._scripts.setdefault(key, deque()).extend(responses)

    @property
    def received(self) -> list[ReceivedT]:
        """Requests that passed the fake's checks (the Web Push fake keeps only those it accepted)."""
        with self._cond:
            return list(self._received)

    @property
    def errors(self) -> list[FailureT]:
        """Requests the fake's own checks refused (scripted answers are not errors)."""
        with self._cond:
            return list(self._errors)

    @property
    def requests(self) -> list[RequestT]:
        """Every request that reached the fake, on any path, accepted or not."""
        with self._cond:
            return list(self._requests)

    @property
    def accepted(self) -> int:
        """Messages answered with success."""
        with self._cond:
            return self._accepted

    def wait_for(self, count: int, timeout_s: float) -> None:
        """Block until at least `count` messages were accepted; TimeoutError otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._accepted >= count, timeout_s):
                raise TimeoutError(
                    f"{self._accepted} of {count} {self.accepted_noun} accepted in {timeout_s}s; "
                    f"last errors: {self._errors[-5:]}"
                )

    def stop(self) -> None:
        """Release hanging requests, close the port, end the thread, delete the files. Safe twice."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self._run(self._shutdown(), STOP_TIMEOUT_S)
        finally:
            self._end_thread()

    @property
    def ca_file(self) -> str:
        """The test CA's PEM file: a client that trusts it reaches the fake over TLS."""
        if self._tls_dir is None:
            raise AttributeError(f"{type(self).__name__} serves plain HTTP: no ca_file")
        return str(self._tls_dir / "ca.pem")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- for subclasses --------------------------------------------------------------------------

    async def _serve_on_free_port(self) -> int:
        """Start serving on the fake's loop (TLS from `_certificates` when set); return the port."""
        raise NotImplementedError

    async def _close(self) -> None:
        """Stop serving; `_stopping` is already set, so hanging requests are being answered."""
        raise NotImplementedError

    def _is_teardown_error(self, error: BaseException) -> bool:
        """An error the loop reports at stop that is expected of this server (not shown)."""
        return False

    @property
    def _certificates(self) -> tuple[Path, Path] | None:
        """(certfile, keyfile) to serve TLS with, or None for plain HTTP."""
        if self._tls_dir is None:
            return None
        return self._tls_dir / "server.pem", self._tls_dir / "server.key"

    def _record_request(self, request: RequestT) -> None:
        with self._cond:
            self._requests.append(request)

    def _record_error(self, failure: FailureT) -> None:
        with self._cond:
            self._errors.append(failure)

    def _record_received(self, received: ReceivedT) -> None:
        with self._cond:
            self._received.append(received)

    def _next_scripted(self, key: str) -> RespondT | Hang | None:
        with self._cond:
            queue = self._scripts.get(key)
            return queue.popleft() if queue else None

    def _count_accepted(self, received: ReceivedT | None = None) -> None:
        """One more message accepted (and recorded, when `received` is given): wakes `wait_for`."""
        with self._cond:
            self._accepted += 1
            if received is not None:
                self._received.append(received)
            self._cond.notify_all()

    async def _until_stopped(self) -> None:
        await self._stopping.wait()

    # --- the machinery ---------------------------------------------------------------------------

    def _run(self, coroutine: Coroutine[Any, Any, Any], timeout_s: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=timeout_s)

    async def _shutdown(self) -> None:
        self._stopping.set()
        await self._close()
        # Connections a client left open can outlive the server's graceful wait; end their tasks
        # here so that closing the loop destroys no pending task.
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def _end_thread(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
        finally:
            if self._tls_dir is not None:
                shutil.rmtree(self._tls_dir, ignore_errors=True)

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if error is None or not self._is_teardown_error(error):
            loop.default_exception_handler(context)


def _certificates_dir(prefix: str) -> Path:
    """A temp directory holding ca.pem, server.pem and server.key (see tests.fakes.tls)."""
    directory = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    try:
        write_certificates(directory)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return directory


class _TlsLoop(asyncio.SelectorEventLoop):
    """An event loop whose TLS servers wait at most SSL_SHUTDOWN_TIMEOUT_S for a client's close_notify.

    At stop, the server closes the connections clients still hold; an idle HTTP/2 client does not
    read, so the TLS shutdown would wait asyncio's default 30 s, and no server here lets one set it.
    """

    async def create_server(self, *args: Any, **kwargs: Any) -> asyncio.Server:
        if kwargs.get("ssl") is not None:
            kwargs.setdefault("ssl_shutdown_timeout", SSL_SHUTDOWN_TIMEOUT_S)
        return await super().create_server(*args, **kwargs)


class AiohttpFake(FakeServer[ReceivedT, FailureT, RequestT, RespondT]):
    """A fake that serves an aiohttp application: a subclass adds its routes and says what a request is."""

    def _add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def _request_of(self, request: web.Request) -> RequestT:
        """The record of a request that reached the fake."""
        raise NotImplementedError

    async def _serve_on_free_port(self) -> int:
        app = web.Application(middlewares=[self._log_request])
        self._add_routes(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl_context())
        await site.start()
        port: int = self._runner.addresses[0][1]
        return port

    async def _close(self) -> None:
        await self._runner.cleanup()

    async def _hang(self) -> web.Response:
        """A scripted Hang: wait for the fake to stop, then answer 503."""
        await self._until_stopped()
        return web.Response(status=503)

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self._certificates is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*self._certificates)
        return context

    @web.middleware
    async def _log_request(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self._record_request(self._request_of(request))
        return await handler(request)
