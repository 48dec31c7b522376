"""`datalabel status` and `datalabel projects ...` end to end against the real Label Studio server."""
from __future__ import annotations

import uuid

import pytest
import typer.main

from cli_helpers import assert_user_error, run_cli
from datalabel import embedded, ls
from datalabel.labelconfig import TEMPLATES, build_config, parse_config
from datalabel.projects import create_project


def _titles(client) -> list[str]:
    return [p.title for p in ls.list_projects(client)]


def _title(stem: str) -> str:
    return f"{stem} {uuid.uuid4().hex[:8]}"


# --- connection -----------------------------------------------------------------------------------------------


def test_status_reports_server_and_user(label_studio):
    result = run_cli("status", "--json", env=label_studio.env())
    assert result.ok, result
    info = result.json()
    assert info["url"] == label_studio.url and info["user"] == label_studio.username


def test_settings_come_from_dotenv_and_flags_override_them(label_studio, tmp_path):
    (tmp_path / ".env").write_text(f"LABEL_STUDIO_URL={label_studio.url}\nLABEL_STUDIO_API_KEY='{label_studio.token}'\n")
    assert run_cli("status", cwd=tmp_path).ok
    # a flag wins over .env: the wrong token is used and refused
    assert_user_error(run_cli("status", "--api-key", "0" * 40, cwd=tmp_path), "API token", code=2)


@pytest.mark.parametrize("args", [["status"], ["projects", "show", "1"]])
def test_server_down_is_one_line(args):
    env = {"LABEL_STUDIO_URL": f"http://127.0.0.1:{embedded.free_port()}", "LABEL_STUDIO_API_KEY": "x" * 40}
    assert_user_error(run_cli(*args, env=env), "cannot reach Label Studio", code=3)


@pytest.mark.parametrize("module, args, message", [
    ("datalabel", ["nosuch"], "No such command 'nosuch'"),
    ("datalabel", ["status", "--bogus"], "No such option: --bogus"),
    ("datalabel", ["export", "convert"], "Missing option '--format'"),
    ("datalabel", ["projects", "show", "three"], "Invalid value"),
    ("dataversion", ["snapshot", "--bogus"], "No such option: --bogus"),
])
def test_bad_options_are_one_line_with_where_to_look(module, args, message):
    line = assert_user_error(run_cli(*args, module=module), message, code=2)
    assert line.endswith("--help)")


def test_a_group_without_a_command_shows_its_help():
    result = run_cli("export")
    assert result.returncode == 2 and "convert" in result.stdout and not result.stderr.strip()


def test_wrong_token_is_one_line(label_studio, ls_client):
    before = len(_titles(ls_client))
    env = {**label_studio.env(), "LABEL_STUDIO_API_KEY": "0" * 40}
    assert_user_error(run_cli("projects", "list", env=env), "LABEL_STUDIO_API_KEY", code=2)
    assert_user_error(run_cli("projects", "create", "--title", "Never made", "--template", "ner", "--labels", "a",
                              env=env), "API token")
    assert len(_titles(ls_client)) == before


def test_missing_token_is_one_line(label_studio):
    assert_user_error(run_cli("projects", "list", env={"LABEL_STUDIO_URL": label_studio.url}), "LABEL_STUDIO_API_KEY")


# --- templates --------------------------------------------------------------------------------------------------


def test_every_template_is_accepted_by_label_studio(ls_client):
    for name in TEMPLATES:
        xml = build_config(name, ["brie", "gouda"])
        ls.validate_label_config(ls_client, xml)
        project, created = create_project(ls_client, _title(name)[:50], xml)
        try:
            assert created
            stored = parse_config(ls.get_project(ls_client, project.id).label_config)
            assert stored.labels == ["brie", "gouda"], name
        finally:
            ls.delete_project(ls_client, project.id)


def test_templates_command_lists_them():
    result = run_cli("projects", "templates", "--json")
    assert result.ok, result
    assert [row["template"] for row in result.json()] == list(TEMPLATES)


# --- create / list / show / delete ----------------------------------------------------------------------------


def test_create_list_show_delete(label_studio, ls_client, tmp_path):
    env = label_studio.env()
    title = _title("Cheese")
    made = run_cli("projects", "create", "--title", title, "--template", "image-classification",
                   "--labels", "brie,gouda", "--json", env=env)
    assert made.ok, made
    project = made.json()
    assert project["created"] is True and project["title"] == title

    again = run_cli("projects", "create", "--title", title, "--template", "image-classification",
                    "--labels", "brie,gouda", env=env)
    assert again.ok and f"reused existing project {project['id']}" in again.stdout, again
    assert _titles(ls_client).count(title) == 1

    listed = run_cli("projects", "list", "--json", env=env)
    assert listed.ok and {"id": project["id"], "title": title} in [
        {"id": r["id"], "title": r["title"]} for r in listed.json()]
    table = run_cli("projects", "list", env=env)
    assert table.ok and title in table.stdout

    shown = run_cli("projects", "show", str(project["id"]), "--json", env=env)
    assert shown.ok, shown
    info = shown.json()
    assert info["labels"] == ["brie", "gouda"] and info["kind"] == "classification" and info["tasks"] == 0
    text = run_cli("projects", "show", str(project["id"]), env=env)
    assert "labels: brie, gouda" in text.stdout and "no storage connected" in text.stdout
    xml = run_cli("projects", "show", str(project["id"]), "--config", env=env)
    assert parse_config(xml.stdout).labels == ["brie", "gouda"]

    # without --yes and without a terminal to answer, nothing is deleted
    refused = run_cli("projects", "delete", str(project["id"]), env=env)
    assert refused.returncode != 0 and title in _titles(ls_client)
    gone = run_cli("projects", "delete", str(project["id"]), "--yes", env=env)
    assert gone.ok, gone
    assert title not in _titles(ls_client)
    assert_user_error(run_cli("projects", "show", str(project["id"]), env=env), "does not exist", code=4)


