"""A customer's picture host on 127.0.0.1: the pictures a campaign names, good and bad.

`PictureServer` serves each of `SAMPLES` at `/{name}` with the content type its name suggests (the liar
too), records every request's path, and serves two misbehaving ones: `/huge.jpg` streams more than
5 MB without a Content-Length, `/slow.png` never answers (until the server stops), `/moved.png`
redirects to a good picture.
"""

from __future__ import annotations

import io
from functools import cache

from aiohttp import web
from PIL import Image

from tests.fakes.server import AiohttpFake

RED, GREEN, BLUE, ORANGE = (220, 20, 20), (20, 160, 40), (20, 40, 200), (240, 140, 0)
# EXIF tag 0x0112 (Orientation); 6: the stored picture is shown turned 90 degrees clockwise.
ORIENTATION, ROTATE_90_CW = 0x0112, 6


def encode(picture: Image.Image, kind: str, **options: object) -> bytes:
    out = io.BytesIO()
    picture.save(out, kind, **options)
    return out.getvalue()


def rotated_jpeg() -> bytes:
    """Stored 200x100 (wide), shown 100x200 (tall) once its EXIF orientation is applied."""
    exif = Image.Exif()
    exif[ORIENTATION] = ROTATE_90_CW
    return encode(Image.new("RGB", (200, 100), ORANGE), "JPEG", exif=exif.tobytes(), quality=95)


@cache
def samples() -> dict[str, bytes]:
    return {
        "tall.png": encode(Image.new("RGBA", (300, 600), (*RED, 255)), "PNG"),
        "wide.jpg": encode(Image.new("RGB", (1200, 400), BLUE), "JPEG", quality=95),
        "tiny.png": encode(Image.new("RGB", (40, 20), GREEN), "PNG"),
        "rotated.jpg": rotated_jpeg(),
        "liar.png": encode(Image.new("RGB", (100, 100), RED), "GIF"),  # a GIF under a PNG's name and type
    }


HUGE_BYTES = 6 * 1024 * 1024


class PictureServer(AiohttpFake[None, None, str, None]):
    thread_name = "fake-picture-server"

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/huge.jpg", self._huge)
        app.router.add_get("/slow.png", self._slow)
        app.router.add_get("/moved.png", self._moved)
        app.router.add_get("/{name}", self._sample)

    def _request_of(self, request: web.Request) -> str:
        return request.path

    def url(self, name: str) -> str:
        return f"{self.origin}/{name}"

    async def _sample(self, request: web.Request) -> web.Response:
        data = samples().get(request.match_info["name"])
        if data is None:
            return web.Response(status=404)
        kind = "image/png" if request.path.endswith(".png") else "image/jpeg"
        return web.Response(body=data, content_type=kind)

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = samples()["wide.jpg"].ljust(64 * 1024, b"\0")
        try:
            for _ in range(HUGE_BYTES // len(chunk)):
                await response.write(chunk)
            await response.write_eof()
        except ConnectionError:
            pass  # the reader stopped at its cap and hung up, as it should
        return response

    async def _slow(self, request: web.Request) -> web.Response:
        return await self._hang()

    async def _moved(self, request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": self.url("tall.png")})
