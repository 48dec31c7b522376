"""Video tracks: Label Studio `videorectangle` keyframes turned into one box per frame.

Label Studio stores a track as a sorted list of keyframes (`value.sequence`), each with `frame` (1-based),
`enabled`, and x/y/width/height/rotation in percent of the frame. The editor shows:
- between an enabled keyframe and the next keyframe: boxes interpolated linearly, frame by frame;
- a keyframe with `enabled: false`: the box on that frame only; the track is hidden until the next keyframe;
- after the last keyframe, if it is enabled: the same box held until the video's last frame (`framesCount`).
`frames()` reproduces exactly that, so exported per-frame boxes match what the annotator saw.

`extract_frames` turns the video into the image files those per-frame labels belong to: frame n is the n-th
decoded frame, as the editor numbers them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from .errors import LabError, require
from .tasks import Region

GEOMETRY = ("x", "y", "width", "height", "rotation")


@dataclass(slots=True)
class FrameBox:
    frame: int  # 1-based, as Label Studio counts
    x: float  # percent of the frame width, top-left corner
    y: float
    width: float
    height: float
    rotation: float = 0.0
    keyframe: bool = False


def _box(key: dict, frame: int, keyframe: bool) -> FrameBox:
    return FrameBox(frame, *(float(key.get(name) or 0.0) for name in GEOMETRY), keyframe=keyframe)


def interpolate(sequence: list[dict], frames_count: int | None = None) -> Iterator[FrameBox]:
    """Per-frame boxes of one track, in frame order."""
    keys = sorted((k for k in sequence if k.get("frame") is not None), key=lambda k: int(k["frame"]))
    for i, key in enumerate(keys):
        start = int(key["frame"])
        nxt = keys[i + 1] if i + 1 < len(keys) else None
        yield _box(key, start, True)
        if not key.get("enabled", True):
            continue  # a disabled keyframe ends this segment of the track
        if nxt is None:
            # the last enabled keyframe holds until the end of the video
            for frame in range(start + 1, (frames_count or start) + 1):
                yield _box(key, frame, False)
            continue
        end = int(nxt["frame"])
        span = end - start
        for frame in range(start + 1, end):
            t = (frame - start) / span
            values = {n: float(key.get(n) or 0.0) + (float(nxt.get(n) or 0.0) - float(key.get(n) or 0.0)) * t
                      for n in GEOMETRY}
            yield FrameBox(frame, **values)


def region_frames(region: Region) -> Iterator[FrameBox]:
    """Per-frame boxes of a `videorectangle` region (nothing for other region types)."""
    if region.type != "videorectangle":
        return iter(())
    value = region.value
    return interpolate(value.get("sequence") or [], value.get("framesCount"))


def extract_frames(path: Path, wanted: set[int] | None, dest: Callable[[int], Path]) -> tuple[set[int], int, int]:
    """Decode the video at `path` and write the frames numbered in `wanted` (1-based, as Label Studio counts;
    None: every frame) as JPEG files at dest(frame). Returns the frames written and the frame size. Decoding
    stops after the last wanted frame. PyAV (FFmpeg's libraries, shipped in its wheel; the `video` extra) decodes."""
    av = require("av", "video", "cutting a video into frames")

    written: set[int] = set()
    last = max(wanted) if wanted else None
    if wanted is not None and not wanted:
        last = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise LabError(f"{path.name} has no video stream; check the task's video file")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            width, height = stream.codec_context.width, stream.codec_context.height
            if last != 0:
                for n, frame in enumerate(container.decode(stream), start=1):
                    if last is not None and n > last:
                        break
                    if wanted is None or n in wanted:
                        out = dest(n)
                        part = out.with_name(f".{out.name}.part")
                        frame.to_image().save(part, "JPEG", quality=95)
                        os.replace(part, out)
                        written.add(n)
    except av.FFmpegError as exc:
        raise LabError(f"cannot decode video {path.name}: {exc}; check the file, or export with --no-images") from None
    return written, width, height
