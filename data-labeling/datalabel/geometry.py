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


def rect_box(value: dict, width: float | None = None, height: float | None = None
             ) -> tuple[float, float, float, float] | None:
    """Axis-aligned x, y, w, h (percent) of a possibly rotated Label Studio rectangle; None if the value is not a
    rectangle, or it is rotated and the image size (needed to rotate in pixels) is unknown."""
    try:
        x, y, w, h = float(value["x"]), float(value["y"]), float(value["width"]), float(value["height"])
        r = float(value.get("rotation") or 0.0)
    except (KeyError, TypeError, ValueError):
        return None
    if r % 360 == 0:
        return x, y, w, h
    if not width or not height:
        return None
    return bounds(rect_corners(x, y, w, h, r, width, height))


def polygon_area(points: list[Point]) -> float:
    """Shoelace area of a simple polygon (any units)."""
    n = len(points)
    return 0.5 * abs(sum(points[i][0] * points[i - 1][1] - points[i - 1][0] * points[i][1] for i in range(n)))
