"""`datalabel bucket`: upload a folder, show bucket info, manage CORS for the labeling UI."""
from __future__ import annotations

from typing import List, Optional

import typer

from .options import BUCKET, CREDENTIALS, JSON, URL, say, settings

app = typer.Typer(help="The GCS bucket: upload files, show info, CORS for the labeling UI.", no_args_is_help=True)
cors_app = typer.Typer(help="CORS rules that let the labeling UI's origin read the bucket.", no_args_is_help=True)
app.add_typer(cors_app, name="cors")


def _bucket(bucket: str | None, credentials: str | None):
    from .. import gcs
    from ..config import load_credentials

    load_credentials(credentials)
    name = settings(bucket=bucket, credentials=credentials).require_bucket()
    return gcs.bucket(gcs.client(credentials), name)


@app.command("upload")
def upload_cmd(
    folder: str = typer.Argument(..., help="Local folder; its files keep their relative paths under the prefix."),
    prefix: str = typer.Option("images_unlabeled/", "--prefix", "-p", help="Destination folder in the bucket."),
    workers: int = typer.Option(16, "--workers", min=1, max=1024, help="Parallel uploads."),
    bucket: str = BUCKET, credentials: str = CREDENTIALS, json_out: bool = JSON,
):
    """Upload a local folder to gs://BUCKET/PREFIX in parallel; files already there with the same MD5 are skipped.

    Example: datalabel bucket upload ./images --bucket my-bucket --prefix images_unlabeled/
    """
    from pathlib import Path

    from .. import gcs
    from ..errors import ConfigError
    from ..output import print_json, progress

    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"not a folder: {folder}")
    bkt = _bucket(bucket, credentials)
    total = sum(1 for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    with progress(f"upload to gs://{bkt.name}/{gcs.norm_prefix(prefix)}", total, unit="files") as advance:
        result = gcs.upload_folder(bkt, root, prefix, workers=workers, progress=advance)
    result = {"bucket": bkt.name, "prefix": gcs.norm_prefix(prefix), **result}
    if json_out:
        print_json(result)
    else:
        say(f"gs://{bkt.name}/{result['prefix']}: uploaded {result['uploaded']}, "
            f"skipped {result['skipped']} unchanged, {result['total']} file(s) in {folder}")


@app.command("info")
def info_cmd(prefix: str = typer.Option("", "--prefix", "-p", help="Count objects under this prefix only."),
             bucket: str = BUCKET, credentials: str = CREDENTIALS, json_out: bool = JSON):
    """Show a bucket's location, storage class, CORS rules and the objects under a prefix.

    Example: datalabel bucket info --bucket my-bucket --prefix images_unlabeled/
    """
    from .. import gcs
    from ..output import print_json

    info = gcs.bucket_info(_bucket(bucket, credentials), prefix)
    if json_out:
        print_json(info)
        return
    say(f"bucket: gs://{info['bucket']}  location: {info['location']}  class: {info['storage_class']}")
    say(f"objects under gs://{info['bucket']}/{info['prefix']}: {info['objects']} ({info['bytes']} bytes)")
    origins = sorted({o for rule in info["cors"] for o in rule.get("origin", [])})
    say(f"CORS origins: {', '.join(origins) if origins else 'none'}")


@cors_app.command("set")
def cors_set_cmd(
    origin: Optional[List[str]] = typer.Option(None, "--origin", "-o",
                                               help="Allowed origin (repeatable). Default: the Label Studio URL."),
    max_age: int = typer.Option(3600, "--max-age", min=0, max=86400, help="Seconds browsers may cache the rule (at most a day)."),
    url: str = URL, bucket: str = BUCKET, credentials: str = CREDENTIALS, json_out: bool = JSON,
):
    """Allow the labeling UI's origin (GET/HEAD) to read the bucket. Never `*` unless you pass it yourself.

    Examples:
      datalabel bucket cors set --bucket my-bucket
      datalabel bucket cors set --origin https://labels.example.com
    """
    from .. import gcs
    from ..output import print_json

    origins = list(origin or []) or [settings(url=url).browser_url]
    rules = gcs.set_cors(_bucket(bucket, credentials), origins, max_age=max_age)
    if json_out:
        print_json(rules)
    else:
        say(f"CORS set: {', '.join(o for r in rules for o in r.get('origin', []))} may GET/HEAD objects")


@cors_app.command("show")
def cors_show_cmd(bucket: str = BUCKET, credentials: str = CREDENTIALS, json_out: bool = JSON):
    """Show the bucket's CORS rules.

    Example: datalabel bucket cors show --json
    """
    from .. import gcs
    from ..output import print_json, print_table

    rules = gcs.get_cors(_bucket(bucket, credentials))
    if json_out:
        print_json(rules)
    elif rules:
        print_table([{"origin": ", ".join(r.get("origin", [])), "method": ", ".join(r.get("method", [])),
                      "maxAgeSeconds": r.get("maxAgeSeconds")} for r in rules], title="CORS")
    else:
        say("no CORS rules")


@cors_app.command("remove")
def cors_remove_cmd(
    origin: Optional[List[str]] = typer.Option(None, "--origin", "-o",
                                               help="Origin to remove (repeatable). Default: the Label Studio URL."),
    all_rules: bool = typer.Option(False, "--all", help="Remove every CORS rule, other apps' too."),
    url: str = URL, bucket: str = BUCKET, credentials: str = CREDENTIALS, json_out: bool = JSON,
):
    """Stop letting an origin (default: the Label Studio URL) read the bucket; rules for other origins stay.

    Examples:
      datalabel bucket cors remove --bucket my-bucket
      datalabel bucket cors remove --all
    """
    from .. import gcs
    from ..errors import ConfigError
    from ..output import print_json

    if all_rules and origin:
        raise ConfigError("give --origin or --all, not both")
    origins = None if all_rules else (list(origin or []) or [settings(url=url).browser_url])
    bkt = _bucket(bucket, credentials)
    rules = gcs.remove_cors(bkt, origins)
    if json_out:
        print_json(rules)
    elif origins is None:
        say(f"CORS rules removed from gs://{bkt.name}")
    else:
        say(f"CORS: {', '.join(origins)} removed from gs://{bkt.name}; {len(rules)} other rule(s) kept")
