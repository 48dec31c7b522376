"""The Compose stack for real: images built locally, `./docker-shell.sh --emulator` brings up Label Studio and the
GCS emulator containers, and the labeling workflow runs inside the labeling-CLI container.

Skipped only where no Docker engine answers and none can be started (the reason says which).
"""
from __future__ import annotations

import base64
import hashlib
import json

import pytest

from datalabel import embedded, gcs
from browser_helpers import logged_in_page, needs_chromium
from docker_helpers import ROOT, Stack

BUCKET = embedded.DEMO_BUCKET


@pytest.fixture
def stack(docker_stack) -> Stack:
    return docker_stack


def _ok(result, what: str) -> str:
    assert result.returncode == 0, f"{what} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_shell_script_starts_the_stack_with_its_own_secrets(stack, repo_secrets_before):
    assert f"Label Studio: http://127.0.0.1:{stack.ls_port}" in stack.start_output
    for name in ("ls_admin_user", "ls_admin_password", "ls_api_token", "label-studio.env", "cli.env"):
        mode = (stack.secrets / name).stat().st_mode & 0o777
        assert mode == 0o600, f"{name} is {oct(mode)}"
    # the repository's own secrets/ and ./.env are never written by the tests
    assert sorted(p.name for p in (ROOT / "secrets").iterdir()) == repo_secrets_before
    assert (ROOT / ".env").exists() == stack.repo_env_existed
    print(f"docker-shell.sh --emulator: {stack.start_seconds:.0f} s to ready (images built or cached)")


def test_cli_container_reaches_label_studio_with_the_generated_token(stack):
    info = json.loads(_ok(stack.cli("datalabel", "status", "--json"), "datalabel status"))
    assert info["user"] == stack.secret("ls_admin_user")
    assert info["url"] == "http://label-studio:8080"


def test_demo_project_is_seeded_from_the_emulator_container(stack):
    projects = json.loads(_ok(stack.cli("datalabel", "projects", "list", "--json"), "projects list"))
    demo = [p for p in projects if p["title"] == embedded.DEMO_TITLE]
    assert len(demo) == 1 and demo[0]["tasks"] == 1797, projects
    # seeding again (a second ./docker-shell.sh) creates nothing new
    again = json.loads(_ok(stack.cli("datalabel", "demo", "--json"), "datalabel demo"))
    assert again["project"] == demo[0]["id"]


def test_labeling_workflow_inside_the_cli_container(stack):
    # setup: project + source storage + target storage + sync, from inside the container
    result = json.loads(_ok(stack.cli(
        "datalabel", "setup", "--title", "Docker workflow", "--template", "image-classification",
        "--labels", ",".join(str(i) for i in range(10)), "--source-prefix", "images_unlabeled/",
        "--target-prefix", "labels-docker/", "--regex", r".*digit_000[0-4]\.png", "--json"), "setup"))
    project_id = result["project_id"]
    _, _, body = stack.api(f"/api/tasks/?project={project_id}&page_size=100")
    tasks = json.loads(body)["tasks"]
    assert len(tasks) == 5

    # an annotation made through the API (as the labeling UI does)
    task = sorted(tasks, key=lambda t: t["id"])[0]
    status, _, _ = stack.api(f"/api/tasks/{task['id']}/annotations/", {"result": [{
        "type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": ["7"]}}]})
    assert status == 201

    # export convert in the container: the labeled image, with the bucket's bytes, in its class folder
    script = (f"datalabel export convert --project {project_id} -f imagefolder -o /tmp/out >&2 && "
              "cd /tmp/out && find . -type f -name '*.png' -exec sha256sum {} +")
    listing = _ok(stack.cli("bash", "-c", script), "export convert")
    files = {line.split()[1]: line.split()[0] for line in listing.splitlines() if line.strip()}
    source = gcs.gs_url_from_ref(task["data"]["image"])  # the API gives Label Studio's proxy form
    assert source.startswith(f"gs://{BUCKET}/images_unlabeled/")
    name = source.rsplit("/", 1)[1]
    assert list(files) == [f"./7/{name}"], listing
    original = stack.download(BUCKET, source.split(f"gs://{BUCKET}/", 1)[1])
    assert files[f"./7/{name}"] == hashlib.sha256(original).hexdigest()

    # the task's image resolves through Label Studio's proxy from the emulator container
    fileuri = base64.urlsafe_b64encode(source.encode()).decode()
    status, ctype, body = stack.api(f"/tasks/{task['id']}/resolve/?fileuri={fileuri}")
    assert status == 200 and ctype.startswith("image/")
    assert body == original


