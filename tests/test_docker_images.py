"""The images one by one, through testcontainers: the labeling-CLI image against a Label Studio container and a GCS
emulator container on a network of their own (no Compose), and the PostgreSQL image through testcontainers'
postgres module. Images are built locally first (stand-ins where no registry answers: scripts/local-images.sh).

testcontainers' reaper (Ryuk) is an image from a registry, so it is off; every container here is stopped by the
`with` block that started it. Skipped only where no Docker engine answers and none can be started.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import urllib.request

import pytest

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

from testcontainers.community.postgres import PostgresContainer  # noqa: E402
from testcontainers.core.container import DockerContainer  # noqa: E402
from testcontainers.core.network import Network  # noqa: E402

from docker_helpers import ROOT  # noqa: E402

CLI_IMAGE = "datalabel/labeling-cli:local"
LS_IMAGE = "heartexlabs/label-studio:1.23.2"
PG_IMAGE = "postgres:15-bookworm"


def _build(*args: str) -> None:
    out = subprocess.run(list(args), cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert out.returncode == 0, f"{' '.join(args)}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"


@pytest.fixture(scope="module")
def images(docker_engine):
    _build("scripts/local-images.sh", "--postgres")
    _build("docker", "build", "-q", "-f", "data-labeling/Dockerfile", "-t", CLI_IMAGE, ".")


def _wait_healthy(url: str, container: DockerContainer, seconds: float = 600) -> None:
    """Label Studio's /health from the host (its published port), or its log tail when it never answers."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=5).close()
            return
        except OSError:
            time.sleep(2)
    out, err = container.get_logs()
    raise AssertionError(f"{url} never answered:\n{(out + err).decode(errors='replace')[-3000:]}")


def test_cli_image_against_label_studio_and_emulator_containers(images):
    token = secrets.token_hex(20)
    with Network() as net, \
            DockerContainer(CLI_IMAGE) \
            .with_command("python3 -m datalabel.emulator start --host=0.0.0.0 --port=9023 --quiet") \
            .with_network(net).with_network_aliases("gcs-emulator") as emulator, \
            DockerContainer(LS_IMAGE) \
            .with_command("label-studio start --enable-legacy-api-token") \
            .with_env("LABEL_STUDIO_USERNAME", "admin@example.com") \
            .with_env("LABEL_STUDIO_PASSWORD", secrets.token_urlsafe(16)) \
            .with_env("LABEL_STUDIO_USER_TOKEN", token) \
            .with_env("LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN", "true") \
            .with_env("LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK", "true") \
            .with_env("LATEST_VERSION_CHECK", "false").with_env("COLLECT_ANALYTICS", "false") \
            .with_env("SENTRY_DSN", "").with_env("FRONTEND_SENTRY_DSN", "") \
            .with_env("STORAGE_EMULATOR_HOST", "http://gcs-emulator:9023") \
            .with_env("DJANGO_DB", "sqlite") \
            .with_exposed_ports(8080) \
            .with_network(net).with_network_aliases("label-studio") as ls:
        _wait_healthy(f"http://{ls.get_container_host_ip()}:{ls.get_exposed_port(8080)}/health", ls)
        assert emulator.get_wrapped_container().status in ("created", "running")

        cli = (DockerContainer(CLI_IMAGE)
               .with_command("datalabel demo --limit 5 --json")
               .with_env("LABEL_STUDIO_URL", "http://label-studio:8080")
               .with_env("LABEL_STUDIO_API_KEY", token)
               .with_env("STORAGE_EMULATOR_HOST", "http://gcs-emulator:9023")
               .with_env("GCS_BUCKET_NAME", "datalabel-local")
               .with_env("HOME", "/tmp")
               .with_network(net))
        with cli:
            result = cli.get_wrapped_container().wait(timeout=600)
            out, err = cli.get_logs()
        assert result["StatusCode"] == 0, (out + err).decode(errors="replace")
        demo = json.loads(out)
        # the CLI image made the project in the Label Studio container over the emulator container's bucket
        req = urllib.request.Request(
            f"http://{ls.get_container_host_ip()}:{ls.get_exposed_port(8080)}/api/projects/{demo['project']}",
            headers={"Authorization": f"Token {token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            project = json.loads(resp.read())
        assert project["task_number"] == 5


def test_postgres_image_through_the_postgres_module(images):
    import psycopg

    with PostgresContainer(PG_IMAGE, username="labelstudio", password=secrets.token_urlsafe(12),
                           dbname="labelstudio", driver=None) as pg:
        with psycopg.connect(pg.get_connection_url(), connect_timeout=30) as conn:
            version = conn.execute("select version()").fetchone()[0]
    assert version.startswith("PostgreSQL 15")


def test_cli_image_carries_no_extras_and_says_how_to_add_them(images):
    """The image installs the package without its optional parts (video frames, plots): a command that needs one
    stops before doing any work, in one line naming the extra and the build variable; the core is all there."""
    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "run", "--rm", "-e", "HOME=/tmp", CLI_IMAGE, *command],
                              capture_output=True, text=True, timeout=300)

    out = run("datalabel", "al", "simulate", "--repeats", "1", "--budget", "40", "--out", "/tmp/sim")
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "pip install 'datalabel[plots]'" in lines[0] and "DATALABEL_EXTRAS=plots" in lines[0], lines[0]
    found = run("python3", "-c", "import importlib.util as u; print([m for m in ('av', 'matplotlib', 'cv2', 'nltk', "
                "'pytest') if u.find_spec(m)])")
    assert found.returncode == 0 and found.stdout.strip() == "[]", found.stdout + found.stderr
    # the libraries `datalabel quality` needs stay (cleanlab, scikit-learn, pandas), with bytecode compiled
    core = run("python3", "-c", "import cleanlab.filter, sklearn.model_selection, krippendorff, pandas; "
               "import sklearn, pathlib; print(any(pathlib.Path(sklearn.__file__).parent.glob('__pycache__/*.pyc')))")
    assert core.returncode == 0 and core.stdout.strip() == "True", core.stdout + core.stderr
