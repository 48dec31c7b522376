"""`datalabel export ...`: annotations in the format a trainer reads, from the API or straight from the bucket."""
from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path

import typer

from .options import API_KEY, BUCKET, COUNT_MAX, ID_MAX, JSON, POLICY, URL, finite, path_given

app = typer.Typer(
    help="Export and convert annotations: COCO, YOLO, Pascal VOC, ImageFolder, CSV, JSON-MIN, MOT (video).\n\n"
    "Examples:\n\n"
    "  datalabel export formats --project 3\n\n"
    "  datalabel export convert --project 3 --format yolo --output data/yolo\n\n"
    "  datalabel export convert --prefix labels/ --config config.xml --format coco --output data/coco\n\n"
    "  datalabel export api --project 3 --type COCO --output coco.zip\n\n"
    "  datalabel export watch --project 3 --prefix labels/ --format yolo --output data/yolo --interval 60",
    no_args_is_help=True,
)

FORMAT = typer.Option(..., "--format", "-f",
                      help="json-min, csv, tsv, coco, yolo, yolo-obb, yolo-pose, voc, imagefolder, mot.")
OUTPUT = typer.Option(..., "--output", "-o", callback=path_given,
                      help="Output folder (replaced atomically when the export is complete).")
PROJECT = typer.Option(None, "--project", "-p", min=1, max=ID_MAX,
                       help="Label Studio project id (tasks and/or label config from the API).")
PREFIX = typer.Option(None, "--prefix", help="Target-storage prefix in the bucket (e.g. labels/): convert offline from "
                      "the JSON Label Studio wrote there.")
FROM_FILE = typer.Option(None, "--from-file", help="A Label Studio JSON export file to convert offline.")
CONFIG = typer.Option(None, "--config", help="Label config XML file (class order); else taken from --project.")
IMAGES = typer.Option(True, "--images/--no-images", help="Download the images from the bucket into the output.")
WORKERS = typer.Option(None, "--workers", min=1, max=1024, help="Processes for --from-file --no-images to COCO/YOLO "
                       "(default: every usable core; 1: one process). The output is the same either way.")
UNLABELED = typer.Option(False, "--include-unlabeled", help="Also write tasks without an annotation (no objects).")
FRAME_SIZE = typer.Option(None, "--frame-size", help="Video frame size WxH (e.g. 1920x1080) for pixel boxes "
                          "of video tracks in COCO, VOC and MOT.")
RETRY_TIMEOUT = typer.Option(None, "--retry-timeout", envvar="DATALABEL_RETRY_TIMEOUT", help="Seconds to keep "
                             "retrying an unreachable or failing bucket before giving up (default 20).")
ALL_FRAMES = typer.Option(False, "--all-frames", help="Video to COCO/YOLO/VOC: write every frame as an image, "
                          "not only the frames that carry labels.")
ALLOW_EMPTY = typer.Option(False, "--allow-empty", help="Write the dataset even if no task has an annotation "
                           "(otherwise an error).")
ALLOW_UNKNOWN = typer.Option(False, "--allow-unknown-labels", help="Labels missing from the label config get "
                             "class ids after the config's (otherwise an error: ids would not match the config).")


@contextlib.contextmanager
def _stop_cleanly():
    """SIGTERM (docker stop, kill) unwinds like Ctrl-C, so an export in progress removes its temporary folder. The
    request is also recorded, for the case where the KeyboardInterrupt is lost (see export.folder.stop_requested)."""
    from ..export.folder import stop_requested

    def handler(signum, frame):
        stop_requested.set()
        raise KeyboardInterrupt

    default = sys.unraisablehook

    def unraisable(info):
        if not (stop_requested.is_set() and info.exc_type is KeyboardInterrupt):  # the lost one: no traceback
            default(info)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        sys.unraisablehook = default
        stop_requested.clear()  # for a later export in this process (a test, a notebook)
        for sig, old in previous.items():
            signal.signal(sig, old)


def _frame_size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    from ..errors import ConfigError

    parts = value.strip().lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ConfigError(f"--frame-size {value!r}: expected two positive integers WIDTHxHEIGHT, e.g. 1920x1080")
    return int(parts[0]), int(parts[1])


def _config(config_file: Path | None, client, project: int | None):
    from ..errors import ConfigError

    if config_file is not None:
        from ..labelconfig import read_config_file

        return read_config_file(config_file)
    if client is not None and project is not None:
        from ..ls import project_config

        return project_config(client, project)
    raise ConfigError("the label config decides class ids: pass --config config.xml or --project ID")