def test_create_from_labels_file_and_from_xml(label_studio, ls_client, tmp_path):
    env = label_studio.env()
    labels = tmp_path / "labels.txt"
    labels.write_text("car\n# comment\nbus\n\ntruck\n")
    title = _title("Boxes")
    made = run_cli("projects", "create", "--title", title, "--template", "object-detection",
                   "--labels-file", labels, "--json", env=env)
    assert made.ok, made
    project = ls.get_project(ls_client, made.json()["id"])
    parsed = parse_config(project.label_config)
    assert parsed.labels == ["car", "bus", "truck"] and parsed.kind == "rectangles"

    xml = tmp_path / "config.xml"
    xml.write_text('<View><Text name="text" value="$text"/><Labels name="ner" toName="text">'
                   '<Label value="PER"/><Label value="ORG"/></Labels></View>')
    title2 = _title("Custom")
    made2 = run_cli("projects", "create", "--title", title2, "--config", xml, "--json", env=env)
    assert made2.ok, made2
    assert parse_config(ls.get_project(ls_client, made2.json()["id"]).label_config).labels == ["PER", "ORG"]
    for pid in (project.id, made2.json()["id"]):
        ls.delete_project(ls_client, pid)


# --- bad input: one line, non-zero exit, nothing created -------------------------------------------------------


BAD_CREATE = [
    (["--template", "nope", "--labels", "a,b"], "unknown template"),
    (["--template", "ner", "--labels", ""], "no labels given"),
    (["--template", "ner", "--labels", " , ,"], "no labels given"),
    (["--template", "ner", "--labels", "a,b,a"], "duplicated label"),
    (["--template", "ner"], "no labels given"),
    ([], "no label config"),
    (["--config", "/does/not/exist.xml"], "label config file not found"),
    (["--template", "ner", "--labels-file", "/does/not/exist.txt"], "labels file not found"),
]


@pytest.mark.parametrize("args,message", BAD_CREATE, ids=[m for _, m in BAD_CREATE])
def test_create_rejects_bad_input(label_studio, ls_client, args, message):
    before = _titles(ls_client)
    title = _title("Bad")
    assert_user_error(run_cli("projects", "create", "--title", title, *args, env=label_studio.env()), message)
    assert _titles(ls_client) == before


@pytest.mark.parametrize("xml,message", [
    ("<View><Image name='i' value='$image'/>", "invalid label config XML"),
    ("<View><Image name='i' value='$image'/><Choices name='c' toName='x'><Choice value='a'/></Choices></View>",
     "unknown toName"),
    # passes the local parser, refused by the server's own validation
    ("<View><Image name='i' value='$image'/><Choices name='c' toName='i'><Choice value='a'/></Choices>"
     "<Choices name='c' toName='i'><Choice value='b'/></Choices></View>", "Label Studio says"),
    ("<View><Image name='i' value='$image'/><Choices name='c' toName='i'></Choices></View>", "Label Studio says"),
], ids=["not-xml", "unknown-toName", "server-duplicate-names", "server-no-choice"])
def test_invalid_config_file_creates_nothing(label_studio, ls_client, tmp_path, xml, message):
    path = tmp_path / "bad.xml"
    path.write_text(xml)
    before = _titles(ls_client)
    assert_user_error(run_cli("projects", "create", "--title", _title("Invalid"), "--config", path,
                              env=label_studio.env()), message)
    assert _titles(ls_client) == before


def test_same_title_with_other_labels_is_refused(label_studio, ls_client):
    title = _title("Taken")
    project, _ = create_project(ls_client, title, build_config("ner", ["a", "b"]))
    try:
        assert_user_error(run_cli("projects", "create", "--title", title, "--template", "ner", "--labels", "a,c",
                                  env=label_studio.env()), "different label config")
        assert parse_config(ls.get_project(ls_client, project.id).label_config).labels == ["a", "b"]
    finally:
        ls.delete_project(ls_client, project.id)


def test_short_title_is_refused_before_any_call(label_studio, ls_client):
    before = _titles(ls_client)
    assert_user_error(run_cli("projects", "create", "--title", "ab", "--template", "ner", "--labels", "a",
                              env=label_studio.env()), "3 to 50 characters")
    assert _titles(ls_client) == before


@pytest.mark.parametrize("args", [["show", "987654"], ["delete", "987654", "--yes"]])
def test_unknown_project_id(label_studio, args):
    assert_user_error(run_cli("projects", *args, env=label_studio.env()), "project 987654 does not exist", code=4)


# --- help -------------------------------------------------------------------------------------------------------


def _leaf_commands(group, path=()):
    for name, cmd in group.commands.items():
        if getattr(cmd, "commands", None):
            yield from _leaf_commands(cmd, path + (name,))
        else:
            yield path + (name,), cmd


def test_every_lifecycle_command_has_help_with_an_example():
    from datalabel.cli import app

    root = typer.main.get_command(app)
    groups = {"projects", "storage", "bucket", "stats", "setup", "status"}
    found = [(path, cmd) for path, cmd in _leaf_commands(root) if path[0] in groups]
    assert {p[0] for p, _ in found} == groups
    for path, cmd in found:
        assert "Example" in (cmd.help or ""), f"`datalabel {' '.join(path)}` has no example in --help"
    # and --help works from a shell, with the example shown
    for args in (["setup", "--help"], ["stats", "--help"], ["bucket", "cors", "set", "--help"]):
        result = run_cli(*args)
        assert result.ok and "Example" in result.stdout, result
