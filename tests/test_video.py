"""Video tracks: keyframes interpolated to per-frame boxes, and per-frame YOLO / COCO / MOT output."""
from __future__ import annotations

import csv
import json

import pytest

from datalabel import export, labelconfig, video
from datalabel.errors import LabError
from datalabel.tasks import Region, Task

# A track: moves right from frame 1 to 5, keeps moving to frame 7 where it is switched off (enabled: false),
# reappears at frame 10 and is held there until the video ends (12 frames).
SEQUENCE = [
    {"frame": 1, "enabled": True, "x": 10, "y": 10, "width": 20, "height": 20, "rotation": 0, "time": 0.04},
    {"frame": 5, "enabled": True, "x": 50, "y": 30, "width": 20, "height": 20, "rotation": 0, "time": 0.2},
    {"frame": 7, "enabled": False, "x": 60, "y": 30, "width": 30, "height": 20, "rotation": 0, "time": 0.28},
    {"frame": 10, "enabled": True, "x": 0, "y": 0, "width": 10, "height": 10, "rotation": 0, "time": 0.4},
]

# worked out by hand: linear steps of (50-10)/4 = 10 in x and (30-10)/4 = 5 in y, then (60-50)/2 = 5 in x and
# (30-20)/2 = 5 in width; nothing on frames 8-9; frame 10's box held on 11 and 12.
EXPECTED = {
    1: (10, 10, 20, 20), 2: (20, 15, 20, 20), 3: (30, 20, 20, 20), 4: (40, 25, 20, 20), 5: (50, 30, 20, 20),
    6: (55, 30, 25, 20), 7: (60, 30, 30, 20),
    10: (0, 0, 10, 10), 11: (0, 0, 10, 10), 12: (0, 0, 10, 10),
}


def _boxes(frames):
    return {f.frame: (f.x, f.y, f.width, f.height) for f in frames}


def test_keyframes_interpolate_to_hand_computed_frames():
    got = _boxes(video.interpolate(SEQUENCE, frames_count=12))
    assert got.keys() == EXPECTED.keys()
    for frame, box in EXPECTED.items():
        assert got[frame] == pytest.approx(box), frame


def test_keyframe_order_does_not_matter_and_without_frame_count_the_last_key_is_one_frame():
    got = _boxes(video.interpolate(list(reversed(SEQUENCE))))
    assert sorted(got) == [1, 2, 3, 4, 5, 6, 7, 10]


def test_matches_label_studio_sdk_keyframe_expansion():
    from label_studio_sdk._extensions.label_studio_tools.postprocessing.video import extract_key_frames

    result = {"type": "videorectangle", "value": {"sequence": SEQUENCE, "framesCount": 12, "labels": ["car"]}}
    sdk = {k["frame"]: (k["x"], k["y"], k["width"], k["height"]) for k in extract_key_frames([result])[0]["value"]["sequence"]}
    ours = _boxes(video.region_frames(Region.from_json(result)))
    assert ours.keys() == sdk.keys()
    for frame in ours:
        assert ours[frame] == pytest.approx(sdk[frame])


def _video_task(frames_count=12):
    config = labelconfig.parse_config(labelconfig.build_config("video-tracking", ["car", "person"]))
    task = Task.from_json({"id": 7, "data": {"video": "gs://b/videos/street.mp4"}, "annotations": [{
        "id": 70, "result": [
            {"id": "trackA", "type": "videorectangle", "from_name": "box", "to_name": "video",
             "value": {"sequence": SEQUENCE, "framesCount": frames_count, "labels": ["person"]}},
            {"id": "trackB", "type": "videorectangle", "from_name": "box", "to_name": "video",
             "value": {"sequence": [{"frame": 2, "enabled": True, "x": 40, "y": 40, "width": 10, "height": 10,
                                     "rotation": 0}, {"frame": 3, "enabled": False, "x": 42, "y": 40,
                                                      "width": 10, "height": 10, "rotation": 0}],
                       "framesCount": frames_count, "labels": ["car"]}},
        ]}]})
    return config, task


def test_video_to_per_frame_yolo(tmp_path):
    config, task = _video_task()
    report = export.convert([task], tmp_path / "yolo", "yolo", config, None)
    labels = tmp_path / "yolo" / "labels"
    assert sorted(p.name for p in labels.iterdir()) == [f"street_{f:06d}.txt" for f in sorted(EXPECTED)]
    assert report["video_frames"] == len(EXPECTED)
    # frame 2: the person box (20,15,20,20)% -> centre (0.30, 0.25), and the car box (40,40,10,10)%
    lines = (labels / "street_000002.txt").read_text().splitlines()
    assert "1 0.300000 0.250000 0.200000 0.200000" in lines
    assert "0 0.450000 0.450000 0.100000 0.100000" in lines
    assert (labels / "street_000008.txt").exists() is False


