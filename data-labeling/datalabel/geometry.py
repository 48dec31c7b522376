"""Label Studio region geometry in percent of the image, turned into shapes the training formats take.

Label Studio stores a rectangle as x, y, width, height in percent of the image (x and width of its width, y and
height of its height) and `rotation` in degrees, clockwise on screen (y down), about the top-left corner. The
editor rotates in pixels: on an image that is not square, rotating the percent values (as
label_studio_sdk.converter does) gives a different, sheared shape. Here the corners are computed in pixels and
converted back to percent, so they are what the annotator saw.
"""
from __future__ import annotations

import math

Point = tuple[float, float]


def rect_corners(x: float, y: float, w: float, h: float, rotation: float, width: float, height: float
                 ) -> list[Point]:
    """The four corners (percent) of a rectangle rotated in pixel space: top-left, top-right, bottom-right,
    bottom-left before rotation. Only the image's aspect ratio matters."""
    r = math.radians(rotation)
    c, s = math.cos(r), math.sin(r)
    aspect = width / height  # pixels of width per pixel of height, for one percent each
    # the width edge turns (w cos, w sin) in pixels; its y part in percent of the height is w sin * aspect
    wx, wy = w * c, w * s * aspect
    hx, hy = -h * s / aspect, h * c
    return [(x, y), (x + wx, y + wy), (x + wx + hx, y + wy + hy), (x + hx, y + hy)]


def bounds(points: list[Point]) -> tuple[float, float, float, float]:
    """x, y, w, h of the axis-aligned box around points."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def rect_value(value: dict) -> tuple[float, float, float, float, float] | None:
    """x, y, width, height (percent) and rotation (degrees) of a Label Studio rectangle value; None if malformed."""
    try:
        return (float(value["x"]), float(value["y"]), float(value["width"]), float(value["height"]),
                float(value.get("rotation") or 0.0))
    except (KeyError, TypeError, ValueError):
        return None


def rect_box(value: dict, width: float | None = None, height: float | None = None
             ) -> tuple[float, float, float, float] | None:
    """Axis-aligned x, y, w, h (percent) of a possibly rotated Label Studio rectangle; None if the value is not a
    rectangle, or it is rotated and the image size (needed to rotate in pixels) is unknown."""
    parsed = rect_value(value)
    if parsed is None:
        return None
    x, y, w, h, r = parsed
    if r % 360 == 0:
        return x, y, w, h
    if not width or not height:
        return None
    return bounds(rect_corners(x, y, w, h, r, width, height))


def polygon_area(points: list[Point]) -> float:
    """Shoelace area of a simple polygon (any units)."""
    n = len(points)
    return 0.5 * abs(sum(points[i][0] * points[i - 1][1] - points[i - 1][0] * points[i][1] for i in range(n)))


ELLIPSE_VERTICES = 32


def ellipse_points(x: float, y: float, rx: float, ry: float, rotation: float, width: float | None,
                   height: float | None, n: int = ELLIPSE_VERTICES) -> list[Point] | None:
    """A polygon of n vertices (percent) on a Label Studio ellipse: centre x, y and radii rx (percent of the image
    width), ry (of its height), rotated clockwise about the centre, in pixels like rectangles. None if it is
    rotated and the image size is unknown (an unrotated ellipse scales with the image: no size needed)."""
    r = math.radians(rotation)
    if r % (2 * math.pi) == 0:
        return [(x + rx * math.cos(t), y + ry * math.sin(t)) for t in (2 * math.pi * k / n for k in range(n))]
    if not width or not height:
        return None
    aspect = width / height
    c, s = math.cos(r), math.sin(r)
    points = []
    for k in range(n):
        t = 2 * math.pi * k / n
        dx, dy = rx * math.cos(t), ry * math.sin(t) / aspect  # both in percent of the width, i.e. in pixels
        points.append((x + dx * c - dy * s, y + (dx * s + dy * c) * aspect))
    return points


def mask_bounds(mask) -> tuple[float, float, float, float] | None:
    """x, y, w, h (percent) of the pixels set in a 2-D mask; None if it is empty."""
    import numpy as np

    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    h, w = mask.shape
    return (cols[0] * 100 / w, rows[0] * 100 / h, (cols[-1] + 1 - cols[0]) * 100 / w,
            (rows[-1] + 1 - rows[0]) * 100 / h)


def coco_rle(mask) -> dict:
    """COCO's uncompressed RLE of a 2-D mask (pycocotools reads it): runs over the column-major pixels, starting
    with a run of zeros."""
    import numpy as np

    flat = np.asarray(mask, dtype=np.uint8).ravel(order="F")
    edges = np.concatenate(([0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]))
    counts = np.diff(edges).tolist()
    if flat.size and flat[0]:
        counts.insert(0, 0)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def decode_brush_rle(rle: list[int]):
    """Label Studio's brush RLE -> the flat uint8 values it encodes (RGBA pixels, row by row).

    The format (label_studio_sdk.converter.brush.decode_rle reads it the same way): a bit stream with a 32-bit
    value count, a 5-bit word size - 1, four 4-bit run-length sizes - 1, then runs: 1 bit "repeat", 2 bits picking
    a run-length size, the run length - 1, then one word repeated or that many literal words. The SDK builds a
    Python string of the stream one bit at a time; here it is made in one numpy step and read per run.
    """
    import numpy as np

    data = np.asarray(rle, dtype=np.int64)
    if data.size and (data.min() < 0 or data.max() > 255):
        raise ValueError("the RLE holds values outside 0..255")
    bits = (np.unpackbits(data.astype(np.uint8)) + 48).tobytes().decode("ascii")
    pos = 0

    def read(n: int) -> int:
        nonlocal pos
        if pos + n > len(bits):
            raise ValueError("the RLE ends early")
        value = int(bits[pos:pos + n], 2)
        pos += n
        return value

    num = read(32)
    word = read(5) + 1
    sizes = [read(4) + 1 for _ in range(4)]
    out = np.zeros(num, dtype=np.uint8)
    i = 0
    while i < num:
        repeat = read(1)
        j = min(num, i + 1 + read(sizes[read(2)]))
        if repeat:
            out[i:j] = read(word)
        else:
            out[i:j] = [read(word) for _ in range(j - i)]
        i = j
    return out


def brush_mask(rle: list[int], width: int, height: int):
    """A Label Studio brush region's RLE (its own format, RGBA pixels) -> a 2-D bool mask: a pixel is in the region
    where the alpha channel is set, as label_studio_sdk.converter.brush reads it."""
    pixels = decode_brush_rle(rle)
    if pixels.size != width * height * 4:
        raise ValueError(f"the brush RLE holds {pixels.size // 4} pixels, not {width}x{height}")
    return pixels.reshape(height, width, 4)[:, :, 3] > 0
