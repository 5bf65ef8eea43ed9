"""The fast PNG mask decoder (cfosstats.core.png) against PIL: real masks and hand-filtered files."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cfosstats.core.errors import InputError
from cfosstats.core.imageio import read_mask
from cfosstats.core.png import decode_png

COLOUR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _filter_row(kind: int, row: np.ndarray, above: np.ndarray, bpp: int) -> bytes:
    """The PNG specification's filters, byte by byte (the reference the decoder must invert)."""
    out = bytearray()
    for x, value in enumerate(row.tolist()):
        a = int(row[x - bpp]) if x >= bpp else 0
        b = int(above[x])
        c = int(above[x - bpp]) if x >= bpp else 0
        predictor = {0: 0, 1: a, 2: b, 3: (a + b) // 2, 4: _paeth(a, b, c)}[kind]
        out.append((value - predictor) % 256)
    return bytes(out)


def encode_png(pixels: np.ndarray, kinds: list[int], depth: int = 8, interlace: int = 0) -> bytes:
    """An 8-bit PNG of `pixels` (H, W) or (H, W, C) with row `kinds` chosen by the caller."""
    pixels = pixels if pixels.ndim == 3 else pixels[..., None]
    height, width, channels = pixels.shape
    rows = pixels.reshape(height, width * channels)
    raw = b""
    for y, kind in enumerate(kinds):
        above = rows[y - 1] if y else np.zeros_like(rows[0])
        raw += bytes([kind]) + _filter_row(kind, rows[y], above, channels)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, depth, COLOUR_TYPES[channels], 0, 0, interlace)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def pil_pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return np.asarray(image)


def _binary(rng, shape) -> np.ndarray:
    # blobs, not noise: rows repeat the row above, so every filter type is plausible
    mask = np.zeros(shape[:2], np.uint8)
    for _ in range(6):
        r, c = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        mask[r : r + rng.integers(2, 9), c : c + rng.integers(2, 9)] = 255
    return np.repeat(mask[..., None], shape[2], axis=2) if len(shape) == 3 else mask


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("seed", range(4))
def test_binary_masks_with_every_filter_decode_as_pil_does(channels, seed):
    rng = np.random.default_rng(seed)
    shape = (23, 31) if channels == 1 else (23, 31, channels)
    pixels = _binary(rng, shape)
    kinds = rng.choice([0, 1, 2, 4], size=23).tolist()
    kinds[1:5] = [4, 4, 2, 4]  # chains of Paeth and Up rows below the first
    data = encode_png(pixels, kinds)
    decoded = decode_png(data)
    assert decoded is not None  # a two-valued mask never defeats the Paeth guess
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, pil_pixels(data))
    assert np.array_equal(decoded, pixels)


@pytest.mark.parametrize("seed", range(6))
def test_any_pixels_are_decoded_exactly_or_left_to_pil(seed):
    # Random bytes under Paeth rows: the guess b is often wrong; then None, never wrong pixels.
    rng = np.random.default_rng(100 + seed)
    pixels = rng.integers(0, 256, (12, 9, 3), dtype=np.uint8)
    data = encode_png(pixels, rng.choice([0, 1, 2, 4], size=12).tolist())
    decoded = decode_png(data)
    assert decoded is None or np.array_equal(decoded, pil_pixels(data))
    paeth_everywhere = decode_png(encode_png(pixels, [4] * 12))
    assert paeth_everywhere is None  # a wrong guess was caught
    assert np.array_equal(decode_png(encode_png(pixels, [0, 1, 2, 1, 0, 2, 2, 1, 0, 1, 2, 0])), pixels)


def test_what_is_not_handled_goes_to_pil():
    mask = _binary(np.random.default_rng(1), (16, 16, 3))
    assert decode_png(encode_png(mask, [0] * 7 + [3] + [0] * 8)) is None  # an Average row
    assert decode_png(encode_png(mask, [0] * 16, interlace=1)) is None
    assert decode_png(encode_png(mask, [0] * 16)[:-30]) is None  # truncated
    for mode in ("1", "P", "I;16", "LA"):
        buffer = io.BytesIO()
        Image.fromarray(mask[..., 0]).convert(mode).save(buffer, format="PNG")
        assert decode_png(buffer.getvalue()) is None, mode
    assert decode_png(b"not a png") is None
    # a filter byte outside 0..4
    raw = b"".join(b"\x05" + bytes(16) for _ in range(4))
    header = struct.pack(">IIBBBBB", 16, 4, 8, 0, 0, 0, 0)
    body = [(b"IHDR", header), (b"IDAT", zlib.compress(raw)), (b"IEND", b"")]
    file = b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d)) for k, d in body
    )
    assert decode_png(file) is None