@needs_chromium
def test_admin_login_from_secrets_works_in_the_browser(stack):
    with logged_in_page(stack.url, stack.secret("ls_admin_user"), stack.secret("ls_admin_password")) as page:
        page.goto(f"{stack.url}/projects/")
        page.get_by_text(embedded.DEMO_TITLE).first.wait_for(timeout=30_000)


def test_plain_compose_up_after_the_first_start(stack):
    # what `docker compose up -d` does once docker-shell.sh has written the settings: the same stack, unchanged
    out = stack.compose("up", "-d", timeout=300)
    assert out.returncode == 0, out.stderr
    running = set(_ok(stack.compose("ps", "--services", "--filter", "status=running"), "compose ps").split())
    assert {"label-studio", "gcs-emulator"} <= running


def test_label_studio_refuses_to_start_without_its_credentials(stack):
    # an emptied secret is a loud failure, never a server with no admin
    out = stack.compose("run", "--rm", "--no-deps", "-T", "-e", "LABEL_STUDIO_PASSWORD=", "label-studio", timeout=120)
    assert out.returncode == 78
    assert "error: LABEL_STUDIO_PASSWORD is empty" in out.stderr


# gunicorn processes (the master and its workers: `python .../bin/gunicorn ...`) and the CPUs, inside a container
COUNT_GUNICORN = """import glob, os
n = 0
for path in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        argv = open(path, "rb").read().split(b"\\0")
    except OSError:
        continue
    n += any(a.endswith(b"/gunicorn") for a in argv[:2])
print(n, len(os.sched_getaffinity(0)))
"""


def test_team_mode_on_postgresql(docker_engine, tmp_path):
    """LS_DATABASE=postgresql: the postgres profile's container (built locally where no registry answers), Label
    Studio waiting for it and keeping its data there, served by gunicorn workers behind nginx, the CLI container
    working against it."""
    stack = Stack.start(tmp_path / "pg", env={"LS_DATABASE": "postgresql", "DEMO_LIMIT": "20"})
    try:
        running = set(stack.compose("ps", "--services", "--filter", "status=running").stdout.split())
        assert {"postgres", "label-studio", "label-studio-app", "gcs-emulator"} <= running
        # served as Label Studio's production compose serves it: nginx in front, the app under gunicorn workers
        procs = stack.compose("exec", "-T", "label-studio-app", "python3", "-c", COUNT_GUNICORN)
        workers, cpus = (int(x) for x in procs.stdout.split())
        assert workers == cpus + 2, procs.stdout + procs.stderr  # the master and one worker per CPU plus one
        front = stack.compose("exec", "-T", "label-studio", "python3", "-c",
                              "import urllib.request as u; r = u.urlopen('http://localhost:8080/static/images/"
                              "favicon.ico'); print(r.headers['Server'], r.headers['Cache-Control'])")
        assert front.stdout.split() == ["nginx", "max-age=604800"], front.stdout + front.stderr
        projects = json.loads(_ok(stack.cli("datalabel", "projects", "list", "--json"), "projects list"))
        assert [(p["title"], p["tasks"]) for p in projects] == [(embedded.DEMO_TITLE, 20)]
        # the tasks are in PostgreSQL, not in a SQLite file
        count = stack.compose("exec", "-T", "postgres", "psql", "-U", "labelstudio", "-d", "labelstudio", "-tAc",
                              "select count(*) from task")
        assert count.returncode == 0 and count.stdout.strip() == "20", count.stdout + count.stderr
        sqlite = stack.compose("exec", "-T", "label-studio-app", "bash", "-c",
                               "ls /label-studio/data/*.sqlite3 2>/dev/null")
        assert sqlite.stdout.strip() == ""
    finally:
        stack.down()
