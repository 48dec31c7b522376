"""MOT: video tracks as per-video CSV files."""
from __future__ import annotations

import csv

from ..errors import ConfigError
from .base import Writer
from .objects import Item, file_stem, frame_objects, is_video


class MotWriter(Writer):
    """Per-video MOT-style CSV: mot/<video stem>.txt with `frame,track,left,top,width,height,conf,class,visibility`.

    Frames are 1-based, boxes in pixels of the frame size (from --frame-size or the regions), class is the 0-based
    config index (classes.txt), track is a number per track (tracks.csv maps it to Label Studio's region id).
    """

    name = "mot"
    expresses = frozenset({"VideoRectangle"})
    what = "video tracks (VideoRectangle)"
    needs_size = True
    images_in = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        (self.root / "mot").mkdir(exist_ok=True)
        self.tracks_fp = open(self.root / "tracks.csv", "w", encoding="utf-8", newline="")
        self.tracks = csv.writer(self.tracks_fp)
        self.tracks.writerow(["video", "track", "region_id", "label", "task_id"])

    def write(self, item: Item) -> None:
        if not is_video(item):
            return
        width, height = self.video_size(item)
        if not width or not height:
            raise ConfigError(f"task {item.task.id}: the video frame size is unknown; pass the frame size "
                           "(e.g. --frame-size 1920x1080) to export pixel boxes")
        self.items += 1
        stem = file_stem(item.name)
        numbers: dict[str, int] = {}
        with open(self.root / "mot" / f"{stem}.txt", "w", encoding="utf-8", newline="") as fp:
            out = csv.writer(fp)
            for frame, objs in frame_objects(item.annotation, width, height).items():
                self.frames += 1
                for obj in objs:
                    if obj.track not in numbers:
                        numbers[obj.track] = len(numbers) + 1
                        self.tracks.writerow([stem, numbers[obj.track], obj.track, obj.label, item.task.id])
                    cls = self.class_id(obj.label)
                    if obj.box is None:
                        self.no_size += 1
                        continue
                    x, y, w, h = obj.box
                    out.writerow([frame, numbers[obj.track], round(x * width / 100, 2), round(y * height / 100, 2),
                                  round(w * width / 100, 2), round(h * height / 100, 2), 1, cls, 1])

    def finish(self) -> dict:
        self.tracks_fp.close()
        (self.root / "classes.txt").write_text("".join(c + "\n" for c in self.classes), encoding="utf-8")
        return {"dir": "mot"}
