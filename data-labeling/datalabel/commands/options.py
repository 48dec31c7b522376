"""Options and helpers shared by the commands of `datalabel` (and defined once: same flag, same help everywhere)."""
from __future__ import annotations

import typer

URL = typer.Option(None, "--url", envvar="LABEL_STUDIO_URL", show_envvar=True, help="Label Studio URL.")
API_KEY = typer.Option(None, "--api-key", envvar="LABEL_STUDIO_API_KEY", show_envvar=True,
                       help="Label Studio API token (Account & Settings > Access Token).")
BUCKET = typer.Option(None, "--bucket", "-b", envvar="GCS_BUCKET_NAME", show_envvar=True, help="GCS bucket name.")
CREDENTIALS = typer.Option(None, "--credentials", envvar="GOOGLE_APPLICATION_CREDENTIALS", show_envvar=True,
                           help="Service-account JSON key; its content is given to Label Studio for the storage.")
JSON = typer.Option(False, "--json", help="Print JSON (for scripts) instead of a table.")
# How a project's label config is given (projects create, setup): a template + labels, or an XML file.
TEMPLATE = typer.Option(None, "--template", help="Template name; see `datalabel projects templates`.")
LABELS = typer.Option(None, "--labels", "-l", help="Comma-separated labels, e.g. brie,gouda.")
LABELS_FILE = typer.Option(None, "--labels-file", help="File with one label per line.")
CONFIG_FILE = typer.Option(None, "--config", help="A label-config XML file instead of a template.")
# Label Studio's project overlap (projects create / overlap, setup)
ANNOTATORS = typer.Option(None, "--annotators", min=1, max=100,
                          help="How many people label each task (Label Studio's overlap, "
                          "maximum_annotations; default 1).")
OVERLAP_PERCENT = typer.Option(None, "--overlap-percent", min=0, max=100,
                               help="Share of the tasks, in percent, that get that many annotators (the others one; "
                                    "default 100).")
POLICY = typer.Option("latest", "--policy",
                      help="Annotation per task when several exist: latest, ground-truth (else latest), majority.")


def settings(url=None, api_key=None, bucket=None, credentials=None):
    from ..config import Settings

    return Settings.load(url=url, api_key=api_key, bucket=bucket, credentials_file=credentials)


def client(url=None, api_key=None, bucket=None, credentials=None):
    """A checked SDK client: fails with one line when the server is down or the token is wrong."""
    from .. import ls

    return ls.connect(settings(url, api_key, bucket, credentials))


def say(message: str) -> None:
    typer.echo(message)


# Bounds of number options: every int and float option carries min and max (typer refuses the rest before any
# request), every float also `finite` (typer's range check lets NaN through: NaN compares false both ways).
ID_MAX = 2**31 - 1  # Label Studio's ids (a 32-bit integer column)
SEED_MAX = 2**32 - 1  # numpy's seeds
COUNT_MAX = 1_000_000  # counts and sizes: far beyond any real run, far below what would overflow


def path_given(value):
    """Typer callback: a path that names something ("" and "." name the current folder by accident)."""
    if value is not None and str(value).strip() in ("", "."):
        raise typer.BadParameter("give a path (an empty one means the current folder)")
    return value


def finite(value: float | None) -> float | None:
    """Typer callback: a finite number (not nan, inf)."""
    import math

    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value