def test_read_mask_gives_the_same_masks_and_errors_through_either_decoder(tmp_path):
    mask = _binary(np.random.default_rng(2), (20, 24, 3))
    fast, slow = tmp_path / "fast.png", tmp_path / "slow.png"
    fast.write_bytes(encode_png(mask, [0, 4, 2, 1] * 5))
    slow.write_bytes(encode_png(mask, [0, 3, 2, 1] * 5))  # Average rows: PIL decodes it
    assert np.array_equal(read_mask(fast), read_mask(slow))
    grey = mask[..., 0].copy()
    grey[0, 0] = 7  # a third value: refused, whichever decoder read it
    (tmp_path / "three.png").write_bytes(encode_png(grey, [0, 4] * 10))
    with pytest.raises(InputError, match="three.png"):
        read_mask(tmp_path / "three.png")


def test_every_real_mask_decodes_on_the_fast_path_exactly_as_pil(train_data):
    files = sorted(train_data.glob("lab-*/labels/*/*.png"))
    assert len(files) > 300  # five labs' annotators and est_GT
    for path in files:
        data = path.read_bytes()
        decoded = decode_png(data)
        assert decoded is not None, path
        assert np.array_equal(decoded, pil_pixels(data)), path


@pytest.mark.parametrize("seed", range(3))
def test_an_rgb_mask_with_equal_channels_comes_back_as_its_plane(seed):
    rng = np.random.default_rng(200 + seed)
    grey_rgb = _binary(rng, (23, 31, 3))
    kinds = rng.choice([0, 1, 2, 4], size=23).tolist()
    plane = decode_png(encode_png(grey_rgb, kinds), grey_rgb_as_plane=True)
    assert plane.shape == (23, 31) and np.array_equal(plane, grey_rgb[..., 0])
    # One channel differs in one pixel: all three channels come back, as PIL reads them.
    coloured = grey_rgb.copy()
    coloured[5, 7, 2] = 255 - coloured[5, 7, 2]
    data = encode_png(coloured, kinds)
    decoded = decode_png(data, grey_rgb_as_plane=True)
    assert decoded.shape == (23, 31, 3) and np.array_equal(decoded, pil_pixels(data))
    # Grey and RGBA files are unaffected.
    assert np.array_equal(
        decode_png(encode_png(grey_rgb[..., 0], kinds), grey_rgb_as_plane=True), grey_rgb[..., 0]
    )
    rgba = np.concatenate([grey_rgb, np.full((23, 31, 1), 255, np.uint8)], axis=2)
    assert decode_png(encode_png(rgba, kinds), grey_rgb_as_plane=True).shape == (23, 31, 4)


def test_read_mask_ors_the_channels_of_a_coloured_mask(tmp_path):
    mask = np.zeros((8, 9, 3), np.uint8)
    mask[1:3, 1:3, 0] = 255  # red object
    mask[5:7, 4:8, 2] = 255  # blue object
    (tmp_path / "colour.png").write_bytes(encode_png(mask, [0, 4, 2, 1, 4, 2, 2, 0]))
    assert np.array_equal(read_mask(tmp_path / "colour.png"), mask.any(axis=2))


def test_every_real_rgb_mask_as_a_plane_is_the_or_of_pils_channels(train_data):
    files = sorted(train_data.glob("lab-*/labels/*/*.png"))
    planes = 0
    for path in files:
        data = path.read_bytes()
        decoded, pixels = decode_png(data, grey_rgb_as_plane=True), pil_pixels(data)
        expected = np.bitwise_or.reduce(pixels, axis=-1) if decoded.ndim == 2 and pixels.ndim == 3 else pixels
        planes += decoded.ndim == 2 and pixels.ndim == 3
        assert np.array_equal(decoded, expected), path
    assert planes >= 180  # lab-wue1's five experts save grey masks as RGB


def test_a_broken_or_truncated_stream_goes_to_pil_which_names_the_file(tmp_path):
    mask = _binary(np.random.default_rng(4), (16, 16, 3))
    good = encode_png(mask, [0, 4, 2, 1] * 4)
    start = good.index(b"IDAT") + 4
    length = struct.unpack(">I", good[start - 8 : start - 4])[0]
    body = good[start : start + length]
    for name, broken in [("garbled", body[:2] + bytes(len(body) - 2)), ("cut", body[: len(body) // 2])]:
        crc = struct.pack(">I", zlib.crc32(b"IDAT" + broken))
        data = (
            good[: start - 8]
            + struct.pack(">I", len(broken))
            + b"IDAT"
            + broken
            + crc
            + good[start + length + 4 :]
        )
        assert decode_png(data) is None, name
        (tmp_path / f"{name}.png").write_bytes(data)
        with pytest.raises(InputError, match=f"{name}.png"):
            read_mask(tmp_path / f"{name}.png")
