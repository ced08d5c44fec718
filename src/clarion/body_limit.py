"""A ceiling on request bodies, so no client can make the server hold an arbitrary amount in memory.

Every API body is small (a push is a few KB; a Swrve batch at most 256 KB, refused by its own route).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clarion import errors

MAX_BODY_BYTES = 1024 * 1024  # 1 MiB: four times the largest body any endpoint accepts
# A subscriber import (POST /v1/apps/{app_key}/subscribers/import) is read as a stream, a chunk of lines
# at a time, so its size costs time, not memory: 1 GiB is some four million subscribers.
MAX_IMPORT_BODY_BYTES = 1024 * 1024 * 1024
IMPORT_PATH_SUFFIX = "/subscribers/import"


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = 0
        limit = MAX_IMPORT_BODY_BYTES if scope["path"].endswith(IMPORT_PATH_SUFFIX) else self.max_bytes

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the handler's body read: rendered by the app's error handler.
                    raise errors.BodyTooLarge(f"Request Entity Too Large: at most {limit} bytes")
            return message

        await self.app(scope, bounded, send)
