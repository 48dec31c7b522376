"""Export through the real stack: Label Studio writes target-storage JSON into the emulator's bucket, we convert it
(and tasks fetched through the API) with the images downloaded from the bucket; server-side exports; watch mode."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from datalabel import embedded, export, gcs, labelconfig, ls
from datalabel.config import Settings
from datalabel.errors import ConfigError, LabError, NotFound
from datalabel.tasks import iter_tasks

LABELS = ["digit", "smudge"]
SIZE = 64  # the sample digits are 64x64 PNG
N_IMAGES = 10


def rect(label, x, y, w, h):
    return {"type": "rectanglelabels", "from_name": "label", "to_name": "image", "original_width": SIZE,
            "original_height": SIZE, "image_rotation": 0,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}}


def poly(label, points):
    return {"type": "polygonlabels", "from_name": "label", "to_name": "image", "original_width": SIZE,
            "original_height": SIZE, "value": {"points": points, "polygonlabels": [label]}}


def sync_target(client, project_id):
    target = ls.list_storages(client, project_id, "target")[0]
    ls.sync_storage(client, target.id, "target")
    ls.wait_storage(client, target.id, "target")


def make_project(client, storage_client, digits_dir, config_xml, title, annotate):
    """A bucket with the sample images, a project with source + target storage, annotations made by `annotate`."""
    bkt = storage_client.create_bucket(f"export-{uuid.uuid4().hex[:10]}")
    images = sorted((digits_dir / "images").glob("*.png"))[:N_IMAGES]
    for path in images:
        bkt.blob(embedded.SOURCE_PREFIX + path.name).upload_from_filename(str(path))
    project, _ = ls.ensure_project(client, f"{title} {bkt.name}", config_xml)
    source, _ = ls.ensure_source_storage(client, project.id, bkt.name, embedded.SOURCE_PREFIX, regex=r".*\.png$")
    ls.ensure_target_storage(client, project.id, bkt.name, embedded.TARGET_PREFIX)
    ls.sync_storage(client, source.id, "source")
    ls.wait_storage(client, source.id, "source")
    tasks = sorted(ls.iter_task_json(client, project.id), key=lambda t: t["id"])
    assert len(tasks) == N_IMAGES
    annotate(client, tasks)
    sync_target(client, project.id)
    return {"bucket": bkt, "project": project.id, "tasks": tasks, "config": labelconfig.parse_config(config_xml)}


def annotate_detection(client, tasks):
    """0,4,8: two boxes; 1,5: nothing in the image; 2,6: a box and a polygon; 3,7: skipped; 8,9: not labeled."""
    for i, task in enumerate(tasks[:8]):
        kind = i % 4
        result = {0: [rect("digit", 10, 10, 50, 60), rect("smudge", 70, 70, 20, 20)], 1: [],
                  2: [rect("digit", 25, 0, 50, 100), poly("smudge", [[0, 0], [50, 0], [50, 50]])], 3: []}[kind]
        client.annotations.create(id=task["id"], result=result, was_cancelled=kind == 3)


@pytest.fixture(scope="module")
def detection(ls_client, storage_client, digits_dir):
    config = labelconfig.build_config("object-detection", LABELS)
    return make_project(ls_client, storage_client, digits_dir, config, "detection", annotate_detection)


@pytest.fixture(scope="module")
def classification(ls_client, storage_client, digits_dir):
    def annotate(client, tasks):
        for i, task in enumerate(tasks[:6]):
            client.annotations.create(id=task["id"], result=[{
                "type": "choices", "from_name": "choice", "to_name": "image",
                "value": {"choices": ["even" if i % 2 == 0 else "odd"]}}])

    config = labelconfig.build_config("image-classification", ["even", "odd"])
    return make_project(ls_client, storage_client, digits_dir, config, "classes", annotate)


def labeled_names(project) -> list[str]:
    """Image names of tasks with a submitted (not skipped) annotation: indexes 0,1,2,4,5,6."""
    return sorted(project["tasks"][i]["storage_filename"].rsplit("/", 1)[-1] for i in (0, 1, 2, 4, 5, 6))


def assert_no_leftovers(parent: Path, keep: set[str] = frozenset()):
    assert {p.name for p in parent.iterdir()} == set(keep)


def test_target_storage_json_is_one_file_per_annotation_merged_per_task(detection):
    blobs = list(gcs.list_blobs(detection["bucket"], embedded.TARGET_PREFIX))
    assert len(blobs) == 8  # one per annotation, skipped ones included
    tasks = list(export.read_target_storage(detection["bucket"], embedded.TARGET_PREFIX))
    assert [t.id for t in tasks] == [t["id"] for t in detection["tasks"][:8]]
    assert all(t.data["image"].startswith(f"gs://{detection['bucket'].name}/") for t in tasks)
    assert [bool(t.valid_annotations) for t in tasks] == [True, True, True, False] * 2


def test_yolo_from_bucket_has_every_image_and_a_label_file_per_image(detection, storage_client, tmp_path, monkeypatch):
    monkeypatch.setattr(export.sources, "BATCH", 3)  # several chunks: downloads overlap with writing the previous chunk
    tasks = export.read_target_storage(detection["bucket"].name, embedded.TARGET_PREFIX, storage_client=storage_client)
    report = export.convert(tasks, tmp_path / "yolo", "yolo", detection["config"], export.BucketImages(storage_client))
    out = tmp_path / "yolo"
    images = sorted(p.name for p in (out / "images").iterdir())
    assert images == labeled_names(detection)
    assert sorted(p.name for p in (out / "labels").iterdir()) == sorted(n.replace(".png", ".txt") for n in images)
    for name in images:  # the bytes are the bucket's
        assert (out / "images" / name).read_bytes() == \
            detection["bucket"].blob(embedded.SOURCE_PREFIX + name).download_as_bytes()
    first = detection["tasks"][0]["storage_filename"].rsplit("/", 1)[-1].replace(".png", ".txt")
    assert (out / "labels" / first).read_text().splitlines() == [
        "0 0.350000 0.400000 0.500000 0.600000", "1 0.800000 0.800000 0.200000 0.200000"]
    empty = detection["tasks"][1]["storage_filename"].rsplit("/", 1)[-1].replace(".png", ".txt")
    assert (out / "labels" / empty).read_text() == ""
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "digit", 1: "smudge"} and (out / data["train"]).is_dir()
    assert report["images_fetched"] == 6 and report["classes"] == {"digit": 4, "smudge": 4}
    assert_no_leftovers(tmp_path, {"yolo"})


@pytest.mark.postgres
def test_coco_and_voc_from_bucket_with_images(detection, storage_client, tmp_path):
    images = export.BucketImages(storage_client)
    source = lambda: export.read_target_storage(detection["bucket"], embedded.TARGET_PREFIX)  # noqa: E731
    export.convert(source(), tmp_path / "coco", "coco", detection["config"], images)
    coco = json.loads((tmp_path / "coco" / "result.json").read_text())
    assert [c["name"] for c in coco["categories"]] == LABELS and [c["id"] for c in coco["categories"]] == [1, 2]
    assert sorted(i["file_name"] for i in coco["images"]) == labeled_names(detection)
    for img in coco["images"]:  # file_name is relative to the image folder, and the file is there
        assert (tmp_path / "coco" / "images" / img["file_name"]).is_file()
        assert (img["width"], img["height"]) == (SIZE, SIZE)
    assert len(coco["images"]) == 6 and len(coco["annotations"]) == 8
    tall = [a for a in coco["annotations"] if a["bbox"] == pytest.approx([16, 0, 32, 64])]
    assert len(tall) == 2 and all(a["category_id"] == 1 for a in tall)

    export.convert(source(), tmp_path / "voc", "voc", detection["config"], images)
    assert sorted(p.name for p in (tmp_path / "voc" / "JPEGImages").iterdir()) == labeled_names(detection)
    first = detection["tasks"][0]["storage_filename"].rsplit("/", 1)[-1]
    root = ET.parse(tmp_path / "voc" / "Annotations" / first.replace(".png", ".xml")).getroot()
    boxes = [[int(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")] for o in root.iter("object")]
    assert boxes == [[6, 6, 38, 45], [45, 45, 58, 58]]


def test_csv_and_json_min_from_api_tasks_with_resolve_urls(detection, ls_client, storage_client, tmp_path):
    raw = list(ls.iter_task_json(ls_client, detection["project"]))
    assert all("/resolve/?fileuri=" in t["data"]["image"] for t in raw)  # the API's proxy form of gs:// URLs
    export.convert(iter_tasks(raw), tmp_path / "csv", "csv", detection["config"], export.BucketImages(storage_client))
    rows = list(csv.DictReader(open(tmp_path / "csv" / "result.csv")))
    assert len(rows) == 6
    for row in rows:
        assert (tmp_path / "csv" / row["file_name"]).is_file() and row["file_name"].startswith("images/")
    export.convert(iter_tasks(raw), tmp_path / "min", "json-min", detection["config"], None)
    records = json.loads((tmp_path / "min" / "result.json").read_text())
    assert len(records) == 6 and all("file_name" not in r for r in records)


def test_imagefolder_from_bucket(classification, storage_client, tmp_path):
    tasks = export.read_target_storage(classification["bucket"], embedded.TARGET_PREFIX)
    report = export.convert(tasks, tmp_path / "folders", "imagefolder", classification["config"],
                            export.BucketImages(storage_client))
    names = [t["storage_filename"].rsplit("/", 1)[-1] for t in classification["tasks"][:6]]
    assert sorted(p.name for p in (tmp_path / "folders" / "even").iterdir()) == sorted(names[0::2])
    assert sorted(p.name for p in (tmp_path / "folders" / "odd").iterdir()) == sorted(names[1::2])
    assert report["classes"] == {"even": 3, "odd": 3}


def test_image_missing_midway_leaves_no_output_and_no_temp_dir(classification, storage_client, tmp_path):
    tasks = list(export.read_target_storage(classification["bucket"], embedded.TARGET_PREFIX))
    victim = tasks[3].data["image"]
    bkt, key = gcs.split_url(victim)
    blob = storage_client.bucket(bkt).blob(key)
    saved = blob.download_as_bytes()
    blob.delete()
    try:
        with pytest.raises(NotFound, match=key):
            export.convert(tasks, tmp_path / "out", "imagefolder", classification["config"],
                           export.BucketImages(storage_client))
        assert_no_leftovers(tmp_path)
    finally:
        blob.upload_from_string(saved)


@pytest.mark.postgres
def test_server_side_exports_and_http_errors_are_not_files(detection, ls_client, label_studio, tmp_path):
    offered = {f["name"]: f for f in export.api_formats(ls_client, detection["project"])}
    assert not offered["COCO"]["disabled"] and offered["CONLL2003"]["disabled"]
    path = export.export_from_api(ls_client, detection["project"], "JSON", tmp_path / "project.json")
    assert sorted(t.id for t in export.read_export_file(path)) == sorted(t["id"] for t in detection["tasks"])
    coco = export.export_from_api(ls_client, detection["project"], "COCO", tmp_path / "coco.zip")
    assert coco.read_bytes()[:2] == b"PK"

    with pytest.raises(LabError, match="CONLL2003"):
        export.export_from_api(ls_client, detection["project"], "CONLL2003", tmp_path / "conll.txt")
    with pytest.raises(NotFound):
        export.export_from_api(ls_client, 999999, "JSON", tmp_path / "missing.json")
    wrong = ls.connect(Settings(url=label_studio.url, api_key="0" * 40), check=False)  # refused: HTTP 401
    with pytest.raises(ConfigError, match="401"):
        export.export_from_api(wrong, detection["project"], "JSON", tmp_path / "refused.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coco.zip", "project.json"]


def test_a_label_studio_export_file_converts_on_every_core_as_in_one_process(detection, ls_client, tmp_path,
                                                                            monkeypatch):
    from datalabel.export import parallel

    # a project of ten tasks makes a small file: cut it into ranges of about one task
    monkeypatch.setattr(parallel, "MIN_FILE_BYTES", 0)
    monkeypatch.setattr(parallel, "MIN_RANGE_BYTES", 256)
    monkeypatch.setattr(parallel, "RANGE_BYTES", 1024)
    path = export.export_from_api(ls_client, detection["project"], "JSON", tmp_path / "project.json")
    assert len(parallel.split(path, 2)) >= 3

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    for fmt in ("coco", "yolo"):
        one = export.convert_file(path, tmp_path / f"{fmt}-one", fmt, detection["config"], None, workers=1)
        many = export.convert_file(path, tmp_path / f"{fmt}-many", fmt, detection["config"], None, workers=2)
        assert (one["workers"], many["workers"]) == (1, 2)
        assert many["items"] == 6 and many["objects"] == 8 and many["classes"] == {"digit": 4, "smudge": 4}
        assert files(tmp_path / f"{fmt}-one") == files(tmp_path / f"{fmt}-many")


def test_watch_reexports_only_on_change_and_reuses_images(ls_client, storage_client, digits_dir, tmp_path):
    def annotate(client, tasks):
        for task in tasks[:3]:
            client.annotations.create(id=task["id"], result=[rect("digit", 0, 0, 50, 50)])

    project = make_project(ls_client, storage_client, digits_dir, labelconfig.build_config("object-detection", LABELS),
                           "watch", annotate)
    source = export.WatchSource(bucket=project["bucket"], prefix=embedded.TARGET_PREFIX)
    out, images = tmp_path / "yolo", export.BucketImages(storage_client)
    reports = []
    export.watch(source, out, "yolo", project["config"], images, cycles=2, interval=0, on_cycle=reports.append)
    assert reports[0]["changed"] and reports[0]["fetched"]["new"] == 3 and reports[0]["images_fetched"] == 3
    assert reports[1] == {"changed": False, "fetched": {"new": 0, "changed": 0, "unchanged": 3, "removed": 0}}

    ls_client.annotations.create(id=project["tasks"][5]["id"], result=[rect("smudge", 10, 10, 10, 10)])
    sync_target(ls_client, project["project"])
    reports.clear()
    export.watch(source, out, "yolo", project["config"], images, cycles=1, interval=0, on_cycle=reports.append)
    (r,) = reports
    assert r["changed"] and r["fetched"] == {"new": 1, "changed": 0, "unchanged": 3, "removed": 0}
    assert r["images_reused"] == 3 and r["images_fetched"] == 1  # old images linked, only the new one downloaded
    assert len(list((out / "labels").iterdir())) == 4 and len(list((out / "images").iterdir())) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [".yolo.state.sqlite", "yolo"]

    # a second annotator on a task: a new target file, merged into the task; the latest annotation wins
    first = project["tasks"][0]
    ls_client.annotations.create(id=first["id"], result=[rect("smudge", 50, 50, 50, 50)])
    sync_target(ls_client, project["project"])
    merged = next(t for t in export.read_target_storage(project["bucket"], embedded.TARGET_PREFIX)
                  if t.id == first["id"])
    assert len(merged.annotations) == 2 and merged.pick("latest").labels == ["smudge"]
    reports.clear()
    export.watch(source, out, "yolo", project["config"], images, cycles=1, interval=0, on_cycle=reports.append)
    assert reports[0]["fetched"]["new"] == 1 and reports[0]["images_fetched"] == 0
    label_file = out / "labels" / first["storage_filename"].rsplit("/", 1)[-1].replace(".png", ".txt")
    assert label_file.read_text() == "1 0.750000 0.750000 0.500000 0.500000\n"


def test_watch_through_the_api(detection, ls_client, tmp_path):
    source = export.WatchSource(client=ls_client, project_id=detection["project"])
    reports = []
    export.watch(source, tmp_path / "min", "json-min", detection["config"], None, cycles=2, interval=0,
                 state=tmp_path / "state.sqlite", on_cycle=reports.append)
    assert reports[0]["changed"] and reports[0]["fetched"]["new"] == N_IMAGES and reports[0]["items"] == 6
    assert reports[1]["changed"] is False and reports[1]["fetched"]["unchanged"] == N_IMAGES


# --- the CLI, as a user runs it --------------------------------------------------------------------------------


def run_cli(*args, env=None):
    clean = {k: v for k, v in os.environ.items() if k not in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY",
                                                                 "GCS_BUCKET_NAME", "STORAGE_EMULATOR_HOST")}
    return subprocess.run([sys.executable, "-m", "datalabel", "export", *args], capture_output=True, text=True,
                          env={**clean, **(env or {})}, timeout=120)


@pytest.mark.postgres
def test_cli_convert_from_bucket_offline_and_from_api(detection, label_studio, tmp_path):
    config = tmp_path / "config.xml"
    config.write_text(detection["config"].xml)
    env = {"STORAGE_EMULATOR_HOST": os.environ["STORAGE_EMULATOR_HOST"], "GCS_BUCKET_NAME": detection["bucket"].name}
    # no Label Studio URL or token: the bucket and the config are enough
    r = run_cli("convert", "--prefix", embedded.TARGET_PREFIX, "--config", str(config), "--format", "coco",
                "--output", str(tmp_path / "coco"), "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["classes"] == {"digit": 4, "smudge": 4}
    assert len(list((tmp_path / "coco" / "images").iterdir())) == 6

    r = run_cli("convert", "--project", str(detection["project"]), "--format", "yolo", "--output",
                str(tmp_path / "yolo"), "--json", env=label_studio.env(detection["bucket"].name))
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "yolo" / "images").iterdir())) == 6

    r = run_cli("watch", "--prefix", embedded.TARGET_PREFIX, "--config", str(config), "--format", "voc", "--output",
                str(tmp_path / "voc"), "--cycles", "1", "--interval", "0", "--no-images", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["changed"] and len(list((tmp_path / "voc" / "Annotations").iterdir())) == 6

    r = run_cli("formats", "--project", str(detection["project"]), "--json", env=label_studio.env())
    assert r.returncode == 0 and "YOLO" in {f["name"] for f in json.loads(r.stdout)["label_studio"]}


def test_cli_errors_are_one_line_and_write_nothing(detection, label_studio, tmp_path):
    r = run_cli("api", "--project", "999999", "--type", "JSON", "--output", str(tmp_path / "x.json"),
                env=label_studio.env())
    assert r.returncode != 0 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("convert", "--from-file", str(tmp_path / "nope.json"), "--format", "coco", "--output",
                str(tmp_path / "out"), "--config", str(tmp_path / "nope.xml"))
    assert r.returncode != 0 and "Traceback" not in r.stderr and "config" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_help_has_examples():
    for cmd in ("formats", "convert", "api", "watch"):
        r = run_cli(cmd, "--help")
        assert r.returncode == 0 and "datalabel export " + cmd in r.stdout


def test_video_from_label_studio_to_labeled_frames_as_images(ls_client, bucket, storage_client, tmp_path):
    from test_video import gray_level, make_video, track

    bucket.blob("videos/street.mp4").upload_from_filename(str(make_video(tmp_path / "street.mp4")))
    config_xml = labelconfig.build_config("video-tracking", ["car", "person"])
    project, _ = ls.ensure_project(ls_client, f"frames {bucket.name}", config_xml)
    ls_client.projects.import_tasks(id=project.id, request=[{
        "data": {"video": f"gs://{bucket.name}/videos/street.mp4"}, "annotations": [{"result": track()}]}])
    tasks = iter_tasks(ls.iter_task_json(ls_client, project.id))  # the API's form of the URL (resolve proxy)
    report = export.convert(tasks, tmp_path / "yolo", "yolo", labelconfig.parse_config(config_xml),
                            export.BucketImages(storage_client))
    out = tmp_path / "yolo"
    assert (out / "videos" / "street.mp4").read_bytes() == (tmp_path / "street.mp4").read_bytes()
    frames = sorted(p.name for p in (out / "images").iterdir())
    assert frames == ["street_000002.jpg", "street_000003.jpg", "street_000004.jpg", "street_000007.jpg"]
    assert abs(gray_level(out / "images" / "street_000007.jpg") - 140) < 4
    assert sorted(p.name for p in (out / "labels").iterdir()) == [f.replace(".jpg", ".txt") for f in frames]
    assert (out / "labels" / "street_000003.txt").read_text() == "0 0.300000 0.200000 0.200000 0.200000\n"
    assert report["video_frames"] == 4 and report["images_fetched"] == 1


def test_cli_sigterm_midway_leaves_nothing(tmp_path):
    import signal

    from waiting import wait_until

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from bench_convert import CONFIG, make_export

    src, config, work = tmp_path / "export.json", tmp_path / "config.xml", tmp_path / "work"
    make_export(src, 60000)
    config.write_text(CONFIG)
    work.mkdir()
    clean = {k: v for k, v in os.environ.items() if k not in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY")}
    proc = subprocess.Popen([sys.executable, "-m", "datalabel", "export", "convert", "--from-file", str(src),
                             "--config", str(config), "--format", "yolo", "--output", str(work / "out"),
                             "--no-images"], env=clean, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: list(work.glob(".out.tmp-*")) or proc.poll() is not None, 60, "the temporary folder")
    # frozen while its temporary folder is there, it is midway for sure: the signal lands before the rename
    proc.send_signal(signal.SIGSTOP)
    stat = Path(f"/proc/{proc.pid}/stat")
    wait_until(lambda: stat.read_text().rsplit(")", 1)[1].split()[0] in "TZX", 60, "the export to be stopped",
               interval=0.001)
    assert proc.poll() is None and list(work.glob(".out.tmp-*")), "the export finished before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "Traceback" not in err
    assert list(work.iterdir()) == []


def test_video_tracks_written_by_label_studio_to_mot(ls_client, bucket, tmp_path):
    config_xml = labelconfig.build_config("video-tracking", ["car", "person"])
    project, _ = ls.ensure_project(ls_client, f"video {bucket.name}", config_xml)
    sequence = [{"frame": 1, "enabled": True, "x": 10, "y": 20, "width": 10, "height": 10, "rotation": 0, "time": 0.04},
                {"frame": 3, "enabled": False, "x": 30, "y": 20, "width": 10, "height": 10, "rotation": 0, "time": 0.12}]
    ls_client.projects.import_tasks(id=project.id, request=[{
        "data": {"video": f"gs://{bucket.name}/videos/street.mp4"},
        "annotations": [{"result": [{"id": "t1", "type": "videorectangle", "from_name": "box", "to_name": "video",
                                     "value": {"labels": ["car"], "framesCount": 5, "duration": 0.2,
                                               "sequence": sequence}}]}]}])
    ls.ensure_target_storage(ls_client, project.id, bucket.name, embedded.TARGET_PREFIX)
    sync_target(ls_client, project.id)
    tasks = list(export.read_target_storage(bucket, embedded.TARGET_PREFIX))
    assert len(tasks) == 1
    export.convert(tasks, tmp_path / "mot", "mot", labelconfig.parse_config(config_xml), None, frame_size=(100, 50))
    rows = [line.split(",") for line in (tmp_path / "mot" / "mot" / "street.txt").read_text().splitlines()]
    # frames 1..3 interpolated (x 10 -> 20 -> 30 % of 100 px), the track ends at the disabled keyframe 3
    assert [(int(r[0]), float(r[2]), float(r[3])) for r in rows] == [(1, 10, 10), (2, 20, 10), (3, 30, 10)]
    assert {r[7] for r in rows} == {"0"}


def test_reexport_reuses_an_image_only_from_the_same_source(bucket, storage_client, tmp_path):
    from datalabel.tasks import Task

    bucket.blob("a/x.png").upload_from_string(b"image from a")
    bucket.blob("b/x.png").upload_from_string(b"image from b")
    config = labelconfig.parse_config(labelconfig.build_config("object-detection", LABELS))
    t1, t2 = (Task.from_json({"id": i, "data": {"image": f"gs://{bucket.name}/{p}/x.png"},
                              "annotations": [{"id": i, "result": [rect("digit", 0, 0, 10, 10)]}]})
              for i, p in ((1, "a"), (2, "b")))
    images = export.BucketImages(storage_client)
    export.convert([t1, t2], tmp_path / "out", "yolo", config, images)
    assert (tmp_path / "out" / "images" / "x.png").read_bytes() == b"image from a"
    assert (tmp_path / "out" / "images" / "x_2.png").read_bytes() == b"image from b"
    report = export.convert([t1, t2], tmp_path / "out", "yolo", config, images)
    assert (report["images_reused"], report["images_fetched"]) == (2, 0)
    # task 1 gone: task 2's image now takes the plain name and must not be linked from a's old file
    report = export.convert([t2], tmp_path / "out", "yolo", config, images)
    assert (report["images_reused"], report["images_fetched"]) == (0, 1)
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == ["x.png"]
    assert (tmp_path / "out" / "images" / "x.png").read_bytes() == b"image from b"


def test_identical_exports_are_identical_files(detection, storage_client, tmp_path):
    import filecmp

    images = export.BucketImages(storage_client)
    for out in ("one", "two"):
        export.convert(export.read_target_storage(detection["bucket"], embedded.TARGET_PREFIX), tmp_path / out,
                       "coco", detection["config"], images)
    export.convert(export.read_target_storage(detection["bucket"], embedded.TARGET_PREFIX), tmp_path / "two",
                   "coco", detection["config"], images)  # again in place: images reused this time
    one = sorted(str(p.relative_to(tmp_path / "one")) for p in (tmp_path / "one").rglob("*") if p.is_file())
    two = sorted(str(p.relative_to(tmp_path / "two")) for p in (tmp_path / "two").rglob("*") if p.is_file())
    assert one == two and ".datalabel-export.json" in one
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "one", tmp_path / "two", one, shallow=False)
    assert mismatch == [] and errors == []


# --- geometry, names and refusals on Label Studio's own JSON ---------------------------------------------------


def _png(width, height, shade) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (shade, shade, shade)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def shapes(ls_client, storage_client):
    """A detection project whose tasks (imported through the API, read back from it) have 200x100 images with
    colliding names (cat.jpg / cat.png, a/dog.png / b/dog.png) and boxes rotated by 30 and 90 degrees."""
    bkt = storage_client.create_bucket(f"shapes-{uuid.uuid4().hex[:10]}")
    keys = ["img/cat.jpg", "img/cat.png", "a/dog.png", "b/dog.png"]
    for n, key in enumerate(keys):
        bkt.blob(key).upload_from_string(_png(200, 100, 40 * n))

    def box(label, rotation, rid):
        return {"id": rid, "type": "rectanglelabels", "from_name": "label", "to_name": "image",
                "original_width": 200, "original_height": 100, "image_rotation": 0,
                "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": rotation,
                          "rectanglelabels": [label]}}

    config_xml = labelconfig.build_config("object-detection", LABELS)
    project, _ = ls.ensure_project(ls_client, f"shapes {bkt.name}", config_xml)
    ls_client.projects.import_tasks(id=project.id, request=[
        {"data": {"image": f"gs://{bkt.name}/{key}"},
         "annotations": [{"result": [box("digit", 90 if n % 2 else 30, f"r{n}")]}]} for n, key in enumerate(keys)])
    raw = sorted(ls.iter_task_json(ls_client, project.id), key=lambda t: t["id"])
    assert [r["annotations"][0]["result"][0]["value"]["rotation"] for r in raw] == [30, 90, 30, 90]
    return {"bucket": bkt, "project": project.id, "raw": raw, "config": labelconfig.parse_config(config_xml)}


def test_rotated_boxes_and_colliding_names_from_label_studio(shapes, storage_client, tmp_path):
    images = export.BucketImages(storage_client)
    for fmt in ("coco", "yolo", "yolo-obb", "voc"):
        export.convert(iter_tasks(shapes["raw"]), tmp_path / fmt, fmt, shapes["config"], images)
    coco = json.loads((tmp_path / "coco" / "result.json").read_text())
    names = [i["file_name"] for i in coco["images"]]
    ids = [t["id"] for t in shapes["raw"]]
    assert names == ["cat.jpg", f"cat_{ids[1]}.png", "dog.png", f"dog_{ids[3]}.png"]
    r3 = 3 ** 0.5
    # 200x100, (10,20,30,40)% is (20,20) 60x40 px; at 30 degrees the corners are (20,20) (20+30r3,50)
    # (30r3,50+20r3) (0,20+20r3); at 90: (20,20) (20,80) (-20,80) (-20,20)
    by_name = {i["file_name"]: i for i in coco["images"]}
    for ann in coco["annotations"]:
        image = next(i for i in coco["images"] if i["id"] == ann["image_id"])
        assert (image["width"], image["height"]) == (200, 100)
        rotation = 30 if image["task_id"] in (shapes["raw"][0]["id"], shapes["raw"][2]["id"]) else 90
        expected = [0, 20, 20 + 30 * r3, 30 + 20 * r3] if rotation == 30 else [-20, 20, 40, 60]
        assert ann["bbox"] == pytest.approx(expected)
    for name in by_name:  # every image has its own label files, named after it
        stem = name.rsplit(".", 1)[0]
        assert (tmp_path / "coco" / "images" / name).is_file() and (tmp_path / "yolo" / "images" / name).is_file()
        assert (tmp_path / "yolo" / "labels" / f"{stem}.txt").is_file()
        obb = (tmp_path / "yolo-obb" / "labels" / f"{stem}.txt").read_text().split()
        assert len(obb) == 9
        root = ET.parse(tmp_path / "voc" / "Annotations" / f"{stem}.xml").getroot()
        assert root.findtext("filename") == name
    sizes = {name: (tmp_path / "yolo" / "images" / name).read_bytes() for name in by_name}
    assert len(set(sizes.values())) == 4  # four different images, none overwritten


def test_cli_refusals_on_label_studio_projects(classification, detection, shapes, ls_client, label_studio, tmp_path):
    from cli_helpers import assert_user_error, run_cli as cli

    env = label_studio.env(detection["bucket"].name)
    out = tmp_path / "out"
    # a classification project has no region COCO/YOLO/VOC can write
    for fmt in ("coco", "yolo", "voc", "mot"):
        line = assert_user_error(cli("export", "convert", "--project", classification["project"], "-f", fmt,
                                     "-o", out, "--no-images", env=env), f"{fmt} writes")
        assert "imagefolder" in line or fmt == "mot"
    assert_user_error(cli("export", "convert", "--project", detection["project"], "-f", "imagefolder", "-o", out,
                          "--no-images", env=env), "imagefolder writes image classes")
    # the config given leaves out a label the annotations use: ids would shift
    narrow = tmp_path / "narrow.xml"
    narrow.write_text(labelconfig.build_config("object-detection", ["digit"]))
    args = ["export", "convert", "--project", detection["project"], "--config", narrow, "-f", "yolo", "-o", out,
            "--no-images"]
    assert_user_error(cli(*args, env=env), "'smudge' is in the annotations but not in the label config")
    assert not out.exists()
    allowed = cli(*args, "--allow-unknown-labels", "--json", env=env)
    assert allowed.ok, allowed.stderr
    assert allowed.json()["labels_not_in_config"] == ["smudge"]
    # an empty export file
    (tmp_path / "empty.json").write_text(" \n")
    assert_user_error(cli("export", "convert", "--from-file", tmp_path / "empty.json", "--config", narrow, "-f",
                          "yolo", "-o", tmp_path / "e", "--no-images"), "empty.json is empty")
    # frame sizes that are not two positive integers
    for size in ("0x100", "1920x", "axb", "-1x5", "10x10x10"):
        assert_user_error(cli("export", "convert", "--project", detection["project"], "-f", "coco", "-o",
                              tmp_path / "f", "--no-images", "--frame-size", size, env=env), "--frame-size", code=2)
    # a project with tasks and no annotation: an empty dataset only when asked for
    project, _ = ls.ensure_project(ls_client, f"unlabeled {uuid.uuid4().hex[:6]}", detection["config"].xml)
    ls_client.projects.import_tasks(id=project.id, request=[{"data": {"image": "gs://x/a.png"}}])
    args = ["export", "convert", "--project", project.id, "-f", "coco", "-o", tmp_path / "u", "--no-images"]
    assert_user_error(cli(*args, env=env), "nothing to export: 1 task(s) read, 1 without a submitted annotation")
    assert cli(*args, "--allow-empty", env=env).ok
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.json", "narrow.xml", "out", "u"]


# --- an unreachable or failing bucket: quiet, bounded retries ---------------------------------------------------


def _closed_port() -> int:
    return embedded.free_port()  # nothing listens there: connections are refused


def test_unreachable_bucket_is_one_line_naming_the_bound(detection, ls_client, tmp_path):
    """The retries stop at the bound the user set and say so; how long that takes on the clock is a figure of
    benchmarks/bench_convert.py (retry_timeout_2s_took_s), not an assertion here."""
    from cli_helpers import assert_user_error, run_cli as cli

    path = export.export_from_api(ls_client, detection["project"], "JSON", tmp_path / "project.json")
    config = tmp_path / "config.xml"
    config.write_text(detection["config"].xml)
    dead = {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{_closed_port()}", "GCS_BUCKET_NAME": "gone"}
    line = assert_user_error(cli("export", "convert", "--from-file", path, "--config", config, "-f", "yolo", "-o",
                                 tmp_path / "out", "--retry-timeout", "2", env=dead), "gave up after 2 s", code=3)
    assert "--retry-timeout" in line
    assert_user_error(cli("export", "convert", "--prefix", "labels/", "--config", config, "-f", "coco", "-o",
                          tmp_path / "out", env={**dead, "DATALABEL_RETRY_TIMEOUT": "1.5"}), "gave up after 1.5 s")
    assert_user_error(cli("export", "convert", "--from-file", path, "--config", config, "-f", "yolo", "-o",
                          tmp_path / "out", "--retry-timeout", "soon", env=dead), "retry timeout 'soon'", code=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.xml", "project.json"]


def test_failing_requests_are_retried_quietly_and_reported_once_each(caplog, monkeypatch):
    import http.server
    import threading

    calls = []

    class Flaky(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # two 503s, then the object
            calls.append(self.path)
            body = b"the image" if len(calls) > 2 else b'{"error": {"code": 503, "message": "busy"}}'
            self.send_response(200 if len(calls) > 2 else 503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{server.server_address[1]}")
    notes = []
    try:
        with gcs.retry_policy(10, notes.append):
            body = gcs.read_objects(gcs.filesystem(), ["gs://b/a.png"])
    finally:
        server.shutdown()
    assert body == [b"the image"] and len(calls) == 3
    assert [n.split(":")[0] for n in notes] == ["retry 1 for gs", "retry 2 for gs"] and "gs://b/a.png" in notes[0]
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "WARNING")]


# --- the README's export examples, as written, against the demo project -----------------------------------------


def readme_export_examples() -> list[list[str]]:
    import shlex

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = text.split("### Export for training", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [shlex.split(line.split(" #", 1)[0]) for line in block.splitlines() if line.startswith("datalabel ")]


def test_readme_export_examples_run_against_the_demo_project(ls_client, label_studio, tmp_path):
    from cli_helpers import CONFIG_VARS, run_cli as cli

    bucket = f"demo-{uuid.uuid4().hex[:10]}"
    pid = embedded.seed_demo(ls_client, bucket, tmp_path / "samples", limit=12, title=f"Digits demo {bucket}")
    tasks = sorted(ls.iter_task_json(ls_client, pid), key=lambda t: t["id"])
    for task in tasks[:5]:  # what a person labels in the browser
        ls_client.annotations.create(id=task["id"], result=[{"type": "choices", "from_name": "choice",
                                                             "to_name": "image", "value": {"choices": ["3"]}}])
    sync_target(ls_client, pid)
    examples = readme_export_examples()
    assert len(examples) >= 5 and all(args[:2] == ["datalabel", "export"] for args in examples)
    work = tmp_path / "work"
    work.mkdir()
    env = label_studio.env(bucket)
    for args in examples:
        args = [str(pid) if prev == "--project" else a for prev, a in zip([""] + args, args)]  # the demo's id here
        if args[2] == "watch":  # runs until stopped: one export, then Ctrl-C's twin
            full = {**{k: v for k, v in os.environ.items() if k not in CONFIG_VARS}, **env, "PYTHONUNBUFFERED": "1"}
            proc = subprocess.Popen([sys.executable, "-m", "datalabel", *args[1:]], cwd=work, env=full, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            first = proc.stdout.readline()
            proc.terminate()
            _, err = proc.communicate(timeout=60)
            assert first.startswith("imagefolder: 5 item(s)") and "Traceback" not in err, first + err
            continue
        result = cli(*args[1:], env=env, cwd=work)
        assert result.ok, str(result)
    assert sorted(p.name for p in (work / "data" / "digits").iterdir() if p.is_dir()) == [str(d) for d in range(10)]
    assert len(list((work / "data" / "digits" / "3").iterdir())) == 5
    assert len(list(csv.DictReader(open(work / "data" / "csv" / "result.csv")))) == 5
    assert len(json.loads((work / "data" / "min" / "result.json").read_text())) == 5
    assert len(json.loads((work / "project-1.json").read_text())) == 12


def test_ellipses_and_brush_masks_from_label_studio(ls_client, tmp_path):
    import numpy as np

    from test_formats import SHAPES_XML, brush, check_shapes_export, ellipse

    width, height = 120, 80
    nucleus = np.zeros((height, width), dtype=bool)
    nucleus[10:30, 40:70] = True
    wall = np.zeros((height, width), dtype=bool)
    wall[25:28, :] = True
    result = [ellipse(50, 50, 10, 10, 90, width, height), brush("nucleus", nucleus), brush("wall", wall)]
    project, _ = ls.ensure_project(ls_client, f"shapes {uuid.uuid4().hex[:8]}", SHAPES_XML)
    ls_client.projects.import_tasks(id=project.id, request=[{"data": {"image": "gs://b/imgs/img1.png"},
                                                             "annotations": [{"result": result}]}])
    raw = list(ls.iter_task_json(ls_client, project.id))
    stored = {r["type"]: r for r in raw[0]["annotations"][0]["result"]}
    assert stored["brushlabels"]["value"]["format"] == "rle" and stored["ellipselabels"]["value"]["rotation"] == 90
    check_shapes_export(list(iter_tasks(raw)), labelconfig.parse_config(SHAPES_XML), tmp_path, width, height,
                        {"nucleus": nucleus, "wall": wall})


def test_keypoints_from_label_studio_to_coco_keypoints_and_yolo_pose(ls_client, tmp_path):
    from test_formats import POSE_XML, check_pose_export, pose_result

    project, _ = ls.ensure_project(ls_client, f"pose {uuid.uuid4().hex[:8]}", POSE_XML)
    ls_client.projects.import_tasks(id=project.id, request=[{"data": {"image": "gs://b/imgs/img1.png"},
                                                             "annotations": [{"result": pose_result()}]}])
    raw = list(ls.iter_task_json(ls_client, project.id))
    parents = [r.get("parentID") for r in raw[0]["annotations"][0]["result"] if r["type"] == "keypointlabels"]
    assert parents == ["p1", "d1", "d1", None]  # Label Studio keeps the link from keypoint to rectangle
    check_pose_export(list(iter_tasks(raw)), labelconfig.parse_config(POSE_XML), tmp_path)
