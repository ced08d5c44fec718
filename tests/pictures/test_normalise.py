"""Pictures normalised as the Gravitec document says: sizes, white padding, orientation, refusals."""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

from clarion.pictures.normalise import BadPicture, normalise
from tests.fakes.picture_server import BLUE, GREEN, ORANGE, RED, encode, samples

WHITE = (255, 255, 255)


def opened(data: bytes, kind: str) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    assert picture.format == kind
    return picture.convert("RGB")


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], slack: int = 12) -> bool:
    """JPEG moves colours a little; PNG keeps them exactly (slack 0)."""
    return all(abs(a - b) <= slack for a, b in zip(pixel, colour, strict=True))


def test_tall_png_image_is_fitted_on_a_white_360x240_canvas() -> None:
    processed = normalise(samples()["tall.png"], "image")
    assert (processed.content_type, processed.width, processed.height) == ("image/jpeg", 360, 240)
    picture = opened(processed.data, "JPEG")
    assert picture.size == (360, 240)
    # 300x600 scaled by 0.4 is 120x240, centred: columns 120..239 red, the rest white.
    for corner in ((0, 0), (359, 0), (0, 239), (359, 239), (110, 120), (250, 120)):
        assert near(picture.getpixel(corner), WHITE), corner
    for inside in ((125, 5), (180, 120), (234, 234)):
        assert near(picture.getpixel(inside), RED), inside
    assert processed.digest == hashlib.sha256(processed.data).hexdigest()


def test_wide_jpeg_image_is_fitted_with_white_above_and_below() -> None:
    picture = opened(normalise(samples()["wide.jpg"], "image").data, "JPEG")
    # 1200x400 scaled by 0.3 is 360x120, rows 60..179.
    assert picture.size == (360, 240)
    for white in ((0, 0), (359, 239), (180, 50), (180, 190)):
        assert near(picture.getpixel(white), WHITE), white
    for inside in ((0, 70), (359, 170), (180, 120)):
        assert near(picture.getpixel(inside), BLUE), inside


def test_tiny_icon_is_scaled_up_onto_an_80x80_white_square() -> None:
    processed = normalise(samples()["tiny.png"], "icon")
    assert (processed.content_type, processed.width, processed.height) == ("image/png", 80, 80)
    picture = opened(processed.data, "PNG")
    # 40x20 scaled by 2 is 80x40, rows 20..59.
    for white in ((0, 0), (79, 0), (0, 79), (79, 79), (40, 19), (40, 60)):
        assert picture.getpixel(white) == WHITE, white
    for inside in ((0, 20), (79, 59), (40, 40)):
        assert picture.getpixel(inside) == GREEN, inside


def test_exif_orientation_is_applied_before_fitting() -> None:
    picture = opened(normalise(samples()["rotated.jpg"], "icon").data, "PNG")
    # Shown 100x200 (not stored 200x100): centred on a 200x200 square, columns 50..149.
    assert picture.size == (200, 200)
    for white in ((0, 0), (199, 199), (10, 100), (190, 100)):
        assert picture.getpixel(white) == WHITE, white
    for inside in ((100, 5), (100, 195), (55, 100)):
        assert near(picture.getpixel(inside), ORANGE), inside


@pytest.mark.parametrize(
    ("size", "kept"),
    [((600, 400), (600, 400)), ((1000, 667), (1000, 667)), ((3000, 2000), (1080, 720))],
)
def test_a_1_5_to_1_image_is_kept_and_large_ones_scaled_down(
    size: tuple[int, int], kept: tuple[int, int]
) -> None:
    processed = normalise(encode(Image.new("RGB", size, BLUE), "JPEG"), "image")
    assert (processed.width, processed.height) == kept
    picture = opened(processed.data, "JPEG")
    assert near(picture.getpixel((0, 0)), BLUE)


def test_small_1_5_to_1_image_is_put_on_the_canvas_and_big_icon_capped() -> None:
    small = opened(normalise(encode(Image.new("RGB", (150, 100), BLUE), "PNG"), "image").data, "JPEG")
    assert small.size == (360, 240)
    assert near(small.getpixel((0, 0)), BLUE)  # 150x100 scaled up to fill 360x240 exactly
    icon = normalise(encode(Image.new("RGB", (1000, 500), RED), "PNG"), "icon")
    assert (icon.width, icon.height) == (256, 256)
    assert opened(icon.data, "PNG").getpixel((0, 0)) == WHITE


def test_transparency_is_laid_on_white() -> None:
    clear = encode(Image.new("RGBA", (100, 100), (0, 0, 0, 0)), "PNG")
    assert opened(normalise(clear, "icon").data, "PNG").getpixel((50, 50)) == WHITE


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (samples()["liar.png"], "not a JPEG or PNG picture"),
        (b"<html>not a picture</html>", "not a JPEG or PNG picture"),
        (encode(Image.new("RGB", (10, 10)), "BMP"), "not a JPEG or PNG picture"),
        (samples()["tall.png"][:200], "the PNG data cannot be decoded"),
    ],
)
def test_what_is_not_a_jpeg_or_png_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(BadPicture) as refused:
        normalise(data, "image")
    assert str(refused.value).startswith(reason)


def test_too_many_pixels_are_refused_before_decoding() -> None:
    # A 6000x5000 PNG of one colour compresses to a few KB: the pixel count is the bomb, not the bytes.
    bomb = encode(Image.new("L", (6000, 5000)), "PNG")
    assert len(bomb) < 100_000
    with pytest.raises(BadPicture, match="6000x5000 is more than 25000000 pixels"):
        normalise(bomb, "icon")


def test_a_large_jpeg_decoded_at_reduced_scale_still_fills_its_output() -> None:
    """Large JPEGs are decoded at 1/2, 1/4 or 1/8 scale (draft) but never below the output's size."""
    photo = encode(Image.new("RGB", (3000, 2000), BLUE), "JPEG")
    icon = opened(normalise(photo, "icon").data, "PNG")
    assert icon.size == (256, 256)  # 3000x2000 fitted: 256x171, rows 42..212
    assert [icon.getpixel((128, y)) == WHITE for y in (0, 41, 43, 211, 213, 255)] == [
        True,
        True,
        False,
        False,
        True,
        True,
    ]
    assert near(icon.getpixel((0, 128)), BLUE)
    image = opened(normalise(photo, "image").data, "JPEG")
    assert image.size == (1080, 720)
    assert near(image.getpixel((1079, 719)), BLUE)
