"""Fast decoding of 8-bit PNG masks: zlib-ng inflate and vectorised unfiltering, checked exactly.

Binary masks compress into long runs that stock zlib inflates slowly (8.4 ms for a 1024² RGB
mask of lab-wue1, where zlib-ng takes 1.6 ms), and PIL unfilters row by row and then copies RGBX
into RGB. :func:`decode_png` inflates with zlib-ng when it is installed (else zlib) and undoes
the row filters with numpy; a grey mask saved as RGB (all of lab-wue1's experts') can be
unfiltered as its one plane (``grey_rgb_as_plane``). ``read_mask`` over the 216 wue1 masks:
3.5 ms per mask, where decoding all three channels took 8.0 ms and their OR 1.0 ms.

* ``None`` and ``Sub`` rows need nothing from other rows: all at once (``Sub`` is a cumulative
  sum per channel, modulo 256);
* ``Up`` and ``Paeth`` rows need the row above: they hang in chains below a ``None`` or ``Sub``
  row. Level by level (a row's level: the Paeth rows in its chain down to it), the level's Paeth
  rows are unfiltered at once, then its Up rows one by one (an in-place add of the row above);
* a ``Paeth`` row predicts each byte from its left (a), upper (b) and upper-left (c) neighbours.
  Where b == c the predictor is a, so the row is a cumulative sum between the bytes where b != c;
  at those it *guesses* the predictor b (always right for a two-valued 0/255 mask), and then
  checks every guess with the exact predictor from the decoded left byte: one wrong guess, and
  the file goes to PIL.

So the result is PIL's, bit for bit, or ``None`` (the caller then uses PIL): also for what is
not handled here (palette, 1/2/4/16-bit samples, grey + alpha, interlacing, ``Average``
filters) and for broken files, whose error message PIL then gives.

Examples
--------
>>> import io, numpy as np
>>> from PIL import Image
>>> mask = np.zeros((64, 64, 3), np.uint8)
>>> mask[10:30, 20:40] = 255
>>> buffer = io.BytesIO()
>>> Image.fromarray(mask).save(buffer, format="PNG")
>>> decoded = decode_png(buffer.getvalue())
>>> decoded.shape, bool((decoded == mask).all())
((64, 64, 3), True)
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

try:  # zlib-ng: the same streams, inflated 10-30x faster on run-length-like data
    from zlib_ng import zlib_ng as _inflater
except ImportError:  # pragma: no cover - zlib-ng is a dependency; zlib gives the same bytes
    _inflater = zlib

__all__ = ["decode_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 6: 4}  # grey, RGB, RGBA (8 bits per sample)
_NONE, _SUB, _UP, _AVERAGE, _PAETH = range(5)


def decode_png(data: bytes, grey_rgb_as_plane: bool = False) -> np.ndarray | None:
    """The pixels of an 8-bit grey, RGB or RGBA PNG, exactly as PIL decodes them; else None.

    Parameters
    ----------
    data : bytes
        The whole file.
    grey_rgb_as_plane : bool, default False
        For an RGB file whose three channels are equal byte for byte (a grey mask saved as RGB,
        as most annotation tools do), return the one plane, shape (H, W): it is every channel,
        so also their bitwise OR or maximum. Only one third of the bytes is then unfiltered.

    Returns
    -------
    ndarray of uint8, shape (H, W) or (H, W, C), or None
        None for anything not handled here or not decoded with certainty (use PIL then).
    """
    header = _header_and_pixels(data)
    if header is None:
        return None
    (width, height, channels), compressed = header
    stride = width * channels
    raw = _inflate(compressed)
    if raw is None:
        return None
    if len(raw) != height * (stride + 1):
        return None
    rows = np.frombuffer(raw, np.uint8).reshape(height, stride + 1)
    kinds, filtered = rows[:, 0], rows[:, 1:]
    if grey_rgb_as_plane and channels == 3:
        # Each channel is filtered on its own bytes (the left neighbour is a pixel back), so
        # channels equal before unfiltering are equal after it.
        plane = _equal_channels(filtered.reshape(height, width, 3))
        if plane is not None:
            filtered, channels = plane, 1
    pixels = _unfilter(kinds, filtered, channels)
    if pixels is None:
        return None
    return pixels.reshape(height, width) if channels == 1 else pixels.reshape(height, width, channels)


def _inflate(compressed: bytes) -> bytes | None:
    """The whole zlib stream inflated, or None if it is broken or truncated.

    (A bufsize hint makes zlib-ng 3-8x slower here.) zlib-ng raises its own error class, not
    ``zlib.error``: catching the inflater's own keeps a garbled file from escaping as a traceback.
    """
    try:
        return _inflater.decompress(compressed)
    except _inflater.error:
        return None


def _equal_channels(filtered: np.ndarray) -> np.ndarray | None:
    """The first channel of (H, W, C) bytes as a contiguous (H, W) array if every channel
    equals it, else None."""
    plane = np.ascontiguousarray(filtered[..., 0])
    for channel in range(1, filtered.shape[-1]):
        if not np.array_equal(filtered[..., channel], plane):
            return None
    return plane


def _header_and_pixels(data: bytes) -> tuple[tuple[int, int, int], bytes] | None:
    """(width, height, channels) and the joined IDAT data, or None if not handled here."""
    if not data.startswith(_SIGNATURE) or len(data) < 33:
        return None
    position, size, idat, header = 8, len(data), [], None
    while position + 12 <= size:
        (length,) = struct.unpack_from(">I", data, position)
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if len(body) != length:
            return None
        if kind == b"IHDR":
            (crc,) = struct.unpack_from(">I", data, position + 8 + length)
            if length != 13 or zlib.crc32(kind + body) != crc:
                return None
            width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in _CHANNELS or compression or filtering or interlace:
                return None
            header = (width, height, _CHANNELS[colour])
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        position += 12 + length
    if header is None or not idat or min(header[:2]) == 0:
        return None
    return header, b"".join(idat)


def _unfilter(kinds: np.ndarray, filtered: np.ndarray, bpp: int) -> np.ndarray | None:
    """The unfiltered rows (H, stride), or None (an Average row, a bad filter, a wrong guess)."""
    if kinds.max() > _PAETH or (kinds == _AVERAGE).any():
        return None
    kinds = kinds.copy()
    # Above the first row is a row of zeros: Up there is None, Paeth is Sub.
    kinds[0] = {_UP: _NONE, _PAETH: _SUB}.get(int(kinds[0]), int(kinds[0]))
    height, stride = filtered.shape
    out = filtered.copy()  # None rows are done; the others are unfiltered in place
    sub = np.flatnonzero(kinds == _SUB)
    if sub.size:
        # Channel-major copy: the running sums go along the last axis (numpy's fast loop).
        planes = np.ascontiguousarray(filtered[sub].reshape(sub.size, -1, bpp).transpose(0, 2, 1))
        sums = planes.cumsum(axis=2, dtype=np.uint8)  # integer sums wrap: modulo 256
        out[sub] = sums.transpose(0, 2, 1).reshape(sub.size, stride)
    # Up and Paeth rows need the row above: they hang in chains below a None or Sub row. A
    # row's level is the number of Paeth rows in its chain down to it: level by level, the
    # Paeth rows of the level are unfiltered at once (their rows above are done), then its Up
    # rows one by one in row order (an in-place add per row costs ~1 us; numpy's running sums
    # down the columns cost 10x a row loop).
    is_paeth = kinds == _PAETH
    paeth_so_far = np.cumsum(is_paeth)
    chain_top = np.maximum.accumulate(np.where(is_paeth | (kinds == _UP), 0, np.arange(height)))
    level = paeth_so_far - paeth_so_far[chain_top]
    up = np.flatnonzero(kinds == _UP)
    by_level = np.argsort(level[up], kind="stable")
    up_rows = up[by_level].tolist()
    up_bounds = np.searchsorted(level[up][by_level], np.arange(int(level.max()) + 2)).tolist()
    paeth = np.flatnonzero(is_paeth)
    for current in range(int(level.max()) + 1):
        if current and not _paeth_rows(filtered, out, paeth[level[paeth] == current], bpp):
            return None
        for row in up_rows[up_bounds[current] : up_bounds[current + 1]]:
            np.add(out[row], out[row - 1], out=out[row])
    return out


def _paeth_rows(filtered: np.ndarray, out: np.ndarray, rows: np.ndarray, bpp: int) -> bool:
    """Unfilter Paeth `rows` into `out` (the rows above are done), guessing the predictor b
    wherever b != c; False if a guess was wrong (the exact predictor, from the decoded left
    neighbour, differs there)."""
    n, stride = rows.size, out.shape[1]

    def channel_major(array: np.ndarray) -> np.ndarray:  # (n, bpp, width), contiguous
        return np.ascontiguousarray(array.reshape(n, -1, bpp).transpose(0, 2, 1))

    b = channel_major(out[rows - 1])
    c = np.zeros_like(b)
    c[..., 1:] = b[..., :-1]
    # First pixel: a = c = 0, so the predictor is b; elsewhere b == c gives a (a running sum).
    reset = b != c
    reset[..., 0] = True
    values = channel_major(filtered[rows]) + np.where(reset, b, 0)
    # Running sums restarted at each reset: in int32 (at most 255 x width) they never decrease,
    # so the sum before the last reset is a running maximum. The low byte is the sum mod 256.
    total = values.cumsum(axis=2, dtype=np.int32)
    carried = np.maximum.accumulate(np.where(reset, total - values, 0), axis=2)
    decoded = (total - carried).astype(np.uint8)
    # Check the guesses: the exact predictor at the resets (a = the decoded byte to the left).
    row, channel, pixel = np.nonzero(reset[..., 1:])
    a = decoded[row, channel, pixel].astype(np.int16)
    b_at = b[row, channel, pixel + 1].astype(np.int16)
    c_at = c[row, channel, pixel + 1].astype(np.int16)
    p = a + b_at - c_at
    pa, pb, pc = np.abs(p - a), np.abs(p - b_at), np.abs(p - c_at)
    exact = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b_at, c_at))
    if not np.array_equal(exact, b_at):
        return False
    out[rows] = decoded.transpose(0, 2, 1).reshape(n, stride)
    return True
