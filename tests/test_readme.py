"""Every ```bash block of the README runs, as written, against the demo stack.

A checkout of this tree (tests/cli_helpers.shell_checkout) is started as a new user starts it without Docker:
`./docker-shell.sh --local` (the embedded default: Label Studio, the GCS emulator, the demo project, project 1).
Each block then runs in order in one bash process per block, as in the shell that script opens (`source
.venv/bin/activate && source .stack/env`), from the checkout's root, with `set -e`: any command that fails fails
the test. The only substitutions are the ones the README names itself: the ports (`LABEL_STUDIO_PORT`,
`GCS_EMULATOR_PORT`: free ones here, since other servers may hold 8080/9023/9090). What a person does in the browser
between the commands (label tasks; annotators label) is done through the API before the block that needs it, or
where the block says so in a comment line (PERSON).

The blocks that cannot run here are listed in ELSEWHERE by their first line, with the test that runs them; a block
in neither list fails the test, so a new block is run or accounted for.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_helpers import shell_checkout
from versioning_helpers import annotate, sync

from datalabel import embedded, ls, samples
from datalabel.config import Settings
from datalabel.gcs import gs_url_from_ref

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

ELSEWHERE = {
    "./docker-shell.sh     # start the stack and open a shell ready to label":
        "picks Docker where an engine answers: tests/test_docker_newcomer.py::test_fresh_clone_starts_and_opens_the_"
        "cli_shell (Docker) and this test's fixture (the same script, --local); ./run-tests.sh runs this suite",
    "docker compose up -d                                    # Label Studio (+ emulator, + PostgreSQL) as configured":
        "Docker: tests/test_docker_newcomer.py::test_plain_compose_in_the_clone, "
        "tests/test_docker_stack.py::test_plain_compose_up_after_the_first_start",
    "dataversion init --repo my-dataset --bucket my-labels --git-remote https://github.com/your-org/digits-dataset.git":
        "the team's remote on GitHub (no network here): tests/test_git_remote.py::test_http_remote_push_race_and_read_"
        "by_url runs the same commands against a local git server with a token",
    "./docker-shell.sh versioning             # a shell in the container, bucket mounted":
        "Docker: tests/test_docker_versioning.py::test_snapshot_from_the_mount_commit_push_tag_diff_and_no_change",
}

# comment lines of a block that stand for a person's work in the browser -> the step this file runs there
PERSON = {"# (label more in Label Studio, then the same two commands make dataset_v2)": "label-more",
          "# (the annotators label in Label Studio, each logged in as themselves)": "annotators-label"}
# a command that runs until stopped: started, its first cycle awaited, then stopped as Ctrl-C would
UNTIL_STOPPED = {"datalabel export watch": "imagefolder: "}

DEMO = 60  # demo images seeded (DEMO_LIMIT, which docker-shell.sh names)
LABELED_FIRST, LABELED_MORE, SHARED = 40, 8, 12  # tasks labeled before the export, before dataset_v2, by two people


def readme_blocks() -> list[str]:
    """The ```bash blocks of the README, dedented (some sit in a numbered list), in order."""
    text = README.read_text(encoding="utf-8")
    found = re.findall(r"^([ \t]*)```bash\n(.*?)^[ \t]*```", text, flags=re.M | re.S)
    return [textwrap.dedent(body) for _, body in found]


def first_line(block: str) -> str:
    return next(line.strip() for line in block.splitlines() if line.strip())


def test_every_readme_block_is_run_here_or_named_with_where_it_runs():
    blocks = readme_blocks()
    firsts = [first_line(b) for b in blocks]
    assert len(blocks) >= 10
    assert sorted(set(ELSEWHERE) - set(firsts)) == [], "ELSEWHERE names a block the README no longer has"
    assert all(any(p in b for b in blocks) for p in PERSON), "PERSON names a line the README no longer has"


def image_of(task: dict) -> str:
    return gs_url_from_ref(task["data"]["image"]).rsplit("/", 1)[-1]


def demo_tasks(client) -> list[dict]:
    return sorted(ls.iter_task_json(client, 1), key=lambda t: t["id"])


def label(client, truth: dict, count: int) -> None:
    """The admin labels the next `count` unlabeled demo tasks with their true digit; target storage synced."""
    todo = [t for t in demo_tasks(client) if not t.get("annotations")]
    assert len(todo) >= count
    for task in todo[:count]:
        annotate(client, task["id"], truth[image_of(task)])
    sync(client, 1, "target")


def annotators_label(client, truth: dict, root: Path, url: str) -> None:
    """Two of the annotators `datalabel demo --annotators 3` made label the first SHARED tasks with their own
    tokens (the second disagrees on two), so agreement has pairs to measure."""
    people = json.loads((root / "secrets" / "annotators.json").read_text())
    assert len(people) == 3
    tasks = demo_tasks(client)[:SHARED]
    for n, person in enumerate(people[:2]):
        own = ls.connect(Settings(url=url, api_key=person["token"]))
        for i, task in enumerate(tasks):
            digit = truth[image_of(task)]
            annotate(own, task["id"], str((int(digit) + 1) % 10) if n and i < 2 else digit)
    sync(client, 1, "target")


def person_step(step: str, root: Path) -> None:
    """A PERSON step against the stack of the shell's environment (run from a block as a script)."""
    url = os.environ["LABEL_STUDIO_URL"]
    client = ls.connect(Settings(url=url, api_key=os.environ["LABEL_STUDIO_API_KEY"]))
    truth = samples.read_truth(root / ".stack" / "samples")
    if step == "label-more":
        label(client, truth, LABELED_MORE)
    elif step == "annotators-label":
        annotators_label(client, truth, root, url)
    else:
        raise SystemExit(f"unknown step {step}")


def shell_line(line: str) -> str:
    """A block's line as the test runs it: PERSON comments become their step, an UNTIL_STOPPED command runs until
    its first cycle is out and is then stopped; every other line is itself."""
    if line.strip() in PERSON:
        return f"{sys.executable} {Path(__file__).resolve()} {PERSON[line.strip()]} \"$README_CHECKOUT\""
    for command, first_output in UNTIL_STOPPED.items():
        if line.startswith(command):
            return (f"{{ {line.split(' #', 1)[0]} > until-stopped.log 2>&1 & job=$!; "
                    f"until grep -q {first_output!r} until-stopped.log; do kill -0 $job; sleep 0.2; done; "
                    f"kill $job; wait $job || true; cat until-stopped.log; }}")
    return line


class Demo:
    """The started checkout: its shell environment and Label Studio client."""

    def __init__(self, folder: Path, env: dict):
        self.folder, self.env = folder, env
        self.stack = dict(line.removeprefix("export ").split("=", 1) for line in
                          (folder / ".stack" / "env").read_text().splitlines() if line.startswith("export "))
        self.client = ls.connect(Settings(url=self.stack["LABEL_STUDIO_URL"],
                                          api_key=self.stack["LABEL_STUDIO_API_KEY"]))
        self.truth = samples.read_truth(folder / ".stack" / "samples")

    def run(self, block: str, timeout: float = 900) -> str:
        """The block in a bash process of its own, in the shell docker-shell.sh opens, from the checkout's root;
        background jobs it starts (`al serve &`) are stopped with it. Returns its output; a failing command fails
        the test."""
        body = substitute("\n".join(shell_line(line) for line in block.splitlines()), self.stack)
        script = f"set -euo pipefail\nsource .venv/bin/activate\nsource .stack/env\n{body}\n"
        log = self.folder / "block.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(["bash", "-c", script], cwd=self.folder, env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True, text=True)
            try:
                code = proc.wait(timeout=timeout)
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)  # `al serve &` and anything else still running
                except ProcessLookupError:
                    pass
        output = log.read_text()
        assert code == 0, f"README block failed (exit {code}):\n{block}\n--- output ---\n{output[-6000:]}"
        assert "Traceback" not in output, output[-6000:]
        return output


def substitute(block: str, stack: dict) -> str:
    """The ports the README names (8080, 9023, 9090) -> this stack's; nothing else."""
    gcs_port = stack["STORAGE_EMULATOR_HOST"].rsplit(":", 1)[1]
    backend = str(embedded.free_port())
    block = block.replace("127.0.0.1:9023", f"127.0.0.1:{gcs_port}")
    return block.replace("--port 9090", f"--port {backend}").replace("127.0.0.1:9090", f"127.0.0.1:{backend}")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder, env = shell_checkout(tmp_path_factory.mktemp("readme") / "checkout")
    env = {k: v for k, v in env.items() if k not in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "GCS_BUCKET_NAME",
                                                       "GOOGLE_APPLICATION_CREDENTIALS", "DATASET_REPO")}
    env.update(DEMO_LIMIT=str(DEMO), COLUMNS="200", README_CHECKOUT=str(folder))
    started = subprocess.run(["./docker-shell.sh", "--local"], cwd=folder, env=env, capture_output=True, text=True,
                             timeout=900)
    assert started.returncode == 0, started.stderr[-3000:]
    try:
        yield Demo(folder, env)
    finally:
        subprocess.run(["./docker-shell.sh", "down"], cwd=folder, env=env, capture_output=True, timeout=300)


def test_readme_blocks_run_as_written_against_the_demo_stack(demo):
    blocks = [b for b in readme_blocks() if first_line(b) not in ELSEWHERE]
    # "From a bucket to labels" uploads a folder of your images: five of them
    images = demo.folder / "images"
    images.mkdir()
    for path in sorted((demo.folder / ".stack" / "samples" / "images").glob("*.png"))[:5]:
        (images / f"cheese-{path.name}").write_bytes(path.read_bytes())
    outputs = []
    for block in blocks:
        if first_line(block).startswith("datalabel export formats"):
            label(demo.client, demo.truth, LABELED_FIRST)  # a person labels in the browser before exporting
        outputs.append(demo.run(block))
    assert len(outputs) == len(blocks) >= 7

    # what the blocks made, checked where a silent no-op would pass
    root = demo.folder
    assert sum(1 for _ in (root / "data" / "digits").rglob("*.png")) == LABELED_FIRST
    assert len(json.loads((root / "project-1.json").read_text())) == DEMO
    assert (root / "data" / "csv").is_dir() and (root / "data" / "min").is_dir()
    tags = subprocess.run(["git", "tag"], cwd=root / "dataset-repo", capture_output=True, text=True).stdout.split()
    assert tags == ["dataset_v1", "dataset_v2"]
    assert sum(1 for _ in (root / "dataset-v1").rglob("*.png")) == LABELED_FIRST  # dataversion checkout
    assert sum(1 for _ in (root / "v1").rglob("*.png")) == LABELED_FIRST  # dvc get
    assert any("imagefolder: " in out for out in outputs)  # the watch's first cycle
    assert any("alpha" in out.lower() for out in outputs)  # quality agreement


if __name__ == "__main__":  # a PERSON step, run from a block
    person_step(sys.argv[1], Path(sys.argv[2]))