def test_video_to_per_frame_coco_and_mot_need_the_frame_size(tmp_path):
    config, task = _video_task()
    with pytest.raises(LabError, match="frame size"):
        export.convert([task], tmp_path / "mot", "mot", config, None)
    assert not (tmp_path / "mot").exists()

    export.convert([task], tmp_path / "coco", "coco", config, None, frame_size=(200, 100))
    coco = json.loads((tmp_path / "coco" / "result.json").read_text())
    frame6 = next(i for i in coco["images"] if i["frame"] == 6)
    assert frame6["file_name"] == "street_000006.jpg" and (frame6["width"], frame6["height"]) == (200, 100)
    (box,) = [a for a in coco["annotations"] if a["image_id"] == frame6["id"]]
    assert box["bbox"] == pytest.approx([110, 30, 50, 20])  # (55,30,25,20)% of 200x100
    assert box["category_id"] == 2 and box["track_id"] == "trackA"

    export.convert([task], tmp_path / "mot", "mot", config, None, frame_size=(200, 100))
    rows = list(csv.reader(open(tmp_path / "mot" / "mot" / "street.txt")))
    person = [r for r in rows if r[1] == "1"]
    assert [int(r[0]) for r in person] == sorted(EXPECTED)
    assert [float(v) for v in person[1][2:6]] == pytest.approx([40, 15, 40, 20])  # frame 2 in pixels
    assert person[1][7] == "1"  # class index of "person" in the config


def test_videos_with_one_stem_get_their_own_mot_files_and_frames(tmp_path):
    config, _ = _video_task()
    raw = [{"id": i, "data": {"video": f"gs://b/{path}"}, "annotations": [{"id": i, "result": [
        {"id": "t", "type": "videorectangle", "from_name": "box", "to_name": "video",
         "value": {"sequence": SEQUENCE[:2], "framesCount": 5, "labels": ["car"]}}]}]}
           for i, path in ((1, "a/street.mp4"), (2, "b/street.mp4"), (3, "a/street.avi"))]
    batch = [Task.from_json(t) for t in raw]
    export.convert(batch, tmp_path / "mot", "mot", config, None, frame_size=(100, 100))
    assert sorted(p.name for p in (tmp_path / "mot" / "mot").iterdir()) == [
        "street.txt", "street_2.txt", "street_3.txt"]
    rows = list(csv.reader(open(tmp_path / "mot" / "tracks.csv")))[1:]
    assert [(r[0], r[4]) for r in rows] == [("street", "1"), ("street_2", "2"), ("street_3", "3")]
    export.convert(batch, tmp_path / "yolo", "yolo", config, None)
    assert len(list((tmp_path / "yolo" / "labels").iterdir())) == 3 * 5  # 5 frames each, none shared


def test_rotated_video_boxes_rotate_in_pixels_of_the_frame(tmp_path):
    config = labelconfig.parse_config(labelconfig.build_config("video-tracking", ["car"]))
    key = {"frame": 1, "enabled": False, "x": 10, "y": 20, "width": 30, "height": 40, "rotation": 90}
    task = Task.from_json({"id": 1, "data": {"video": "gs://b/v.mp4"}, "annotations": [{"id": 1, "result": [
        {"id": "t", "type": "videorectangle", "from_name": "box", "to_name": "video",
         "value": {"sequence": [key], "framesCount": 1, "labels": ["car"]}}]}]})
    export.convert([task], tmp_path / "mot", "mot", config, None, frame_size=(200, 100))
    row = next(csv.reader(open(tmp_path / "mot" / "mot" / "v.txt")))
    # 200x100 frame, (10,20,30,40)% rotated 90: pixel corners (20,20) (20,80) (-20,80) (-20,20)
    assert [float(v) for v in row[2:6]] == pytest.approx([-20, 20, 40, 60])


# --- video to images: the frames that carry labels, decoded from the video ----------------------------------------


