"""Format writers on synthetic Label Studio JSON (pure conversion, no servers): content, ids, policies, atomicity."""
from __future__ import annotations

import csv
import json
import math
import xml.etree.ElementTree as ET

import pytest
import yaml

from datalabel import export, gcs, geometry, labelconfig
from datalabel.errors import LabError
from datalabel.tasks import Task

LABELS = ["car", "person", "dog"]
CONFIG = labelconfig.parse_config(labelconfig.build_config("object-detection", LABELS))
W, H = 200, 100


def rect(label, x, y, w, h, rotation=0.0, rid=None):
    return {"id": rid or f"{label}-{x}-{y}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "original_width": W, "original_height": H, "image_rotation": 0,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, "rectanglelabels": [label]}}


def polygon(label, points):
    return {"id": "poly", "type": "polygonlabels", "from_name": "label", "to_name": "image",
            "original_width": W, "original_height": H, "value": {"points": points, "polygonlabels": [label]}}


def task_json(tid, results, name=None, **ann):
    return {"id": tid, "data": {"image": f"gs://bkt/imgs/{name or f'img{tid}.png'}"},
            "annotations": [{"id": tid * 10, "result": results, "updated_at": "2026-11-01T00:00:00Z", **ann}]}


def sample_tasks():
    return [
        task_json(1, [rect("dog", 10, 20, 30, 40), rect("car", 50, 50, 10, 10)]),
        task_json(2, []),  # labeled: nothing in the image
        task_json(3, [rect("person", 5, 5, 20, 30, rotation=30)]),
        task_json(4, [polygon("car", [[10, 10], [40, 10], [40, 50], [10, 50]])]),
        {"id": 5, "data": {"image": "gs://bkt/imgs/img5.png"}, "annotations": []},  # not labeled
        task_json(6, [rect("dog", 0, 0, 5, 5)], was_cancelled=True),  # skipped
    ]


def tasks():
    return [Task.from_json(t) for t in sample_tasks()]


def test_coco_boxes_equal_the_sdk_converters(tmp_path):
    from label_studio_sdk.converter import Converter

    src = tmp_path / "export.json"
    src.write_text(json.dumps([t for t in sample_tasks() if t["id"] in (1, 2, 3)]))
    Converter(CONFIG.xml, project_dir=None, download_resources=False).convert(
        str(src), str(tmp_path / "sdk"), "COCO", is_dir=False)
    export.convert(export.read_export_file(src), tmp_path / "ours", "coco", CONFIG, None)

    def boxes(path):
        coco = json.loads((path / "result.json").read_text())
        names = {c["id"]: c["name"] for c in coco["categories"]}
        order = {img["id"]: n for n, img in enumerate(coco["images"])}
        return sorted((order[a["image_id"]], names[a["category_id"]], *[round(v, 6) for v in a["bbox"]])
                      for a in coco["annotations"])

    ours, sdk = boxes(tmp_path / "ours"), boxes(tmp_path / "sdk")
    # task 3's box is rotated 30 degrees on a 200x100 image: the SDK rotates percent values, we rotate pixels
    assert len(ours) == 3 and ours[:2] == sdk[:2]
    assert ours[2][:2] == sdk[2][:2] == (2, "person") and ours[2][2:] != pytest.approx(sdk[2][2:], abs=0.5)
    corners = geometry.rect_corners(5, 5, 20, 30, 30, W, H)
    x, y, w, h = geometry.bounds([(px * W / 100, py * H / 100) for px, py in corners])
    assert ours[2][2:] == pytest.approx((x, y, w, h), abs=1e-5)


def test_coco_ids_file_names_and_empty_images(tmp_path):
    report = export.convert(tasks(), tmp_path / "coco", "coco", CONFIG, None)
    coco = json.loads((tmp_path / "coco" / "result.json").read_text())
    # category ids from the config order, not from the order labels happen to appear in
    assert coco["categories"] == [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(LABELS)]
    assert [i["file_name"] for i in coco["images"]] == ["img1.png", "img2.png", "img3.png", "img4.png"]
    img2 = next(i for i in coco["images"] if i["task_id"] == 2)
    # sizes come from the regions; an image without regions gets its size only when the image itself is exported
    assert all((i["width"], i["height"]) == (W, H) for i in coco["images"] if i is not img2)
    assert img2["width"] is None
    assert not [a for a in coco["annotations"] if a["image_id"] == img2["id"]]  # kept without objects
    dog = next(a for a in coco["annotations"] if a["category_id"] == 3)
    assert dog["bbox"] == pytest.approx([20, 20, 60, 40]) and dog["area"] == pytest.approx(2400)
    poly = next(a for a in coco["annotations"] if a["segmentation"] and a["category_id"] == 1)
    assert poly["segmentation"] == [pytest.approx([20, 10, 80, 10, 80, 50, 20, 50])]
    assert poly["bbox"] == pytest.approx([20, 10, 60, 40]) and poly["area"] == pytest.approx(2400)
    assert report["classes"] == {"car": 2, "person": 1, "dog": 1}
    assert report["unlabeled_skipped"] == 2  # the unlabeled task and the one whose only annotation was skipped
    assert sorted(p.name for p in (tmp_path / "coco").iterdir()) == [".datalabel-export.json", "result.json"]


def test_include_unlabeled_adds_images_without_objects(tmp_path):
    export.convert(tasks(), tmp_path / "coco", "coco", CONFIG, None, include_unlabeled=True)
    coco = json.loads((tmp_path / "coco" / "result.json").read_text())
    assert sorted(i["task_id"] for i in coco["images"]) == [1, 2, 3, 4, 5, 6]


def test_yolo_label_files_classes_and_data_yaml(tmp_path):
    export.convert(tasks(), tmp_path / "yolo", "yolo", CONFIG, None)
    out = tmp_path / "yolo"
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["img1.txt", "img2.txt", "img3.txt", "img4.txt"]
    assert (out / "labels" / "img2.txt").read_text() == ""
    lines = (out / "labels" / "img1.txt").read_text().splitlines()
    assert lines == ["2 0.250000 0.400000 0.300000 0.400000", "0 0.550000 0.550000 0.100000 0.100000"]
    assert (out / "labels" / "img4.txt").read_text().split() == ["0", *"0.100000 0.100000 0.400000 0.100000 "
                                                                      "0.400000 0.500000 0.100000 0.500000".split()]
    assert (out / "classes.txt").read_text().splitlines() == LABELS
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["nc"] == 3 and data["names"] == {0: "car", 1: "person", 2: "dog"}
    assert (out / data["train"]).is_dir() and "path" not in data


R3 = math.sqrt(3)
# Corners worked out by hand, in pixels and then in percent. A rectangle x, y, w, h (percent) on a W x H image is
# px = x W/100, py = y H/100, pw = w W/100, ph = h H/100; rotating clockwise on screen (y down) by r about the
# top-left corner turns the width edge into (pw cos r, pw sin r) and the height edge into (-ph sin r, ph cos r).
# 200x100, x=10 y=20 w=30 h=40: px=20 py=20 pw=60 ph=40.
# 100x300, x=50 y=10 w=20 h=10: px=50 py=30 pw=20 ph=30.
HAND_CORNERS = [
    (200, 100, (10, 20, 30, 40), 0, [(10, 20), (40, 20), (40, 60), (10, 60)]),
    # width edge (0, 60), height edge (-40, 0): (20,20) (20,80) (-20,80) (-20,20) px
    (200, 100, (10, 20, 30, 40), 90, [(10, 20), (10, 80), (-10, 80), (-10, 20)]),
    # width edge (-60, 0), height edge (0, -40)
    (200, 100, (10, 20, 30, 40), 180, [(10, 20), (-20, 20), (-20, -20), (10, -20)]),
    # width edge (0, -60), height edge (40, 0): (20,20) (20,-40) (60,-40) (60,20) px
    (200, 100, (10, 20, 30, 40), 270, [(10, 20), (10, -40), (30, -40), (30, 20)]),
    (200, 100, (10, 20, 30, 40), -90, [(10, 20), (10, -40), (30, -40), (30, 20)]),
    # width edge (30 sqrt3, 30), height edge (-20, 20 sqrt3)
    (200, 100, (10, 20, 30, 40), 30, [(10, 20), (10 + 15 * R3, 50), (15 * R3, 50 + 20 * R3),
                                       (0, 20 + 20 * R3)]),
    # width edge (30 sqrt3, -30), height edge (20, 20 sqrt3)
    (200, 100, (10, 20, 30, 40), -30, [(10, 20), (10 + 15 * R3, -10), (20 + 15 * R3, -10 + 20 * R3),
                                        (20, 20 + 20 * R3)]),
    # width edge (0, 20), height edge (-30, 0): (50,30) (50,50) (20,50) (20,30) px
    (100, 300, (50, 10, 20, 10), 90, [(50, 10), (50, 50 / 3), (20, 50 / 3), (20, 10)]),
    # width edge (10 sqrt3, 10), height edge (-15, 15 sqrt3): (50,30) (50+10r3,40) (35+10r3,40+15r3) (35,30+15r3)
    (100, 300, (50, 10, 20, 10), 30, [(50, 10), (50 + 10 * R3, 40 / 3), (35 + 10 * R3, (40 + 15 * R3) / 3),
                                       (35, (30 + 15 * R3) / 3)]),
]


@pytest.mark.parametrize("width,height,rect_,rotation,corners", HAND_CORNERS)
def test_rotated_rectangle_corners_are_rotated_in_pixels(width, height, rect_, rotation, corners):
    got = geometry.rect_corners(*rect_, rotation, width, height)
    assert [pytest.approx(p) for p in got] == corners
    box = geometry.rect_box({"x": rect_[0], "y": rect_[1], "width": rect_[2], "height": rect_[3],
                             "rotation": rotation}, width, height)
    xs, ys = [p[0] for p in corners], [p[1] for p in corners]
    assert box == pytest.approx((min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)))