def _print_report(report: dict, json_out: bool) -> None:
    from ..output import print_json, print_table

    if json_out:
        print_json(report)
        return
    if report.get("changed") is False:
        typer.echo(f"no new or changed annotations ({report['fetched']['unchanged']} unchanged)")
        return
    typer.echo(f"{report['format']}: {report['items']} item(s) -> {report['out_dir']}")
    print_table([{"class": k, "objects": v} for k, v in report["classes"].items()], ["class", "objects"])
    processes = f" on {report['workers']} processes" if report.get("workers", 1) > 1 else ""
    typer.echo(f"tasks read {report['tasks']}, without annotation {report['unlabeled_skipped']}, images fetched "
               f"{report['images_fetched']}, reused {report['images_reused']}, in {report['seconds']}s{processes}")
    if report.get("images_not_in_bucket"):
        typer.echo(f"warning: {report['images_not_in_bucket']} task(s) point to media outside gs://; "
                   "their images are not in the export", err=True)
    if report.get("objects_without_image_size"):
        typer.echo(f"warning: {report['objects_without_image_size']} object(s) left out: image size unknown "
                   "(export with images, or --frame-size for video)", err=True)


def _then_converting(tasks, progress, description: str):
    """The tasks as they come; at the first one the progress line turns from the reading to the tasks."""
    from ..output import next_step

    started = False
    for task in tasks:
        if not started:
            next_step(progress, description, unit="tasks")
            started = True
        yield task


def _source_tasks(project, prefix, from_file, bucket, client, storage, progress):
    from ..errors import ConfigError
    from .. import export

    given = [x for x in (prefix, from_file) if x]
    if len(given) > 1:
        raise ConfigError("give one source: --prefix (bucket), --from-file, or only --project (API)")
    if from_file:
        return export.read_export_file(from_file)
    if prefix is not None:
        return export.read_target_storage(bucket, prefix, storage_client=storage, progress=progress)
    if project is not None:
        from .. import warm

        return warm.project_tasks(client, project, progress, storage, predictions=False)  # none is converted
    raise ConfigError("no source: pass --project ID (API), --prefix labels/ (bucket) or --from-file export.json")


@app.command("formats")
def formats_cmd(project: int = PROJECT, url: str = URL, api_key: str = API_KEY, json_out: bool = JSON):
    """Formats `convert` writes, and with --project, which of them fit the project's label config and the
    formats Label Studio itself offers for that project (also marked: fits yes/no).

    Examples:
      datalabel export formats
      datalabel export formats --project 3 --json
    """
    from .. import export
    from ..output import print_json, print_table
    from .options import client

    server = config = None
    if project is not None:
        lsc = client(url, api_key)
        config = _config(None, lsc, project)
        server = export.api_formats(lsc, project)
    ours = export.describe_formats(config)
    if json_out:
        print_json({"convert": ours, "label_studio": server})
        return
    if config is None:
        print_table(ours, ["format", "output"], "datalabel export convert --format ...")
    else:
        print_table([{**f, "fits": "yes" if f["fits"] else f"no: {f['why_not']}"} for f in ours],
                    ["format", "fits", "output"], f"datalabel export convert --project {project} --format ...")
    if server is not None:
        print_table([{**f, "fits": "no" if f["disabled"] else "yes"} for f in server], ["name", "title", "fits"],
                    f"datalabel export api --project {project} --type ...")


@app.command("convert")
def convert_cmd(
    fmt: str = FORMAT, output: Path = OUTPUT, project: int = PROJECT, prefix: str = PREFIX,
    from_file: Path = FROM_FILE, config: Path = CONFIG, policy: str = POLICY, images: bool = IMAGES,
    include_unlabeled: bool = UNLABELED, frame_size: str = FRAME_SIZE, workers: int = WORKERS, bucket: str = BUCKET,
    allow_empty: bool = ALLOW_EMPTY, allow_unknown_labels: bool = ALLOW_UNKNOWN, retry_timeout: str = RETRY_TIMEOUT,
    all_frames: bool = ALL_FRAMES, url: str = URL, api_key: str = API_KEY, json_out: bool = JSON,
):
    """Write annotations in a training format, images included, into --output (atomically).

    Sources: --project alone reads tasks through the API; --prefix reads the JSON that target storage wrote to the
    bucket (no Label Studio needed with --config); --from-file reads a Label Studio JSON export (a large one, with
    --no-images, to COCO or YOLO: converted on every core).

    Examples:
      datalabel export convert --project 3 --format yolo --output data/yolo
      datalabel export convert --prefix labels/ --config config.xml --format coco --output data/coco
      datalabel export convert --from-file export.json --config config.xml --format csv --output out --no-images
    """
    from .. import export, gcs
    from ..config import Settings
    from ..output import progress
    from .options import client as make_client

    options = dict(include_unlabeled=include_unlabeled, frame_size=_frame_size(frame_size), allow_empty=allow_empty,
                   allow_unknown_labels=allow_unknown_labels, all_frames=all_frames)
    settings = Settings.load(url=url, api_key=api_key, bucket=bucket)
    client = make_client(url, api_key) if project is not None else None
    label_config = _config(config, client, project)
    export.check_config(fmt, label_config)  # before any download
    storage = gcs.client(settings.credentials_file) if (images or prefix is not None) else None
    bucket_name = settings.require_bucket(bucket) if prefix is not None else None
    # the line counts what is read first (the project's export in MB, target storage's files), then the tasks
    first, unit = ((f"exporting {fmt}", "tasks") if from_file else (f"read gs://{bucket_name}/{prefix}", "files")
                   if prefix is not None else (f"read project {project}", "bytes"))
    with _stop_cleanly(), progress(first, unit=unit) as advance, \
            gcs.retry_policy(retry_timeout, advance.note):
        fetch = export.BucketImages(storage) if images else None
        if from_file and prefix is None:  # a file can be cut into parts and converted on every core
            report = export.convert_file(from_file, output, fmt, label_config, fetch, policy, advance,
                                         workers=workers, **options)
        else:
            tasks = _source_tasks(project, prefix, from_file, bucket_name, client, storage, advance)
            report = export.convert(_then_converting(tasks, advance, f"exporting {fmt}"), output, fmt, label_config,
                                    fetch, policy, advance, **options)
    _print_report(report, json_out)


