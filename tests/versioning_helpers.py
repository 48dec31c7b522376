"""Helpers for the versioning tests: label through the real Label Studio API, run the real CLI."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from datalabel import embedded, gcs, ls
from datalabel.tasks import Task

ROOT = Path(__file__).resolve().parent.parent


def choice(label: str) -> list[dict]:
    return [{"type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": [label]}}]


def tasks_by_image(ls_client, project_id: int) -> dict[str, Task]:
    """Tasks of a project keyed by the image's file name."""
    out = {}
    for obj in ls.iter_task_json(ls_client, project_id):
        task = Task.from_json(obj)
        out[gcs.gs_url_from_ref(task.data["image"]).rsplit("/", 1)[-1]] = task
    return out


def annotate(ls_client, task_id: int, label: str) -> int:
    return ls_client.annotations.create(id=task_id, result=choice(label)).id


def sync(ls_client, project_id: int, kind: str) -> None:
    """Sync the project's (only) storage of `kind` and wait for it."""
    storage = ls.list_storages(ls_client, project_id, kind)[0]
    ls.sync_storage(ls_client, storage.id, kind)
    ls.wait_storage(ls_client, storage.id, kind)


def upload_images(bucket, folder: Path, names: list[str]) -> list[str]:
    urls = []
    for name in names:
        key = f"{embedded.SOURCE_PREFIX}{name}"
        bucket.blob(key).upload_from_filename(str(folder / "images" / name))
        urls.append(f"gs://{bucket.name}/{key}")
    return urls


def imagefolder_labels(folder: Path) -> dict[str, str]:
    """file name -> class, from an ImageFolder export's labels.csv (checked against the class folders)."""
    out = {}
    with open(folder / "labels.csv", newline="", encoding="utf-8") as fp:
        for row in csv.DictReader(fp):
            path = Path(row["file_name"])
            assert (folder / path).is_file(), f"{path} listed but missing"
            out[path.name] = row["label"]
    return out


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 300):
    """`dataversion ARGS` in a subprocess, as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "dataversion", *args], env=full_env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


NOTEBOOK = ROOT / "data-versioning" / "notebooks" / "read_dataset_version.ipynb"


def run_notebook(tmp_path: Path, env: dict[str, str]) -> dict:
    """Run the Colab notebook with `env` as its parameters; its summary (the last line it prints) as a dict."""
    import json

    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment: that is how the notebook takes parameters
    try:
        NotebookClient(nb, timeout=240, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    last = nb.cells[-1]
    text = "".join(o.get("text", "") for o in last.outputs if o.get("output_type") == "stream")
    return json.loads(text.strip().splitlines()[-1])
