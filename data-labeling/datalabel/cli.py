"""`datalabel`: the labeling CLI. Commands are grouped by noun, as Label Studio's SDK groups its resources.

Each command parses its options, calls one library function, and prints the result. Errors a person can act on
(LabError) are printed as one line with a non-zero exit, here and only here.
"""
from __future__ import annotations

import typer

from .commands import al, bucket, export, projects, quality, setup, stats, storage
from .commands.options import API_KEY, COUNT_MAX, JSON, URL
from .output import print_json, run_app

app = typer.Typer(
    help="Label Studio projects on Google Cloud Storage, from the command line.\n\n"
    "Configuration comes from flags, else LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY, GCS_BUCKET_NAME, "
    "GOOGLE_APPLICATION_CREDENTIALS (environment or ./.env).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root() -> None:
    """Label Studio projects on Google Cloud Storage, from the command line."""


@app.command()
def status(url: str = URL, api_key: str = API_KEY, json_out: bool = JSON):
    """Check that Label Studio answers and the API token is accepted.

    Example: datalabel status
    """
    from . import ls
    from .config import Settings

    settings = Settings.load(url=url, api_key=api_key)
    client = ls.connect(settings, check=False)
    user = ls.whoami(client)
    info = {"url": settings.url, "user": user["email"], "projects": len(ls.list_projects(client))}
    if json_out:
        print_json(info)
    else:
        typer.echo(f"Label Studio at {info['url']} is up; logged in as {info['user']}; {info['projects']} project(s)")


@app.command()
def demo(
    bucket: str = typer.Option("datalabel-local", "--bucket", "-b", envvar="GCS_BUCKET_NAME",
                               help="Emulator bucket to create and fill."),
    limit: int = typer.Option(None, "--limit", min=1, max=COUNT_MAX, envvar="DEMO_LIMIT", show_envvar=True,
                              help="Upload only the first N sample images (the stack's DEMO_LIMIT by default)."),
    annotators: int = typer.Option(0, "--annotators", min=0, max=100, help="Also make N annotator users, each with an API "
                                   "token (secrets/annotators.json), so several people can label through the API "
                                   "(embedded stack)."),
    url: str = URL, api_key: str = API_KEY, json_out: bool = JSON,
):
    """Seed the GCS emulator with the demo project: 1,797 digits under images_unlabeled/, a project "Digits demo"
    with source and target storage, synced. Idempotent: a second run reuses everything.

    Only for the emulator (STORAGE_EMULATOR_HOST set): the stack's Docker emulator mode runs it on start.

    Example: datalabel demo
    """
    import tempfile
    from pathlib import Path

    from . import embedded, ls
    from .config import Settings
    from .errors import ConfigError
    from .output import progress

    settings = Settings.load(url=url, api_key=api_key, bucket=bucket)
    if not settings.emulator_host:
        raise ConfigError("demo seeds the local GCS emulator only: set STORAGE_EMULATOR_HOST "
                          "(./docker-shell.sh --emulator does)")
    client = ls.connect(settings)
    with tempfile.TemporaryDirectory(prefix="datalabel-demo-") as samples, \
            progress(f"upload sample images to gs://{bucket}/{embedded.SOURCE_PREFIX}", unit="images") as advance:
        project_id = embedded.seed_demo(client, bucket, Path(samples), limit=limit, progress=advance)
    info = {"project": project_id, "title": embedded.DEMO_TITLE, "bucket": bucket, "url": settings.url}
    if annotators:
        info["annotators"] = embedded.add_annotators(Path.cwd(), client, annotators)
    if json_out:
        print_json(info)
    else:
        typer.echo(f"project {project_id}: {embedded.DEMO_TITLE}, images in gs://{bucket}/{embedded.SOURCE_PREFIX}, "
                   f"ready to label at {settings.browser_url}/projects/{project_id}")
        if annotators:
            typer.echo(f"{annotators} annotator(s) with their own API tokens in {info['annotators']['file']}: "
                       + ", ".join(a["email"] for a in info["annotators"]["annotators"]))


# Sub-command groups (one module each under commands/) and the two single commands, registered by name here so
# the whole command tree reads in one place.
app.add_typer(projects.app, name="projects")
app.add_typer(storage.app, name="storage")
app.add_typer(bucket.app, name="bucket")
app.add_typer(export.app, name="export")
app.add_typer(al.app, name="al")
app.add_typer(quality.app, name="quality")
app.command("setup")(setup.setup_cmd)
app.command("stats")(stats.stats_cmd)


def main(argv: list[str] | None = None) -> None:
    run_app(app, "datalabel", argv)