@app.command("api")
def api_cmd(
    project: int = typer.Option(..., "--project", "-p", min=1, max=ID_MAX, help="Label Studio project id."),
    export_type: str = typer.Option("JSON", "--type", "-t", help="A format name from `datalabel export formats "
                                    "--project ID` (JSON, JSON_MIN, CSV, COCO, YOLO_WITH_IMAGES, ...)."),
    output: Path = typer.Option(..., "--output", "-o", help="File to write (zip for formats with several files)."),
    timeout: float = typer.Option(600, "--timeout", min=1, max=86400, callback=finite,
                                  help="Seconds to wait for Label Studio to build the export."),
    force: bool = typer.Option(False, "--force", help="Replace --output if it exists."),
    url: str = URL, api_key: str = API_KEY,
):
    """Label Studio's own export of a project (export snapshot, then download); HTTP errors are errors, not files.

    Examples:
      datalabel export api --project 3 --type JSON --output project-3.json
      datalabel export api --project 3 --type COCO --output coco.zip
    """
    from .. import export
    from .options import client

    export.check_output_file(output, force)
    path = export.export_from_api(client(url, api_key), project, export_type, output, timeout)
    typer.echo(f"{export_type} export of project {project} -> {path} ({path.stat().st_size} bytes)")


@app.command("watch")
def watch_cmd(
    fmt: str = FORMAT, output: Path = OUTPUT, project: int = PROJECT, prefix: str = PREFIX, config: Path = CONFIG,
    policy: str = POLICY, images: bool = IMAGES, include_unlabeled: bool = UNLABELED, frame_size: str = FRAME_SIZE,
    allow_empty: bool = ALLOW_EMPTY, allow_unknown_labels: bool = ALLOW_UNKNOWN, retry_timeout: str = RETRY_TIMEOUT,
    all_frames: bool = ALL_FRAMES,
    interval: float = typer.Option(30.0, "--interval", min=0.0, max=86400, callback=finite, help="Seconds between polls."),
    cycles: int = typer.Option(None, "--cycles", min=1, max=COUNT_MAX, help="Stop after this many polls (default: run until Ctrl-C)."),
    state: Path = typer.Option(None, "--state", help="State file (default: .<output>.state.sqlite beside --output)."),
    bucket: str = BUCKET, url: str = URL, api_key: str = API_KEY, json_out: bool = JSON,
):
    """Re-export whenever annotations are added or changed: polls the target prefix (--prefix) or the API.

    Only new or changed target files (or tasks) are fetched; images already exported are not downloaded again;
    each new export replaces the previous one atomically.

    Examples:
      datalabel export watch --prefix labels/ --config config.xml --format yolo --output data/yolo
      datalabel export watch --project 3 --format coco --output data/coco --interval 60
    """
    from .. import export, gcs
    from ..config import Settings
    from ..errors import ConfigError
    from .options import client as make_client

    size = _frame_size(frame_size)
    settings = Settings.load(url=url, api_key=api_key, bucket=bucket)
    client = make_client(url, api_key) if project is not None else None
    label_config = _config(config, client, project)
    export.check_config(fmt, label_config)
    storage = gcs.client(settings.credentials_file) if (images or prefix is not None) else None
    with _stop_cleanly(), gcs.retry_policy(retry_timeout):
        if prefix is not None:
            source = export.WatchSource(bucket=gcs.bucket(storage, settings.require_bucket(bucket)), prefix=prefix)
        elif project is not None:
            source = export.WatchSource(client=client, project_id=project)
        else:
            raise ConfigError("nothing to watch: pass --prefix labels/ (bucket) or --project ID (API)")
        export.watch(source, output, fmt, label_config, export.BucketImages(storage) if images else None, policy,
                     interval, cycles, state, on_cycle=lambda r: _print_report(r, json_out),
                     include_unlabeled=include_unlabeled, frame_size=size, allow_empty=allow_empty,
                     allow_unknown_labels=allow_unknown_labels, all_frames=all_frames)
