"""`datalabel storage`: connect buckets to a project as source (images in) and target (labels out), sync, remove."""
from __future__ import annotations

from typing import Optional

import typer

from .options import API_KEY, BUCKET, CREDENTIALS, ID_MAX, JSON, URL, client, say, settings

app = typer.Typer(help="Cloud storage of a project: add source/target, list, sync, remove. Adding the same "
                       "bucket+prefix twice reuses the storage.", no_args_is_help=True)

PROJECT = typer.Argument(..., min=1, max=ID_MAX, help="Project id.")
COLUMNS = ["id", "kind", "bucket", "prefix", "regex", "status", "last_sync", "last_sync_count"]


def _print(rows: list[dict], json_out: bool, title: str) -> None:
    from ..output import print_json, print_table

    print_json(rows) if json_out else print_table(rows, [c for c in COLUMNS + ["synced"] if any(c in r for r in rows)], title)


@app.command("add-source")
def add_source_cmd(
    project: int = PROJECT,
    prefix: str = typer.Option("images_unlabeled/", "--prefix", "-p", help="Folder in the bucket holding the files."),
    regex: str = typer.Option(r".*", "--regex", help="Only import object names matching this regex, e.g. '.*\\.jpe?g$'."),
    blob_urls: bool = typer.Option(True, "--blob-urls/--no-blob-urls",
                                   help="One task per file (blob URL), or read each file as a JSON task."),
    recursive: bool = typer.Option(True, "--recursive/--no-recursive", help="Include files in sub-folders."),
    sync: bool = typer.Option(False, "--sync", help="Import the files as tasks right away."),
    bucket: str = BUCKET, credentials: str = CREDENTIALS, url: str = URL, api_key: str = API_KEY,
    json_out: bool = JSON,
):
    """Connect gs://BUCKET/PREFIX as the project's source storage (files become tasks).

    The bucket must exist and at least one file must match, checked before anything is created.

    Example: datalabel storage add-source 3 --bucket my-bucket --prefix images_unlabeled/ --regex '.*\\.png$' --sync
    """
    from ..projects import add_source, check_credentials

    check_credentials(credentials)
    conf = settings(url, api_key, bucket, credentials)
    name = conf.require_bucket()
    row = add_source(client(url, api_key, bucket, credentials), project, name, prefix, regex, blob_urls,
                     credentials, sync, recursive)
    if json_out:
        _print([row], True, "")
        return
    say(f"{'added' if row['created'] else 'reused'} source storage {row['id']}: gs://{row['bucket']}/{row['prefix']} "
        f"({row['files']} matching file(s))" + (f"; imported {row['synced']} task(s)" if sync else ""))


@app.command("add-target")
def add_target_cmd(
    project: int = PROJECT,
    prefix: str = typer.Option("labels/", "--prefix", "-p", help="Folder in the bucket annotations are written to."),
    sync: bool = typer.Option(False, "--sync", help="Write existing annotations right away."),
    bucket: str = BUCKET, credentials: str = CREDENTIALS, url: str = URL, api_key: str = API_KEY,
    json_out: bool = JSON,
):
    """Connect gs://BUCKET/PREFIX as the project's target storage (annotations are written there as JSON).

    Example: datalabel storage add-target 3 --bucket my-bucket --prefix labels/
    """
    from ..projects import add_target, check_credentials

    check_credentials(credentials)
    name = settings(url, api_key, bucket, credentials).require_bucket()
    row = add_target(client(url, api_key, bucket, credentials), project, name, prefix, credentials, sync)
    if json_out:
        _print([row], True, "")
        return
    say(f"{'added' if row['created'] else 'reused'} target storage {row['id']}: gs://{row['bucket']}/{row['prefix']}"
        + (f"; wrote {row['written']} existing annotation(s) to it" if row.get("written") else "")
        + (f"; synced {row['synced']} annotation(s)" if sync else ""))


@app.command("list")
def list_cmd(project: int = PROJECT, url: str = URL, api_key: str = API_KEY, json_out: bool = JSON):
    """List the project's source and target storages.

    Example: datalabel storage list 3
    """
    from .. import ls
    from ..projects import storage_rows

    lsc = client(url, api_key)
    ls.get_project(lsc, project)
    rows = storage_rows(lsc, project)
    if rows or json_out:
        _print(rows, json_out, f"Storages of project {project}")
    else:
        say(f"project {project} has no storage; see `datalabel storage add-source --help`")


@app.command("sync")
def sync_cmd(
    project: int = PROJECT,
    direction: str = typer.Option("both", "--direction", "-d",
                                  help="source (bucket -> tasks), target (annotations -> bucket) or both."),
    storage_id: Optional[int] = typer.Option(None, "--id", min=1, max=ID_MAX, help="Only this storage."),
    url: str = URL, api_key: str = API_KEY, json_out: bool = JSON,
):
    """Sync storages: import new files as tasks, and/or write annotations to the bucket.

    Example: datalabel storage sync 3 --direction source
    """
    from ..projects import sync

    from ..output import print_json, print_table

    rows = sync(client(url, api_key), project, direction, storage_id)
    if json_out:
        print_json(rows)
    else:
        print_table(rows, ["id", "kind", "bucket", "prefix", "status", "synced"], f"Synced storages of project {project}")


@app.command("remove")
def remove_cmd(
    project: int = PROJECT,
    storage_id: Optional[int] = typer.Option(None, "--id", min=1, max=ID_MAX, help="Storage id (see `datalabel storage list`)."),
    kind: Optional[str] = typer.Option(None, "--kind", help="source or target (default: both)."),
    bucket: Optional[str] = typer.Option(None, "--bucket", "-b", help="Remove the storage(s) on this bucket..."),
    prefix: Optional[str] = typer.Option(None, "--prefix", "-p", help="...and/or this prefix."),
    url: str = URL, api_key: str = API_KEY, json_out: bool = JSON,
):
    """Disconnect a storage from the project. Files in the bucket and tasks already imported stay.

    Examples:
      datalabel storage remove 3 --id 5 --kind source
      datalabel storage remove 3 --bucket my-bucket --prefix labels/ --kind target
    """
    from ..errors import ConfigError
    from ..projects import remove_storage

    if kind is not None and kind not in ("source", "target"):
        raise ConfigError(f"unknown --kind {kind!r}; choose source or target")
    rows = remove_storage(client(url, api_key), project, storage_id, kind, bucket, prefix)
    if json_out:
        _print(rows, True, "")
    else:
        for row in rows:
            say(f"removed {row['kind']} storage {row['id']}: gs://{row['bucket']}/{row['prefix']}")