def test_on_a_square_image_the_sdk_agrees_and_on_others_it_shears():
    from label_studio_sdk.converter import Converter

    value = {"x": 5, "y": 5, "width": 20, "height": 30, "rotation": 30}
    assert geometry.rect_box(value, 500, 500) == pytest.approx(Converter.rotated_rectangle(value))
    assert geometry.rect_box(value, 200, 100) != pytest.approx(Converter.rotated_rectangle(value))
    assert geometry.rect_box(value) is None  # rotated, image size unknown: no guess
    assert geometry.rect_box({**value, "rotation": 360}) == (5, 5, 20, 30)


def rotated_task():
    # 200x100, x=10 y=20 w=30 h=40 rotated 90: corners (10,20) (10,80) (-10,80) (-10,20) % -> clamped in YOLO
    # and a second one at 30 degrees on the same image (corners in HAND_CORNERS)
    return Task.from_json(task_json(1, [rect("dog", 10, 20, 30, 40, rotation=90, rid="a"),
                                        rect("car", 10, 20, 30, 40, rotation=30, rid="b")]))


def test_rotated_boxes_in_coco_yolo_obb_and_voc(tmp_path):
    export.convert([rotated_task()], tmp_path / "coco", "coco", CONFIG, None)
    coco = json.loads((tmp_path / "coco" / "result.json").read_text())
    dog, car = coco["annotations"]
    assert dog["bbox"] == pytest.approx([-20, 20, 40, 60])  # pixels: corners (20,20) (20,80) (-20,80) (-20,20)
    assert dog["segmentation"] == [pytest.approx([20, 20, 20, 80, -20, 80, -20, 20])]
    assert dog["area"] == pytest.approx(60 * 40)  # a rotated rectangle keeps its area in pixels
    assert car["bbox"] == pytest.approx([0, 20, 20 + 30 * R3, 30 + 20 * R3])
    assert car["area"] == pytest.approx(60 * 40)

    export.convert([rotated_task()], tmp_path / "yolo", "yolo", CONFIG, None)
    lines = (tmp_path / "yolo" / "labels" / "img1.txt").read_text().splitlines()
    # dog: box -10..10 x 20..80 % clamped to 0..10 % -> centre 0.05, 0.5, size 0.1 x 0.6
    assert lines[0] == "2 0.050000 0.500000 0.100000 0.600000"

    export.convert([rotated_task()], tmp_path / "obb", "yolo-obb", CONFIG, None)
    dog_line, car_line = (tmp_path / "obb" / "labels" / "img1.txt").read_text().splitlines()
    assert dog_line == "2 0.100000 0.200000 0.100000 0.800000 0.000000 0.800000 0.000000 0.200000"
    values = [float(v) for v in car_line.split()[1:]]
    expected = [c / 100 for p in HAND_CORNERS[5][4] for c in p]
    assert values == pytest.approx(expected, abs=1e-6)

    export.convert([rotated_task()], tmp_path / "voc", "voc", CONFIG, None)
    root = ET.parse(tmp_path / "voc" / "Annotations" / "img1.xml").getroot()
    boxes = [[int(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")] for o in root.iter("object")]
    assert boxes[0] == [-20, 20, 20, 80]
    assert boxes[1] == [0, 20, round(20 + 30 * R3), round(50 + 20 * R3)]


@pytest.mark.parametrize("fmt,rotation", [("yolo", 30), ("yolo-obb", 30), ("coco", 0), ("coco", 30), ("voc", 0)])
def test_an_object_without_image_size_stops_the_export_instead_of_vanishing(tmp_path, monkeypatch, fmt, rotation):
    # YOLO needs the size only to rotate in pixels; COCO and VOC write pixels for every box
    region = rect("dog", 10, 20, 30, 40, rotation=rotation)
    del region["original_width"], region["original_height"]
    batch = [Task.from_json(task_json(1, [rect("car", 1, 1, 5, 5)])), Task.from_json(task_json(2, [region]))]
    with pytest.raises(LabError, match=r"task 2: .* needs the size of image 'img2.png' for its 'dog' region.*"
                                       r"without --no-images") as err:
        export.convert(batch, tmp_path / fmt, fmt, CONFIG, None)
    assert "\n" not in str(err.value) and list(tmp_path.iterdir()) == []
    if rotation == 0 and fmt == "coco":  # the same export file, on every core: the same refusal
        from datalabel.export import parallel

        monkeypatch.setattr(parallel, "MIN_FILE_BYTES", 0)
        monkeypatch.setattr(parallel, "MIN_RANGE_BYTES", 256)
        src = tmp_path.parent / f"{tmp_path.name}-export.json"
        src.write_text(json.dumps([task_json(n, [rect("car", 1, 1, 5, 5)] if n < 30 else [region], name=f"i{n}.png")
                                   for n in range(1, 40)]))
        assert len(parallel.split(src, 2)) > 1
        with pytest.raises(LabError, match=r"task (3\d): coco needs the size of image 'i\1.png'"):
            export.convert_file(src, tmp_path / "many", fmt, CONFIG, None, workers=2)
        assert list(tmp_path.iterdir()) == []


def test_voc_xml(tmp_path):
    export.convert(tasks(), tmp_path / "voc", "voc", CONFIG, None)
    root = ET.parse(tmp_path / "voc" / "Annotations" / "img1.xml").getroot()
    assert root.findtext("filename") == "img1.png" and root.findtext("size/width") == "200"
    objs = [(o.findtext("name"), *[int(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")])
            for o in root.iter("object")]
    assert objs == [("dog", 20, 20, 80, 60), ("car", 100, 50, 120, 60)]
    assert (tmp_path / "voc" / "labels.txt").read_text().splitlines() == LABELS


def test_csv_and_json_min(tmp_path):
    export.convert(tasks(), tmp_path / "csv", "csv", CONFIG, None)
    rows = list(csv.DictReader(open(tmp_path / "csv" / "result.csv")))
    assert [r["id"] for r in rows] == ["1", "2", "3", "4"]
    assert rows[0]["image"] == "gs://bkt/imgs/img1.png" and rows[0]["annotation_id"] == "10"
    assert [v["rectanglelabels"] for v in json.loads(rows[0]["label"])] == [["dog"], ["car"]]

    export.convert(tasks(), tmp_path / "min", "json-min", CONFIG, None)
    records = json.loads((tmp_path / "min" / "result.json").read_text())
    assert [r["id"] for r in records] == [1, 2, 3, 4]
    assert records[0]["label"][0]["x"] == 10 and records[0]["label"][0]["original_width"] == W


def test_imagefolder_without_images_lists_classes(tmp_path):
    config = labelconfig.parse_config(labelconfig.build_config("image-classification", ["cat", "dog"]))
    choice = lambda c: [{"type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": [c]}}]  # noqa: E731
    items = [Task.from_json(task_json(1, choice("dog"))), Task.from_json(task_json(2, choice("cat"))),
             Task.from_json(task_json(3, []))]
    report = export.convert(items, tmp_path / "folder", "imagefolder", config, None)
    rows = list(csv.DictReader(open(tmp_path / "folder" / "labels.csv")))
    assert [(r["file_name"], r["label"]) for r in rows] == [("dog/img1.png", "dog"), ("cat/img2.png", "cat")]
    assert (tmp_path / "folder" / "cat").is_dir() and (tmp_path / "folder" / "dog").is_dir()
    assert report["without_class"] == 1


def _multi():
    ann = lambda aid, label, when, **kw: {"id": aid, "updated_at": when, "result": [  # noqa: E731
        {"type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": [label]}}], **kw}
    return Task.from_json({"id": 1, "data": {"image": "gs://b/x.png"}, "annotations": [
        ann(1, "cat", "2026-01-01", ground_truth=True), ann(2, "dog", "2026-01-02"), ann(3, "dog", "2026-01-03"),
        ann(4, "bird", "2026-01-04"), ann(5, "fish", "2026-01-05", was_cancelled=True)]})


@pytest.mark.parametrize("policy,label", [("latest", "bird"), ("ground-truth", "cat"), ("majority", "dog")])
def test_annotation_policy(tmp_path, policy, label):
    config = labelconfig.parse_config(labelconfig.build_config("image-classification", ["cat", "dog", "bird", "fish"]))
    report = export.convert([_multi()], tmp_path / policy, "csv", config, None, policy=policy)
    assert [k for k, v in report["classes"].items() if v] == [label]


def test_unknown_format_or_policy_is_a_user_error(tmp_path):
    with pytest.raises(LabError, match="unknown format"):
        export.convert(tasks(), tmp_path / "x", "tfrecord", CONFIG, None)
    with pytest.raises(LabError, match="unknown annotation policy"):
        export.convert(tasks(), tmp_path / "x", "coco", CONFIG, None, policy="random")
    assert list(tmp_path.iterdir()) == []


def test_failure_midway_leaves_nothing_and_keeps_the_previous_export(tmp_path):
    def broken():
        yield from tasks()
        raise LabError("the source broke")

    with pytest.raises(LabError, match="source broke"):
        export.convert(broken(), tmp_path / "out", "yolo", CONFIG, None)
    assert list(tmp_path.iterdir()) == []

    export.convert(tasks(), tmp_path / "out", "yolo", CONFIG, None)
    before = sorted(p.name for p in (tmp_path / "out" / "labels").iterdir())
    with pytest.raises(LabError):
        export.convert(broken(), tmp_path / "out", "yolo", CONFIG, None)
    assert sorted(p.name for p in (tmp_path / "out" / "labels").iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_refuses_to_replace_a_folder_that_is_not_an_export(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(LabError, match="not a previous export"):
        export.convert(tasks(), tmp_path / "mine", "coco", CONFIG, None)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_duplicate_base_names_get_the_task_id():
    names = export.Namer()
    t1, t2 = Task(1, {}), Task(2, {})
    assert names(t1, "gs://b/a/x.png", None) == "x.png"
    assert names(t2, "gs://b/other/x.png", None) == "x_2.png"


def test_resolve_urls_decode_back_to_gs():
    ref = "/tasks/1/resolve/?fileuri=Z3M6Ly9leHBsb3JlMS9pbWFnZXNfdW5sYWJlbGVkL2RpZ2l0XzAwMDAucG5n"
    assert gcs.gs_url_from_ref(ref) == "gs://explore1/images_unlabeled/digit_0000.png"
    assert gcs.gs_url_from_ref("http://127.0.0.1:8080" + ref) == "gs://explore1/images_unlabeled/digit_0000.png"
    assert gcs.gs_url_from_ref("gs://b/k.png") == "gs://b/k.png"
    assert gcs.gs_url_from_ref("https://example.org/a.png") is None


def test_temporary_folders_of_killed_runs_are_removed(tmp_path):
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.tmp-{dead.pid}-abc123"
    (stale / "labels").mkdir(parents=True)
    live = tmp_path / f".out.tmp-{__import__('os').getpid()}-inuse"  # this process is alive: left alone
    live.mkdir()
    export.convert(tasks(), tmp_path / "out", "yolo", CONFIG, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "out"]


def test_label_files_never_collide_and_match_their_images(tmp_path):
    names = ["imgs/cat.jpg", "imgs/cat.png", "a/dog.png", "b/dog.png", "c/Dog.PNG", "d/cat_2.png"]
    batch = [Task.from_json({**task_json(i + 1, [rect(LABELS[i % 3], 10 * i, 10, 5, 5)]),
                             "data": {"image": f"gs://bkt/{n}"}}) for i, n in enumerate(names)]
    export.convert(batch, tmp_path / "yolo", "yolo", CONFIG, None)
    stems = sorted(p.stem for p in (tmp_path / "yolo" / "labels").iterdir())
    assert len(stems) == len(names) and len({s.casefold() for s in stems}) == len(names)
    export.convert(batch, tmp_path / "coco", "coco", CONFIG, None)
    images = {i["task_id"]: i["file_name"] for i in json.loads((tmp_path / "coco" / "result.json").read_text())["images"]}
    assert images == {1: "cat.jpg", 2: "cat_2.png", 3: "dog.png", 4: "dog_4.png", 5: "Dog_5.PNG", 6: "cat_2_6.png"}
    for tid, image in images.items():  # each label file is its image's, with that image's box
        x = 10 * (tid - 1)
        line = (tmp_path / "yolo" / "labels" / f"{image.rsplit('.', 1)[0]}.txt").read_text().split()
        assert float(line[1]) == pytest.approx((x + 2.5) / 100)

    export.convert(batch, tmp_path / "voc", "voc", CONFIG, None)
    for tid, image in images.items():
        root = ET.parse(tmp_path / "voc" / "Annotations" / f"{image.rsplit('.', 1)[0]}.xml").getroot()
        assert root.findtext("filename") == image
        assert int(root.findtext("object/bndbox/xmin")) == round(10 * (tid - 1) * W / 100)


def test_untrusted_file_names_stay_one_safe_file_name():
    assert export.base_name(1, "gs://b/x/..", None) == "task_1.jpg"
    assert export.base_name(1, "gs://b/x/a\\..\\b.png", None) == "a_.._b.png"
    assert export.base_name(1, "gs://b/x/a\nb:c.png", None) == "a_b_c.png"
    long = export.base_name(1, "gs://b/" + "é" * 300 + ".png", None)
    assert len(long.encode()) <= export.MAX_NAME and long.endswith(".png")


@pytest.mark.parametrize("content", ["", "  \n\t\n"])
def test_an_empty_export_file_is_an_error(tmp_path, content):
    src = tmp_path / "export.json"
    src.write_text(content)
    for run in (lambda: export.convert_file(src, tmp_path / "out", "coco", CONFIG, None),
                lambda: export.convert(export.read_export_file(src), tmp_path / "out", "coco", CONFIG, None)):
        with pytest.raises(LabError, match="export.json is empty"):
            run()
    assert [p.name for p in tmp_path.iterdir()] == ["export.json"]


CLASSES = labelconfig.parse_config(labelconfig.build_config("image-classification", ["cat", "dog"]))
VIDEO = labelconfig.parse_config(labelconfig.build_config("video-tracking", ["car"]))


@pytest.mark.parametrize("fmt,config,says", [
    ("coco", CLASSES, "coco writes boxes, polygons"), ("yolo", CLASSES, "yolo writes boxes"),
    ("yolo-obb", CLASSES, "yolo-obb writes boxes"), ("voc", CLASSES, "voc writes boxes"),
    ("mot", CLASSES, "mot writes video tracks"), ("mot", CONFIG, "mot writes video tracks"),
    ("imagefolder", CONFIG, "imagefolder writes image classes"), ("imagefolder", VIDEO, "imagefolder writes"),
])
def test_a_format_that_cannot_write_the_configs_regions_is_refused(tmp_path, fmt, config, says):
    with pytest.raises(LabError, match=says) as err:
        export.convert(tasks(), tmp_path / "out", fmt, config, None)
    assert "choose one of: json-min, csv" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_a_label_missing_from_the_config_is_refused_unless_allowed(tmp_path):
    batch = [Task.from_json(task_json(1, [rect("truck", 1, 1, 5, 5), rect("dog", 1, 1, 5, 5)]))]
    for fmt in ("coco", "yolo", "voc"):
        with pytest.raises(LabError, match="'truck' is in the annotations but not in the label config.*"
                                           "--allow-unknown-labels to give it id 3"):
            export.convert(batch, tmp_path / fmt, fmt, CONFIG, None)
    assert list(tmp_path.iterdir()) == []
    report = export.convert(batch, tmp_path / "yolo", "yolo", CONFIG, None, allow_unknown_labels=True)
    assert report["labels_not_in_config"] == ["truck"]
    assert (tmp_path / "yolo" / "labels" / "img1.txt").read_text().split()[::5] == ["3", "2"]
    export.convert(batch, tmp_path / "csv", "csv", CONFIG, None)  # no class ids in CSV: nothing shifts
    choice = [{"type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": ["bird"]}}]
    with pytest.raises(LabError, match="'bird'"):
        export.convert([Task.from_json(task_json(1, choice))], tmp_path / "f", "imagefolder", CLASSES, None)


def test_no_labeled_task_is_an_error_unless_allowed(tmp_path):
    unlabeled = [Task.from_json(t) for t in sample_tasks()[4:]]
    with pytest.raises(LabError, match=r"nothing to export: 2 task\(s\) read, 2 without.*--allow-empty"):
        export.convert(unlabeled, tmp_path / "out", "yolo", CONFIG, None)
    assert list(tmp_path.iterdir()) == []
    report = export.convert(unlabeled, tmp_path / "out", "yolo", CONFIG, None, allow_empty=True)
    assert report["items"] == 0 and (tmp_path / "out" / "classes.txt").is_file()


@pytest.mark.parametrize("size", [(0, 100), (-5, 10), (1.5, 2), (100,), "1920x1080", (True, 5)])
def test_frame_size_must_be_two_positive_integers(tmp_path, size):
    with pytest.raises(LabError, match="two positive integers"):
        export.convert(tasks(), tmp_path / "out", "coco", CONFIG, None, frame_size=size)
    assert list(tmp_path.iterdir()) == []


# --- ellipses and brush masks ------------------------------------------------------------------------------------

SHAPES_XML = ('<View><Image name="image" value="$image"/>'
              '<EllipseLabels name="ellipse" toName="image"><Label value="cell"/></EllipseLabels>'
              '<BrushLabels name="brush" toName="image"><Label value="nucleus"/><Label value="wall"/></BrushLabels>'
              '</View>')


def ellipse(x, y, rx, ry, rotation=0, width=W, height=H):
    return {"id": f"e{rotation}", "type": "ellipselabels", "from_name": "ellipse", "to_name": "image",
            "original_width": width, "original_height": height, "value": {
                "x": x, "y": y, "radiusX": rx, "radiusY": ry, "rotation": rotation, "ellipselabels": ["cell"]}}


def test_ellipses_are_polygons_rotated_in_pixels():
    # 200x100, centre (50,50)% = (100,50) px, radii 10% = 20 px across and 10% = 10 px down
    flat = geometry.ellipse_points(50, 50, 10, 10, 0, W, H)
    assert flat[0] == pytest.approx((60, 50)) and flat[8] == pytest.approx((50, 60))
    assert geometry.bounds(flat) == pytest.approx((40, 40, 20, 20))
    # rotated 90 clockwise: the 20 px radius points down (y 50 +- 20 px = 30..70 %), the 10 px one left/right
    # (x 100 -+ 10 px = 45..55 %)
    turned = geometry.ellipse_points(50, 50, 10, 10, 90, W, H)
    assert turned[0] == pytest.approx((50, 70)) and turned[8] == pytest.approx((45, 50))
    assert geometry.bounds(turned) == pytest.approx((45, 30, 10, 40))
    assert geometry.ellipse_points(50, 50, 10, 10, 30, None, None) is None


def test_coco_rle_by_hand():
    import numpy as np

    mask = np.array([[0, 1], [1, 1], [0, 0]], dtype=bool)  # column-major: 0 1 0 | 1 1 0
    assert geometry.coco_rle(mask) == {"size": [3, 2], "counts": [1, 1, 1, 2, 1]}
    assert geometry.coco_rle(np.ones((2, 2), dtype=bool)) == {"size": [2, 2], "counts": [0, 4]}


def brush(label, mask):
    from label_studio_sdk.converter.brush import mask2rle

    height, width = mask.shape
    return {"id": f"b-{label}", "type": "brushlabels", "from_name": "brush", "to_name": "image",
            "original_width": width, "original_height": height,
            "value": {"format": "rle", "rle": mask2rle(mask.astype("uint8") * 255), "brushlabels": [label]}}


def decode_coco_rle(seg):
    import numpy as np

    h, w = seg["size"]
    flat = np.zeros(h * w, dtype=bool)
    pos, value = 0, False
    for n in seg["counts"]:
        flat[pos:pos + n] = value
        pos, value = pos + n, not value
    return flat.reshape((h, w), order="F")


def check_shapes_export(batch, config, out, width, height, masks):
    """COCO, YOLO and VOC of one image with an ellipse (centre 50,50 %, radii 10 %, rotated 90) and brush masks."""
    import numpy as np
    from PIL import Image

    for fmt in ("coco", "yolo", "voc"):
        export.convert(batch, out / fmt, fmt, config, None)
    coco = json.loads((out / "coco" / "result.json").read_text())
    ann = {coco["categories"][a["category_id"] - 1]["name"]: a for a in coco["annotations"]}
    cell = ann["cell"]
    assert len(cell["segmentation"][0]) == 2 * geometry.ELLIPSE_VERTICES
    # the ellipse's radii in pixels are 0.1 W across and 0.1 H down; turned 90 degrees they swap axes
    rx, ry = 0.1 * width, 0.1 * height
    assert cell["bbox"] == pytest.approx([0.5 * width - ry, 0.5 * height - rx, 2 * ry, 2 * rx], abs=1e-6)
    assert cell["area"] == pytest.approx(math.pi * rx * ry, rel=0.01)  # a 32-gon is within 1% of the ellipse
    for label, mask in masks.items():
        a = ann[label]
        assert (decode_coco_rle(a["segmentation"]) == mask).all() and a["area"] == int(mask.sum())
        ys, xs = np.nonzero(mask)
        assert a["bbox"] == pytest.approx([xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()])
    names = {"nucleus": 2, "wall": 3}  # class id + 1: cell 0, nucleus 1, wall 2
    for folder in ("coco/masks", "yolo/masks", "voc/SegmentationClass"):
        png = np.array(Image.open(out / folder / "img1.png"))
        expected = np.zeros((height, width), dtype=np.uint8)
        for label, mask in masks.items():
            expected[mask] = names[label]
        assert (png == expected).all(), folder
    lines = (out / "yolo" / "labels" / "img1.txt").read_text().splitlines()
    assert len(lines) == 1 + len(masks) and len(lines[0].split()) == 1 + 2 * geometry.ELLIPSE_VERTICES


def test_ellipses_and_brush_masks_in_coco_yolo_and_voc(tmp_path):
    import numpy as np

    config = labelconfig.parse_config(SHAPES_XML)
    nucleus = np.zeros((H, W), dtype=bool)
    nucleus[20:40, 50:90] = True
    wall = np.zeros((H, W), dtype=bool)
    wall[30:35, 0:200] = True  # painted after the nucleus: over it where they meet
    batch = [Task.from_json(task_json(1, [ellipse(50, 50, 10, 10, 90), brush("nucleus", nucleus),
                                          brush("wall", wall)]))]
    check_shapes_export(batch, config, tmp_path, W, H, {"nucleus": nucleus, "wall": wall})


def test_brush_rle_decodes_as_the_sdk_does():
    """Also at full HD; the time that takes is benchmarks/bench_convert.py's brush_mask_fullhd_ms."""
    import numpy as np
    from label_studio_sdk.converter.brush import decode_rle, mask2rle

    rng = np.random.default_rng(3)
    mask = np.zeros((60, 90), dtype=np.uint8)
    mask[10:30, 20:70] = 255
    mask[rng.random(mask.shape) < 0.05] = 255  # speckles: literal runs as well as repeats
    rle = mask2rle(mask)
    assert (geometry.decode_brush_rle(rle) == decode_rle(rle)).all()
    assert (geometry.brush_mask(rle, 90, 60) == (mask > 0)).all()
    big = np.zeros((1080, 1920), dtype=np.uint8)
    big[100:900, 300:1500] = 255
    rle = mask2rle(big)
    assert (geometry.brush_mask(rle, 1920, 1080) == (big > 0)).all()
    with pytest.raises(ValueError, match="ends early"):
        geometry.decode_brush_rle(rle[:20])


# --- keypoints: COCO keypoints and YOLO pose ----------------------------------------------------------------------

POSE_XML = ('<View><Image name="image" value="$image"/>'
            '<RectangleLabels name="box" toName="image"><Label value="person"/><Label value="dog"/></RectangleLabels>'
            '<KeyPointLabels name="kp" toName="image"><Label value="nose"/><Label value="tail"/>'
            '<Label value="paw"/></KeyPointLabels></View>')


def keypoint(name, x, y, parent=None, rid=None):
    out = {"id": rid or f"k-{name}-{x}", "type": "keypointlabels", "from_name": "kp", "to_name": "image",
           "original_width": W, "original_height": H, "value": {"x": x, "y": y, "width": 0.5,
                                                                "keypointlabels": [name]}}
    if parent:
        out["parentID"] = parent
    return out


def pose_result():
    # a person box with its nose; a dog box with tail and paw; a paw drawn on no box
    return [rect("person", 10, 10, 20, 40, rid="p1"), keypoint("nose", 20, 15, parent="p1"),
            {**rect("dog", 50, 50, 40, 40, rid="d1"), "from_name": "box"}, keypoint("tail", 90, 60, parent="d1"),
            keypoint("paw", 60, 88, parent="d1"), keypoint("paw", 5, 95)]


def check_pose_export(batch, config, out):
    export.convert(batch, out / "coco", "coco", config, None)
    coco = json.loads((out / "coco" / "result.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["person", "dog", "kp"]  # keypoint names are not classes
    assert all(c["keypoints"] == ["nose", "tail", "paw"] for c in coco["categories"])
    person, dog, loose = sorted(coco["annotations"], key=lambda a: a["category_id"])
    # 200x100 px: nose (20,15)% = (40,15) px; tail (90,60)% = (180,60); paw (60,88)% = (120,88); loose paw (10,95)
    assert person["keypoints"] == pytest.approx([40, 15, 2, 0, 0, 0, 0, 0, 0]) and person["num_keypoints"] == 1
    assert dog["keypoints"] == pytest.approx([0, 0, 0, 180, 60, 2, 120, 88, 2]) and dog["num_keypoints"] == 2
    assert dog["bbox"] == pytest.approx([100, 50, 80, 40])
    assert loose["keypoints"] == pytest.approx([0, 0, 0, 0, 0, 0, 10, 95, 2]) and loose["bbox"] == [10, 95, 0, 0]

    export.convert(batch, out / "pose", "yolo-pose", config, None)
    lines = (out / "pose" / "labels" / "img1.txt").read_text().splitlines()
    assert lines == [
        "0 0.200000 0.300000 0.200000 0.400000 0.200000 0.150000 2 0.000000 0.000000 0 0.000000 0.000000 0",
        "1 0.700000 0.700000 0.400000 0.400000 0.000000 0.000000 0 0.900000 0.600000 2 0.600000 0.880000 2",
        "2 0.050000 0.950000 0.000000 0.000000 0.000000 0.000000 0 0.000000 0.000000 0 0.050000 0.950000 2"]
    data = yaml.safe_load((out / "pose" / "data.yaml").read_text())
    assert data["kpt_shape"] == [3, 3] and data["names"] == {0: "person", 1: "dog", 2: "kp"}
    # plain YOLO and VOC of the same project: the boxes, no stray zero-size keypoint boxes
    export.convert(batch, out / "yolo", "yolo", config, None)
    assert len((out / "yolo" / "labels" / "img1.txt").read_text().splitlines()) == 2


def test_keypoints_as_coco_keypoints_and_yolo_pose(tmp_path):
    config = labelconfig.parse_config(POSE_XML)
    check_pose_export([Task.from_json(task_json(1, pose_result()))], config, tmp_path)
    only = labelconfig.parse_config(labelconfig.build_config("keypoints", ["eye", "nose"]))
    with pytest.raises(LabError, match="choose one of: json-min, csv, tsv, coco, yolo-pose"):
        export.convert([Task.from_json(task_json(1, []))], tmp_path / "y", "yolo", only, None)


# --- label configs as Label Studio reads them; --policy all ---------------------------------------------------------


def test_configs_are_read_as_label_studio_reads_them():
    config = labelconfig.parse_config(
        '<View><Header value="Pick"/><Text name="intro" value="Read this first"/>'
        '<Image name="pages" valueList="$pages"/><Text name="t" value="$text"/>'
        '<Choices name="c" toName="t"><View><Choice value="x" alias="X"/></View><Choice value="y"/>'
        '<Choice value="y"/></Choices>'
        '<Taxonomy name="tax" toName="t"><Choice value="A"><Choice value="Other"/></Choice>'
        '<Choice value="B"><Choice value="Other"/></Choice></Taxonomy>'
        '<Relations><Relation value="near"/></Relations><Rating name="loose"/>'
        '<RectangleLabels name="box" toName="pages"><Label value="car" category="3"/></RectangleLabels>'
        '<TimelineLabels name="tl" toName="t"><Label value="speech"/></TimelineLabels></View>')
    controls = {c.name: c for c in config.controls}
    assert list(controls) == ["c", "tax", "box", "tl"]  # a <Rating> without toName labels nothing
    assert controls["c"].labels == ["X", "y"]  # the alias is what results store; a repeat is one label
    assert controls["tax"].labels == ["A", "Other", "B"]
    assert controls["box"].attrs["car"]["category"] == "3"
    assert config.objects["pages"] == ("Image", "pages") and config.objects["intro"] == ("Text", "")
    assert config.data_key == "pages" and config.target_key({"RectangleLabels"}) == "pages"
    with pytest.raises(LabError, match="unknown toName='nowhere'"):
        labelconfig.parse_config('<View><Text name="t" value="$t"/><Choices name="c" toName="nowhere"/></View>')
    empty = labelconfig.parse_config("<View></View>")  # an Interface project: Label Studio takes it
    assert empty.controls == [] and empty.data_key is None


def test_policy_all_writes_a_record_per_annotation_only_in_tables(tmp_path):
    def ann(aid, label, when, **kw):
        return {"id": aid, "created_at": when, "updated_at": when, "completed_by": 2, "result": [
            {"type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": [label]}}], **kw}

    task = {"id": 1, "data": {"image": "gs://b/x.png"}, "annotations": [
        ann(1, "cat", "2026-01-01"), ann(2, "dog", "2026-01-03"), ann(3, "cat", "2026-01-02", was_cancelled=True)]}
    skipped = {"id": 2, "data": {"image": "gs://b/y.png"}, "annotations": [ann(4, "dog", "2026-01-04",
                                                                            was_cancelled=True)]}
    none = {"id": 3, "data": {"image": "gs://b/z.png"}, "annotations": []}
    batch = [Task.from_json(t) for t in (task, skipped, none)]
    export.convert(batch, tmp_path / "min", "json-min", CLASSES, None, policy="all", include_unlabeled=True)
    records = json.loads((tmp_path / "min" / "result.json").read_text())
    # newest first, the skipped one left out; a task whose every annotation was skipped has no record (as in
    # Label Studio), one without any annotation has its empty one
    assert [(r["id"], r["annotation_id"], r.get("choice")) for r in records] == [(1, 2, "dog"), (1, 1, "cat"),
                                                                                 (3, None, None)]
    assert records[0]["annotator"] == 2 and records[0]["created_at"] == "2026-01-03"
    with pytest.raises(LabError, match="--policy all writes a record per annotation, which only json-min, csv and tsv"):
        export.convert(batch, tmp_path / "f", "imagefolder", CLASSES, None, policy="all")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["min"]
