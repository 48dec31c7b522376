"""`datalabel setup`: project + source storage + target storage + sync in one idempotent command."""
from __future__ import annotations

from typing import Optional

import typer

from .options import (ANNOTATORS, API_KEY, BUCKET, CONFIG_FILE, CREDENTIALS, JSON, LABELS, LABELS_FILE,
                      OVERLAP_PERCENT, TEMPLATE, URL, client, say, settings)

def setup_cmd(
    title: str = typer.Option(..., "--title", "-t", help="Project title; an existing project with it is reused."),
    template: Optional[str] = TEMPLATE, labels: Optional[str] = LABELS,
    labels_file: Optional[str] = LABELS_FILE, config_file: Optional[str] = CONFIG_FILE,
    source_prefix: str = typer.Option("images_unlabeled/", "--source-prefix", help="Bucket folder with the files to label."),
    target_prefix: str = typer.Option("labels/", "--target-prefix", help="Bucket folder annotations are written to."),
    regex: str = typer.Option(r".*", "--regex", help="Only import object names matching this regex."),
    blob_urls: bool = typer.Option(True, "--blob-urls/--no-blob-urls", help="One task per file (default)."),
    recursive: bool = typer.Option(True, "--recursive/--no-recursive", help="Include files in sub-folders."),
    upload: Optional[str] = typer.Option(None, "--upload", help="Upload this local folder to the source prefix first."),
    cors: bool = typer.Option(False, "--cors", help="Also let the Label Studio URL's origin read the bucket (CORS)."),
    description: str = typer.Option("", "--description", help="Project description."),
    annotators: Optional[int] = ANNOTATORS, overlap_percent: Optional[int] = OVERLAP_PERCENT,
    bucket: str = BUCKET, credentials: str = CREDENTIALS, url: str = URL, api_key: str = API_KEY,
    json_out: bool = JSON,
):
    """Create (or reuse) a project, connect source and target storage, and sync: ready to label.

    Every input is checked first; nothing is created if one is wrong. A second run only imports new files.

    Example: datalabel setup --title Cheese --template image-classification --labels brie,gouda --bucket my-bucket --upload ./images
    """
    from contextlib import nullcontext
    from pathlib import Path

    from ..config import load_credentials
    from ..output import print_json, progress
    from ..projects import resolve_config, setup

    xml = resolve_config(template, labels, labels_file, config_file)
    load_credentials(credentials)
    conf = settings(url, api_key, bucket, credentials)
    name = conf.require_bucket()
    lsc = client(url, api_key, bucket, credentials)
    files = sum(1 for p in Path(upload).rglob("*") if p.is_file()) if upload and Path(upload).is_dir() else 0
    bar = progress(f"upload to gs://{name}/{source_prefix}", files, unit="files") if files else nullcontext(None)
    with bar as advance:
        result = setup(lsc, title, xml, name, source_prefix, target_prefix, regex, blob_urls, credentials,
                       upload, conf.browser_url if cors else None, description, progress=advance, recursive=recursive,
                       annotators=annotators, overlap_percent=overlap_percent)
    if json_out:
        print_json(result.to_dict())
        return
    made = lambda created: "created" if created else "reused"  # noqa: E731
    if result.uploaded:
        say(f"uploaded {result.uploaded['uploaded']} file(s), {result.uploaded['skipped']} already there")
    say(f"{made(result.project_created)} project {result.project_id}: {result.title} "
        f"({result.overlap['annotators']} annotator(s) per task for {result.overlap['percent']}% of the tasks)")
    say(f"{made(result.source_created)} source storage {result.source_id}: gs://{name}/{source_prefix} "
        f"({result.files} file(s), {result.imported} imported now)")
    say(f"{made(result.target_created)} target storage {result.target_id}: gs://{name}/{target_prefix}")
    if result.cors:
        say(f"CORS: {conf.browser_url} may read gs://{name}")
    say(f"{result.tasks} task(s) ready: {conf.browser_url}/projects/{result.project_id}/data")
