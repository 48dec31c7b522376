"""`datalabel projects`: list, show, create, delete Label Studio projects."""
from __future__ import annotations

from typing import Optional

import typer

from .options import (ANNOTATORS, API_KEY, CONFIG_FILE, JSON, LABELS, LABELS_FILE, OVERLAP_PERCENT, TEMPLATE, URL,
                      ID_MAX, client, say)

app = typer.Typer(help="Label Studio projects: list, show, create (from a template or an XML config), delete.",
                  no_args_is_help=True)


@app.command("templates")
def templates_cmd(json_out: bool = JSON):
    """List the label-config templates `projects create --template` accepts.

    Example: datalabel projects templates
    """
    from ..labelconfig import TEMPLATES
    from ..output import print_json, print_table

    rows = [{"template": name, "control": tag, "object": obj} for name, (tag, obj, _, _) in TEMPLATES.items()]
    print_json(rows) if json_out else print_table(rows)


@app.command("list")
def list_cmd(url: str = URL, api_key: str = API_KEY, json_out: bool = JSON):
    """List projects with their task and labeled-task counts.

    Example: datalabel projects list --json
    """
    from ..output import print_json, print_table
    from ..projects import project_rows

    rows = project_rows(client(url, api_key))
    if json_out:
        print_json(rows)
    elif rows:
        print_table(rows, title="Projects")
    else:
        say("no projects yet; create one with `datalabel projects create` or `datalabel setup`")


@app.command("show")
def show_cmd(project: int = typer.Argument(..., min=1, max=ID_MAX, help="Project id."), url: str = URL, api_key: str = API_KEY,
             config: bool = typer.Option(False, "--config", help="Print the label-config XML only."),
             json_out: bool = JSON):
    """Show one project: labels, counts, connected storages.

    Example: datalabel projects show 3
    """
    from ..output import print_json, print_table
    from ..projects import describe_project

    info = describe_project(client(url, api_key), project)
    if config:
        typer.echo(info["label_config"])
        return
    if json_out:
        print_json(info)
        return
    say(f"project {info['id']}: {info['title']} ({info['kind']})")
    say(f"labels: {', '.join(info['labels']) or '-'}")
    say(f"tasks: {info['tasks']}, labeled: {info['labeled']}, annotations: {info['annotations']}, "
        f"skipped: {info['skipped_annotations']}, predictions: {info['predictions']}")
    say(f"overlap: {info['overlap']['annotators']} annotator(s) per task for {info['overlap']['percent']}% of the tasks")
    if info["storages"]:
        print_table(info["storages"], ["id", "kind", "bucket", "prefix", "regex", "status", "last_sync"], "Storages")
    else:
        say(f"no storage connected; see `datalabel storage add-source {info['id']} --help`")


@app.command("create")
def create_cmd(
    title: str = typer.Option(..., "--title", "-t", help="Project title (a project with this title is reused)."),
    template: Optional[str] = TEMPLATE, labels: Optional[str] = LABELS,
    labels_file: Optional[str] = LABELS_FILE, config_file: Optional[str] = CONFIG_FILE,
    description: str = typer.Option("", "--description", help="Project description."),
    annotators: Optional[int] = ANNOTATORS, overlap_percent: Optional[int] = OVERLAP_PERCENT,
    url: str = URL, api_key: str = API_KEY, json_out: bool = JSON,
):
    """Create a project from a template and labels, or from a label-config XML file.

    The config is checked (locally, then by the server) before anything is created. Same title and config again: reused.

    Examples:
      datalabel projects create --title Cheese --template image-classification --labels brie,gouda
      datalabel projects create --title Boxes --template object-detection --labels-file labels.txt
      datalabel projects create --title Custom --config my_config.xml
      datalabel projects create --title Pairs --template image-classification --labels a,b --annotators 2
    """
    from ..output import print_json
    from ..projects import check_overlap, create_project, resolve_config, set_overlap

    xml = resolve_config(template, labels, labels_file, config_file)  # before any call
    check_overlap(annotators, overlap_percent)
    lsc = client(url, api_key)
    project, created = create_project(lsc, title, xml, description)
    overlap = set_overlap(lsc, project.id, annotators, overlap_percent)
    if json_out:
        print_json({"id": project.id, "title": project.title, "created": created,
                    "overlap": {k: overlap[k] for k in ("annotators", "percent")}})
    else:
        say(f"{'created' if created else 'reused existing'} project {project.id}: {project.title}")


@app.command("overlap")
def overlap_cmd(project: int = typer.Argument(..., min=1, max=ID_MAX, help="Project id."),
                annotators: Optional[int] = ANNOTATORS, overlap_percent: Optional[int] = OVERLAP_PERCENT,
                url: str = URL, api_key: str = API_KEY, json_out: bool = JSON):
    """Show or set how many annotators label each task, and for which share of the tasks (Label Studio's overlap).

    Example: datalabel projects overlap 3 --annotators 3 --overlap-percent 20
    """
    from ..output import print_json
    from ..projects import set_overlap

    result = set_overlap(client(url, api_key), project, annotators, overlap_percent)
    if json_out:
        print_json(result)
    else:
        say(f"project {project}: {result['annotators']} annotator(s) per task for {result['percent']}% of the tasks")


@app.command("delete")
def delete_cmd(project: int = typer.Argument(..., min=1, max=ID_MAX, help="Project id."),
               yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
               url: str = URL, api_key: str = API_KEY):
    """Delete a project with its tasks and annotations (files in the bucket stay).

    Example: datalabel projects delete 3 --yes
    """
    import sys

    from .. import ls
    from ..errors import ConfigError, LabError
    from ..projects import delete_project

    lsc = client(url, api_key)
    found = ls.get_project(lsc, project)
    if not yes and not sys.stdin.isatty():
        raise ConfigError(f"delete project {project}: no terminal to ask for confirmation; pass --yes to delete it")
    if not yes and not typer.confirm(f"delete project {found.id} {found.title!r} and its {found.task_number or 0} task(s)?"):
        raise LabError(f"project {project} not deleted (answered no)")
    delete_project(lsc, project)
    say(f"deleted project {project}: {found.title}")
