"""A fetched picture checked and normalised as the Gravitec document says (pure: bytes in, bytes out).

Icon: "at least 80x80 pixels and with 1:1 ratio. Pictures without that ratio will be resized with its
aspect ratio and put on a white square". Image: "1.5:1 sides ratio and size at least 360x240 pixels …
Pictures which are not in 1.5:1 ratio or less than 360x240 will be resized according to their aspect
ratio and put on top of a white image of 360x240 px". Only JPEG and PNG are decoded (Pillow, with the
formats restricted, its decompression-bomb guard and a lower pixel cap of our own); EXIF orientation
is applied, and transparency is laid on white. CPU-bound: callers run it in a thread.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageOps, UnidentifiedImageError

Role = Literal["icon", "image"]

# Icon sides: the vendor's minimum, and a maximum that covers a 3x display of the 80 px a browser
# shows (larger icons only cost bytes in every notification).
ICON_MIN = 80
ICON_MAX = 256
# The image canvas the vendor names, and the largest 1.5:1 image kept (3x the canvas: sharp on a
# high-density screen, a few hundred KB as JPEG).
IMAGE_CANVAS = (360, 240)
IMAGE_MAX = (1080, 720)
# 25 megapixels: more than any camera picture under the 5 MB fetch cap needs, and about 100 MB of
# RGBA while decoding; Pillow's own guard (89 megapixels) stays on behind it.
MAX_PIXELS = 25_000_000
# JPEG quality of the image: Pillow's scale, where 85 keeps photos free of visible artefacts.
JPEG_QUALITY = 85
WHITE = (255, 255, 255)


class BadPicture(Exception):
    """The bytes are not a picture Clarion sends (the reason goes into the campaign's warning)."""


@dataclass(frozen=True, slots=True)
class Processed:
    data: bytes
    content_type: str  # image/png | image/jpeg
    width: int
    height: int

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def extension(self) -> str:
        return "png" if self.content_type == "image/png" else "jpg"


def normalise(data: bytes, role: Role) -> Processed:
    """The icon (PNG on a white square) or image (JPEG on a white 360x240 canvas, or kept) of `data`."""
    if role == "icon":
        return _icon(_decode(data, ICON_MAX))
    return _image(_decode(data, IMAGE_MAX[0]))


def _decode(data: bytes, largest_side: int) -> Image.Image:
    """The picture upright and on white; a JPEG decoded no larger than the output needs."""
    try:
        opened = Image.open(io.BytesIO(data), formats=("JPEG", "PNG"))
    except UnidentifiedImageError:
        raise BadPicture("not a JPEG or PNG picture") from None
    except Image.DecompressionBombError:
        raise BadPicture("too many pixels (a decompression bomb?)") from None
    width, height = opened.size
    if width * height > MAX_PIXELS:
        raise BadPicture(f"{width}x{height} is more than {MAX_PIXELS} pixels")
    if opened.format == "JPEG":
        # Decode a large JPEG at a reduced scale (its DCT allows 1/2, 1/4, 1/8) that still leaves both
        # sides at least the output's largest side: decoding then costs a fraction.
        opened.draft("RGB", (largest_side, largest_side))
    try:
        opened.load()
        upright = ImageOps.exif_transpose(opened)
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt data
        raise BadPicture(f"the {opened.format} data cannot be decoded: {exc}") from None
    return _on_white(upright)


def _on_white(picture: Image.Image) -> Image.Image:
    """RGB, transparent parts laid on white (a notification has no transparent background)."""
    if picture.mode in ("RGBA", "LA") or (picture.mode == "P" and "transparency" in picture.info):
        rgba = picture.convert("RGBA")
        flat = Image.new("RGB", rgba.size, WHITE)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return picture.convert("RGB")


def _fit(picture: Image.Image, box: tuple[int, int]) -> Image.Image:
    """Scaled (up or down) to fit `box`, aspect ratio kept, each side at least one pixel."""
    scale = min(box[0] / picture.width, box[1] / picture.height)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    return picture if size == picture.size else picture.resize(size, Image.Resampling.LANCZOS)


def _centred(picture: Image.Image, canvas_size: tuple[int, int]) -> Image.Image:
    fitted = _fit(picture, canvas_size)
    canvas = Image.new("RGB", canvas_size, WHITE)
    canvas.paste(fitted, ((canvas_size[0] - fitted.width) // 2, (canvas_size[1] - fitted.height) // 2))
    return canvas


def _icon(picture: Image.Image) -> Processed:
    side = min(ICON_MAX, max(ICON_MIN, picture.width, picture.height))
    return _encode(_centred(picture, (side, side)), "PNG")


def _is_image_ratio(width: int, height: int) -> bool:
    """1.5:1, give or take the pixel that rounding either side costs (1000x667 is 1.5:1)."""
    return abs(2 * width - 3 * height) <= 3


def _image(picture: Image.Image) -> Processed:
    width, height = picture.size
    if _is_image_ratio(width, height) and width >= IMAGE_CANVAS[0] and height >= IMAGE_CANVAS[1]:
        kept = picture if width <= IMAGE_MAX[0] else picture.resize(IMAGE_MAX, Image.Resampling.LANCZOS)
        return _encode(kept, "JPEG")
    return _encode(_centred(picture, IMAGE_CANVAS), "JPEG")


def _encode(picture: Image.Image, kind: Literal["PNG", "JPEG"]) -> Processed:
    out = io.BytesIO()
    if kind == "PNG":
        picture.save(out, "PNG", optimize=True)
    else:
        picture.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    content_type = "image/png" if kind == "PNG" else "image/jpeg"
    return Processed(out.getvalue(), content_type, picture.width, picture.height)
