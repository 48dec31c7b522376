"""Converting an export file on every core (datalabel.parallel): the output is the one-process output, byte for
byte, whatever the file's layout; a file that cannot be cut falls back to one process; failures leave nothing.

Offline conversions of export files (no server needed); test_export.py converts a real Label Studio export."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from datalabel import export, formats, labelconfig
from datalabel.export import parallel
from datalabel.errors import LabError

LABELS = ["car", "person", "dog"]
CONFIG = labelconfig.parse_config(labelconfig.build_config("object-detection", LABELS))
N = 3000


@pytest.fixture(autouse=True)
def small_ranges(monkeypatch):
    """Files of a few MB cut into many ranges, so every test crosses range boundaries many times."""
    monkeypatch.setattr(parallel, "MIN_FILE_BYTES", 0)
    monkeypatch.setattr(parallel, "MIN_RANGE_BYTES", 1024)
    monkeypatch.setattr(parallel, "RANGE_BYTES", 16 << 10)


def rect(label, x, y, w, h, rotation=0):
    return {"type": "rectanglelabels", "from_name": "label", "to_name": "image", "original_width": 640,
            "original_height": 480, "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation,
                                              "rectanglelabels": [label]}}


def ann(aid, result, when="2026-11-01T10:00:00Z", **extra):
    return {"id": aid, "completed_by": aid % 3, "result": result, "was_cancelled": False, "ground_truth": False,
            "created_at": when, "updated_at": when, **extra}


def make_tasks(n: int = N) -> list[dict]:
    """Everything that has to agree across ranges: repeated image names, labels missing from the config that first
    appear mid-file, several annotations per task, skipped and unlabeled tasks, an id beyond 64 bits."""
    tasks = []
    for i in range(n):
        label = LABELS[i % 3]
        if i >= n // 2 and i % 9 == 0:
            label = "truck"  # not in the config: gets id 3 where it first appears
        if i >= 3 * n // 4 and i % 10 == 0:
            label = "bus"
        folder = "a" if i % 2 else "b"
        name = "same.png" if i % 40 == 0 else f"img_{i:05d}.png"
        result = [rect(label, (i * 7) % 90, (i * 3) % 80, 5 + i % 9, 4 + i % 7, rotation=30 if i % 17 == 0 else 0)]
        if i % 5 == 0:
            result.append({"type": "polygonlabels", "from_name": "label", "to_name": "image",
                           "original_width": 640, "original_height": 480,
                           "value": {"points": [[10, 10], [30, 12], [20, 40]], "polygonlabels": ["dog"]}})
        annotations = [ann(i * 10 + 1, result)]
        if i % 7 == 0:  # an older second opinion: the latest wins, majority ties go to the latest
            annotations.insert(0, ann(i * 10, [rect("person", 1, 1, 2, 2)], when="2026-10-01T10:00:00Z"))
        if i % 11 == 0:
            annotations = [ann(i * 10 + 2, result, was_cancelled=True)]
        if i % 13 == 0:
            annotations = []
        tasks.append({"id": i + 1, "annotations": annotations, "predictions": [],
                      "data": {"image": f"gs://bucket/{folder}/{name}"}, "meta": {}, "project": 1})
    tasks[n // 3]["id"] = 2 ** 70 + 5  # orjson would read it as a float: that range must be read exactly
    return tasks


def write(path: Path, tasks: list[dict], compact: bool) -> Path:
    if compact:  # Label Studio's API exports: no whitespace, nested annotations look like `},{"id":`
        path.write_text(json.dumps(tasks, separators=(",", ":")))
    else:
        path.write_text(json.dumps(tasks, indent=2))
    return path


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["coco", "yolo"])
@pytest.mark.parametrize("compact", [False, True], ids=["indented", "compact"])
def test_output_is_the_one_process_output(tmp_path, fmt, compact):
    src = write(tmp_path / "export.json", make_tasks(), compact)
    assert len(parallel.split(src, 2)) > 50
    done = []
    one = export.convert_file(src, tmp_path / "one", fmt, CONFIG, None, "majority", workers=1,
                              include_unlabeled=True, allow_unknown_labels=True)
    many = export.convert_file(src, tmp_path / "many", fmt, CONFIG, None, "majority", done.append, workers=2,
                               include_unlabeled=True, allow_unknown_labels=True)
    assert (one["workers"], many["workers"]) == (1, 2)
    assert sum(done) == N == many["tasks"]
    assert files(tmp_path / "one") == files(tmp_path / "many")
    assert {k: v for k, v in one.items() if k not in export.RUN_ONLY + ("out_dir",)} == \
        {k: v for k, v in many.items() if k not in export.RUN_ONLY + ("out_dir",)}
    # what had to be decided across ranges was decided as one process would
    assert many["labels_not_in_config"] == ["truck", "bus"]
    assert many["unlabeled_skipped"] == 0 and many["items"] == N  # unlabeled tasks included: empty label files
    if fmt == "coco":
        coco = json.loads((tmp_path / "many" / "result.json").read_text())
        assert [img["id"] for img in coco["images"]] == list(range(1, len(coco["images"]) + 1))
        assert [a["id"] for a in coco["annotations"]] == list(range(1, len(coco["annotations"]) + 1))
        names = [img["file_name"] for img in coco["images"]]
        assert len(set(names)) == len(names) and names.count("same.png") == 1
        assert 2 ** 70 + 5 in {img["task_id"] for img in coco["images"]}
        assert [c["name"] for c in coco["categories"]] == LABELS + ["truck", "bus"]
    else:
        labels = sorted(p.name for p in (tmp_path / "many" / "labels").iterdir())
        assert len(labels) == many["items"] and "same.txt" in labels and "same_41.txt" in labels
        assert (tmp_path / "many" / "classes.txt").read_text().split() == LABELS + ["truck", "bus"]


@pytest.mark.parametrize("compact", [False, True], ids=["indented", "compact"])
def test_ranges_are_runs_of_whole_tasks(tmp_path, compact):
    tasks = make_tasks()
    src = write(tmp_path / "export.json", tasks, compact)
    ranges = parallel.split(src, 2)
    data = src.read_bytes()
    ids = [t["id"] for start, end in ranges for t in json.loads(b"[" + data[start:end] + b"]")]
    assert ids == [t["id"] for t in tasks]
    # between two ranges: the comma that separated two tasks, nothing else
    assert all(data[end:start].strip() == b"," for (_, end), (start, _) in zip(ranges, ranges[1:]))
    assert data[:ranges[0][0]].strip() == b"[" and data[ranges[-1][1]:].strip() == b"]"


def test_a_file_that_cannot_be_cut_is_converted_in_one_process(tmp_path):
    tasks = make_tasks(600)
    for task in tasks:  # nested objects that begin like a task: the cuts land inside tasks
        task["meta"] = {"history": [{"id": k, "annotations": []} for k in range(30)]}
    src = write(tmp_path / "export.json", tasks, compact=True)
    assert parallel.split(src, 2)
    one = export.convert_file(src, tmp_path / "one", "coco", CONFIG, None, allow_unknown_labels=True, workers=1)
    many = export.convert_file(src, tmp_path / "many", "coco", CONFIG, None, allow_unknown_labels=True, workers=2)
    assert many["workers"] == 1
    assert files(tmp_path / "one") == files(tmp_path / "many")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.json", "many", "one"]


def test_ranges_read_without_preadv_give_the_same_output(tmp_path, monkeypatch):
    src = write(tmp_path / "export.json", make_tasks(), compact=False)
    export.convert_file(src, tmp_path / "with", "coco", CONFIG, None, allow_unknown_labels=True, workers=2)
    monkeypatch.delattr(os, "preadv", raising=False)  # as on macOS with Python 3.11
    assert export.convert_file(src, tmp_path / "without", "coco", CONFIG, None, allow_unknown_labels=True, workers=2)["workers"] == 2
    assert files(tmp_path / "with") == files(tmp_path / "without")


def test_invalid_json_is_the_readers_error_and_leaves_nothing(tmp_path):
    src = write(tmp_path / "export.json", make_tasks(), compact=False)
    text = src.read_text()
    src.write_text(text[:len(text) // 2] + "]")
    with pytest.raises(LabError, match="invalid JSON near character"):
        export.convert_file(src, tmp_path / "out", "yolo", CONFIG, None, allow_unknown_labels=True, workers=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.json"]


def test_a_worker_that_dies_is_an_error_and_keeps_the_previous_export(tmp_path, monkeypatch):
    src = write(tmp_path / "export.json", make_tasks(), compact=False)
    export.convert_file(src, tmp_path / "out", "yolo", CONFIG, None, allow_unknown_labels=True, workers=2)
    before = files(tmp_path / "out")
    main = os.getpid()
    write_item = formats.YoloWriter.write

    def dies_in_a_worker(self, item):
        if os.getpid() != main and item.task.id == N // 2:
            os._exit(3)  # as if killed (out of memory)
        write_item(self, item)

    monkeypatch.setattr(formats.YoloWriter, "write", dies_in_a_worker)
    with pytest.raises(LabError, match="conversion worker stopped"):
        export.convert_file(src, tmp_path / "out", "yolo", CONFIG, None, allow_unknown_labels=True, workers=2)
    assert files(tmp_path / "out") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.json", "out"]


def test_a_label_missing_from_the_config_is_an_error_on_every_core(tmp_path):
    src = write(tmp_path / "export.json", make_tasks(), compact=False)
    for workers in (1, 2):
        with pytest.raises(LabError, match="'truck' is in the annotations but not in the label config"):
            export.convert_file(src, tmp_path / "out", "coco", CONFIG, None, workers=workers)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["export.json"]


def test_video_and_image_downloads_use_one_process(tmp_path):
    video = labelconfig.parse_config(labelconfig.build_config("video-tracking", ["car"]))
    src = write(tmp_path / "export.json", [
        {"id": i, "annotations": [ann(i, [{"type": "videorectangle", "from_name": "box", "to_name": "video",
                                            "id": f"t{i}", "value": {"labels": ["car"], "sequence": [
                                                {"frame": 1, "x": 1, "y": 1, "width": 5, "height": 5,
                                                 "enabled": True, "rotation": 0},
                                                {"frame": 3, "x": 3, "y": 1, "width": 5, "height": 5,
                                                 "enabled": False, "rotation": 0}]}}])],
         "data": {"video": f"gs://bucket/v{i}.mp4"}} for i in range(1, 200)], compact=False)
    report = export.convert_file(src, tmp_path / "video", "yolo", video, None, workers=2, frame_size=(100, 100))
    assert report["workers"] == 1 and report["video_frames"] == 3 * 199


def test_cli_converts_a_large_file_on_every_core(tmp_path):
    from cli_helpers import assert_user_error, run_cli

    src = write(tmp_path / "export.json", make_tasks(), compact=False)
    config = tmp_path / "config.xml"
    config.write_text(CONFIG.xml)
    args = ["export", "convert", "--from-file", src, "--config", config, "--format", "yolo", "--no-images",
            "--allow-unknown-labels"]
    # the real thresholds (no monkeypatching in a subprocess): a 2 MB file is cut into ranges
    assert src.stat().st_size > parallel.MIN_FILE_BYTES
    many = run_cli(*args, "--output", tmp_path / "many", "--workers", "2", "--json")
    one = run_cli(*args, "--output", tmp_path / "one", "--workers", "1")
    assert many.ok and one.ok, many.stderr + one.stderr
    assert many.json()["workers"] == 2 and "processes" not in one.stdout
    assert files(tmp_path / "one") == files(tmp_path / "many")
    assert_user_error(run_cli(*args, "--output", tmp_path / "zero", "--workers", "0"), "--workers", code=2)
    assert not (tmp_path / "zero").exists()