def make_video(path, frames=10, width=64, height=48):
    """An MPEG-4 video whose frame n (1-based) is a flat gray of level 20 n."""
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for n in range(1, frames + 1):
            image = np.full((height, width, 3), 20 * n, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


class LocalFiles:
    """An ImageSource that copies local files (stands in for the bucket)."""

    def __init__(self, files):
        self.files = files

    def fetch(self, jobs, progress=None):
        for url, dest in jobs:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(self.files[url].read_bytes())


def gray_level(path):
    from PIL import Image

    with Image.open(path) as img:
        return sum(img.convert("L").getdata()) / (img.width * img.height)


def track(frames_count=10):
    # frames 2..4 interpolated, the track ends at the disabled keyframe 4; a second track only on frame 7
    return [{"id": "a", "type": "videorectangle", "from_name": "box", "to_name": "video", "value": {
                "labels": ["car"], "framesCount": frames_count, "sequence": [
                    {"frame": 2, "enabled": True, "x": 10, "y": 10, "width": 20, "height": 20, "rotation": 0},
                    {"frame": 4, "enabled": False, "x": 30, "y": 10, "width": 20, "height": 20, "rotation": 0}]}},
            {"id": "b", "type": "videorectangle", "from_name": "box", "to_name": "video", "value": {
                "labels": ["person"], "framesCount": frames_count, "sequence": [
                    {"frame": 7, "enabled": False, "x": 50, "y": 50, "width": 10, "height": 10, "rotation": 0}]}}]


@pytest.mark.parametrize("fmt,folder", [("yolo", "images"), ("coco", "images"), ("voc", "JPEGImages")])
def test_video_frames_that_carry_labels_become_images(tmp_path, fmt, folder):
    config, _ = _video_task()
    video = make_video(tmp_path / "clip.mp4")
    task = Task.from_json({"id": 1, "data": {"video": "gs://b/clip.mp4"},
                           "annotations": [{"id": 1, "result": track()}]})
    report = export.convert([task], tmp_path / fmt, fmt, config, LocalFiles({"gs://b/clip.mp4": video}))
    frames = sorted(p.name for p in (tmp_path / fmt / folder).iterdir())
    assert frames == ["clip_000002.jpg", "clip_000003.jpg", "clip_000004.jpg", "clip_000007.jpg"]
    for name in frames:  # frame n is the n-th decoded frame (gray 20 n), at the video's size
        n = int(name[5:11])
        assert abs(gray_level(tmp_path / fmt / folder / name) - 20 * n) < 4, name
    assert report["video_frames"] == 4
    if fmt == "coco":  # the frame size came from the video: no --frame-size needed
        coco = json.loads((tmp_path / fmt / "result.json").read_text())
        assert {(i["width"], i["height"]) for i in coco["images"]} == {(64, 48)}
        assert sorted(i["file_name"] for i in coco["images"]) == frames and len(coco["annotations"]) == 4
    if fmt == "yolo":
        assert sorted(p.stem for p in (tmp_path / fmt / "labels").iterdir()) == [f[:-4] for f in frames]


def test_all_frames_and_labels_past_the_end_of_the_video(tmp_path):
    config, _ = _video_task()
    video = make_video(tmp_path / "clip.mp4", frames=5)  # the track on frame 7 is past its end
    task = Task.from_json({"id": 1, "data": {"video": "gs://b/clip.mp4"},
                           "annotations": [{"id": 1, "result": track(frames_count=5)}]})
    source = LocalFiles({"gs://b/clip.mp4": video})
    report = export.convert([task], tmp_path / "yolo", "yolo", config, source, all_frames=True)
    assert sorted(p.name for p in (tmp_path / "yolo" / "images").iterdir()) == [
        f"clip_{n:06d}.jpg" for n in range(1, 6)]
    labels = tmp_path / "yolo" / "labels"
    assert sorted(p.name for p in labels.iterdir()) == [f"clip_{n:06d}.txt" for n in range(1, 6)]
    assert (labels / "clip_000001.txt").read_text() == "" and (labels / "clip_000003.txt").read_text() != ""
    assert report["labeled_frames_past_video_end"] == 1 and report["video_frames"] == 5


def test_a_video_that_does_not_decode_is_one_error_and_nothing_written(tmp_path):
    config, _ = _video_task()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    task = Task.from_json({"id": 1, "data": {"video": "gs://b/bad.mp4"}, "annotations": [{"id": 1, "result": track()}]})
    with pytest.raises(LabError, match="cannot decode video bad.mp4"):
        export.convert([task], tmp_path / "yolo", "yolo", config, LocalFiles({"gs://b/bad.mp4": bad}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4"]
