"""`dataversion`: labeled snapshots as DVC dataset versions in a gs:// remote.

    dataversion init                      git + DVC in the dataset repository, remote gs://BUCKET/dvc_store
    dataversion snapshot --project 3      annotations (target storage) + images -> dataset/ + manifest.json
    dataversion commit -m "first labels"  dvc add, dvc push, git commit, tag dataset_vN
    dataversion versions | diff | checkout

Each command parses its options, calls one library function (repo.py, snapshot.py, load.py) and prints the
result. Errors a person can act on (LabError) are printed as one line with a non-zero exit, here only.
"""
from __future__ import annotations

from pathlib import Path

import typer

import dataversion  # noqa: F401  (environment for gcsfs/DVC)
from datalabel.api import Settings, connect, print_json, print_table, progress, run_app, setting
from datalabel.api import cli_options as opts

from . import repo as repo_mod

app = typer.Typer(
    help="Version labeled snapshots (annotations + images) as DVC datasets in a gs:// remote.\n\n"
    "Configuration comes from flags, else DATASET_REPO, GCS_BUCKET_NAME, LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY, "
    "GOOGLE_APPLICATION_CREDENTIALS, GCS_MOUNT_DIR (environment or ./.env).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

RepoOpt = typer.Option(".", "--repo", envvar="DATASET_REPO", show_envvar=True,
                       help="The dataset repository (git + DVC).")
ReadRepoOpt = typer.Option(".", "--repo", envvar="DATASET_REPO", show_envvar=True,
                           help="The dataset repository: a folder, or the git URL of a pushed one (read without "
                           "a full clone; credentials from the secrets folder).")
BucketOpt = opts.BUCKET
JsonOpt = opts.JSON


@app.callback()
def _root() -> None:
    """Version labeled snapshots (annotations + images) as DVC datasets in a gs:// remote."""


def _bucket(bucket: str | None) -> str:
    return Settings.load(bucket=bucket).require_bucket()


@app.command()
def init(
    repo: Path = RepoOpt,
    bucket: str = BucketOpt,
    remote_prefix: str = typer.Option("dvc_store", help="Folder of the bucket that holds DVC's data."),
    endpoint: str = typer.Option(None, envvar="STORAGE_EMULATOR_HOST", show_envvar=True,
                                 help="Another storage endpoint, e.g. the local emulator http://127.0.0.1:9023."),
    jobs: int = typer.Option(None, min=1, max=opts.COUNT_MAX, help="Parallel DVC transfers (default: 4 with an emulator endpoint)."),
    git_remote: str = typer.Option(None, "--git-remote", help="The team's git repository for the versions "
                                   "(origin): `commit` pushes each version there. Credentials: secrets/git_token "
                                   "or secrets/git_ssh_key + secrets/git_known_hosts."),
    json_out: bool = JsonOpt,
):
    """Make REPO a dataset repository: git (if none), DVC, remote gs://BUCKET/dvc_store, analytics off.

    Example: dataversion init --repo /work/datasets --bucket my-labels --git-remote https://github.com/org/labels.git
    """
    info = repo_mod.init(repo, _bucket(bucket), remote_prefix, endpoint,
                         credentials_file=setting("GOOGLE_APPLICATION_CREDENTIALS"),
                         jobs=jobs or (4 if endpoint else None), git_remote=git_remote)
    if json_out:
        print_json(info)
    else:
        typer.echo(f"dataset repository {info['repo']}: DVC remote {info['remote']}"
                   + (f" at {info['endpoint']}" if info["endpoint"] else "")
                   + f"; git remote {info['git_remote'] or '(none: versions stay local)'}")


@app.command()
def snapshot(
    repo: Path = RepoOpt,
    bucket: str = BucketOpt,
    project: int = typer.Option(None, "--project", "-p", min=1, max=opts.ID_MAX, help="Label Studio project id (label config read via API)."),
    label_config: Path = typer.Option(None, "--label-config", help="Label config XML file (instead of the API)."),
    fmt: str = typer.Option("imagefolder", "--format", "-f", help="imagefolder, coco or yolo (any export format)."),
    labels_prefix: str = typer.Option("labels/", help="Where the project's target storage writes annotations."),
    policy: str = opts.POLICY,
    mount: Path = typer.Option(None, envvar="GCS_MOUNT_DIR", show_envvar=True,
                               help="Read the bucket through this gcsfuse mount instead of the GCS API."),
    out: Path = typer.Option(None, help="Output folder (default: REPO/dataset)."),
    url: str = opts.URL,
    api_key: str = opts.API_KEY,
    concurrency: int = typer.Option(None, min=1, max=opts.COUNT_MAX, help="Requests in flight (default 32; 4 against the emulator)."),
    json_out: bool = JsonOpt,
):
    """Build REPO/dataset from the target-storage annotations and the source images, with manifest.json.

    Example: dataversion snapshot --project 3 --format coco
    """
    from . import snapshot as snap

    client = None
    if label_config is None and project is not None:
        client = connect(Settings.load(url=url, api_key=api_key))
    config, project_id = snap.load_label_config(project, label_config, client)
    root = repo_mod.require_repo(repo) if out is None else None
    dest = out or root / repo_mod.DATASET_DIR
    name = _bucket(bucket)
    source = snap.open_source(name, mount, setting("GOOGLE_APPLICATION_CREDENTIALS"), concurrency)
    with progress("snapshot: read target storage", unit="files") as advance:
        manifest = snap.snapshot(dest, name, fmt, config, project_id, labels_prefix, policy, progress=advance,
                                 source=source, cache=snap.cache_path(root, name, labels_prefix) if root else None,
                                 client=client)
    late = len(getattr(source, "via_api", ()))
    if late:
        typer.echo(f"note: {late} file(s) the mount did not show yet (gcsfuse refreshes its listings after its "
                   "metadata TTL) were read through the GCS API", err=True)
    summary = {"out": str(dest), "source": manifest["source"]["labels"], "items": manifest["counts"]["items"],
               "format": manifest["format"],
               "per_class": manifest["counts"]["per_class"], "per_annotator": manifest["counts"]["per_annotator"],
               "label_config_digest": manifest["label_config_digest"],
               "label_studio_project": manifest["label_studio_project"], "quality": manifest["quality"]}
    if json_out:
        print_json(summary)
    else:
        typer.echo(f"read {summary['source']}")
        typer.echo(f"{summary['items']} labeled item(s) as {summary['format']} in {dest}; classes "
                   + ", ".join(f"{k}={v}" for k, v in summary["per_class"].items())
                   + "\nnext: dataversion commit -m \"...\"")


@app.command()
def commit(
    repo: Path = RepoOpt,
    message: str = typer.Option(None, "--message", "-m", help="What changed in this version."),
    tag: str = typer.Option(None, "--tag", help="Tag name (default: the next free dataset_vN)."),
    json_out: bool = JsonOpt,
):
    """Version REPO/dataset: dvc add, dvc push to the bucket, git commit and tag dataset_vN, pushed together
    (git push --atomic) to the git remote if the repository has one.

    If a push fails nothing is committed or tagged; run the same command again to resume. If someone else took
    the number meanwhile, the version gets the next free one.

    Example: dataversion commit -m "200 more digits, 3 relabeled"
    """
    with progress("dvc add, dvc push, git commit, tag and push", unit=None):
        info = repo_mod.commit(repo, message, tag)
    if json_out:
        print_json(info)
    elif info["tag"] is None:
        typer.echo(f"nothing changed since {info['unchanged_since']}: no new version")
    else:
        typer.echo(f"{info['tag']}: {info['items']} item(s), commit {info['commit'][:12]}, data in {info['remote']}")
        if info["taken"]:
            typer.echo(f"  ({', '.join(info['taken'])} taken by another commit meanwhile: this version follows it)")
        typer.echo(f"  pushed with its tag to {info['git_remote']}" if info["git_remote"] else
                   "  local only: no git remote (dataversion init --git-remote URL adds one)")


@app.command()
def versions(repo: str = ReadRepoOpt, json_out: bool = JsonOpt):
    """List dataset versions: tag, date, item count, classes.

    Example: dataversion versions --repo https://github.com/org/labels.git
    """
    rows = repo_mod.list_versions(repo)
    if json_out:
        print_json(rows)
        return
    if not rows:
        typer.echo("no dataset versions yet; run `dataversion snapshot` then `dataversion commit`")
        return
    print_table([{**r, "classes": ", ".join(f"{k}={v}" for k, v in r["classes"].items()),
                  "agreement": repo_mod.agreement_text(r["agreement"])} for r in rows],
                ["tag", "date", "items", "format", "classes", "agreement", "flagged", "message"])


@app.command()
def diff(
    old: str = typer.Argument(..., help="Older version (tag or commit)."),
    new: str = typer.Argument(..., help="Newer version (tag or commit)."),
    repo: str = ReadRepoOpt,
    json_out: bool = JsonOpt,
):
    """Items added, removed and relabeled between two versions (from the manifests; no download).

    Example: dataversion diff dataset_v1 dataset_v2
    """
    out = repo_mod.diff(repo, old, new)
    if json_out:
        print_json(out)
        return
    typer.echo(f"{old} -> {new}: {len(out['added'])} added, {len(out['removed'])} removed, "
               f"{len(out['relabeled'])} relabeled")
    for source in out["added"]:
        typer.echo(f"  + {source}")
    for source in out["removed"]:
        typer.echo(f"  - {source}")
    for item in out["relabeled"]:
        typer.echo(f"  ~ {item['source']}: {','.join(item['old'])} -> {','.join(item['new'])}")
    if out["label_config_changed"]:
        typer.echo("  (the label config changed)")
    quality = out["quality"]
    typer.echo(f"  agreement: {repo_mod.agreement_text(quality['old']['agreement'])} -> "
               f"{repo_mod.agreement_text(quality['new']['agreement'])}; flagged as likely mislabeled: "
               f"{_count(quality['old']['flagged'])} -> {_count(quality['new']['flagged'])}")


def _count(value) -> str:
    return "-" if value is None else str(value)


@app.command()
def checkout(
    version: str = typer.Argument(..., help="Version to read (tag or commit)."),
    dest: Path = typer.Argument(..., help="New or empty folder to write it into (not in the bucket mount)."),
    repo: str = ReadRepoOpt,
    json_out: bool = JsonOpt,
):
    """Copy a dataset version into a separate folder (the workspace and the bucket are left alone).

    Example: dataversion checkout dataset_v1 /tmp/digits_v1
    """
    with progress(f"Reading {version}", unit=None):
        info = repo_mod.checkout(repo, version, dest)
    if json_out:
        print_json(info)
    else:
        typer.echo(f"{version}: {info['files']} file(s), {info['items']} item(s) in {info['dest']}")


def main(argv: list[str] | None = None) -> None:
    run_app(app, "dataversion", argv)


if __name__ == "__main__":
    main()
