"""Fixtures that start real servers on free loopback ports: the GCS emulator and Label Studio.

Both are session-scoped (Label Studio's first start runs its migrations, ~40 s); tests isolate themselves by
creating their own bucket and project. Every process started here is stopped at the end of the session.

Team mode: `--ls-database postgresql` runs Label Studio on a PostgreSQL server started for the session (the
embedded stack's, datalabel.postgres); run-tests.sh runs the tests marked `postgres` (setup, sync, annotate,
export, snapshot) that way after the whole suite on SQLite.
"""
from __future__ import annotations

import os
import secrets
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "data-labeling"), str(ROOT / "data-versioning")]

from datalabel import credentials, embedded, gcs, ls  # noqa: E402
from datalabel.config import Settings  # noqa: E402

# Tests never reach outside the machine: no telemetry, no version checks.
os.environ.update(embedded.QUIET_ENV)
for _name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "GCS_BUCKET_NAME", "GOOGLE_APPLICATION_CREDENTIALS"):
    os.environ.pop(_name, None)


def pytest_addoption(parser):
    parser.addoption("--ls-database", choices=embedded.DATABASES, default="sqlite",
                     help="Label Studio's database for the session (postgresql: a local server is started)")


def pytest_configure(config):
    config.addinivalue_line("markers", "postgres: part of the team-mode subset run again on PostgreSQL")


def pytest_report_header(config):
    return f"Label Studio database: {config.getoption('--ls-database')}"


@pytest.fixture(scope="session")
def ls_database(request, tmp_path_factory, logs_dir):
    """Environment that points Label Studio at its database: None for SQLite (a file in its data folder), or a
    PostgreSQL server started for the session."""
    if request.config.getoption("--ls-database") != "postgresql":
        yield None
        return
    from datalabel import postgres

    password = secrets.token_urlsafe(18)
    server = postgres.start(embedded.free_port(), tmp_path_factory.mktemp("pg") / "data", password,
                                     log=logs_dir / "postgres.log")
    yield postgres.label_studio_env(server.port, password)
    server.stop()


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def gcs_emulator(logs_dir):
    """The GCS emulator (in memory) on a free port; STORAGE_EMULATOR_HOST points every client at it."""
    server = embedded.start_emulator(embedded.free_port(), log=logs_dir / "gcs.log")
    old = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = server.url
    yield server
    server.stop()
    if old is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = old


@dataclass
class LabelStudioServer:
    url: str
    token: str
    username: str
    password: str
    server: embedded.Server
    data_dir: Path | None = None  # where `label-studio user` finds its users (quality tests: annotator tokens)
    database: dict | None = None  # the server's database environment (None: SQLite in data_dir)

    def settings(self, bucket: str | None = None) -> Settings:
        return Settings(url=self.url, api_key=self.token, bucket=bucket, emulator_host=os.environ.get("STORAGE_EMULATOR_HOST"))

    def env(self, bucket: str | None = None) -> dict[str, str]:
        """Environment for running the CLIs against this server."""
        out = {"LABEL_STUDIO_URL": self.url, "LABEL_STUDIO_API_KEY": self.token,
               "STORAGE_EMULATOR_HOST": os.environ["STORAGE_EMULATOR_HOST"]}
        if bucket:
            out["GCS_BUCKET_NAME"] = bucket
        return out


@pytest.fixture(scope="session")
def label_studio(gcs_emulator, ls_database, tmp_path_factory, logs_dir):
    """A real Label Studio server with a preset admin token, its GCS calls going to the emulator."""
    token = secrets.token_hex(20)
    password = "-" + secrets.token_urlsafe(12)  # a leading dash, as generated passwords may have
    for attempt in (1, 2):
        # a free port can be taken by another process before Label Studio binds it: then start over once
        server = None
        data_dir = tmp_path_factory.mktemp("ls-data")
        try:
            server = embedded.start_label_studio(
                embedded.free_port(), data_dir, credentials.ADMIN_USER, password, token,
                emulator_url=gcs_emulator.url, log=logs_dir / f"label-studio-{attempt}.log", database=ls_database,
            )
            ls.connect(Settings(url=server.url, api_key=token))  # it is ours: the preset token works
            break
        except Exception:
            if server is not None:
                server.stop()
            if attempt == 2:
                raise
    yield LabelStudioServer(server.url, token, credentials.ADMIN_USER, password, server, data_dir, ls_database)
    server.stop()


@pytest.fixture(scope="session")
def ls_client(label_studio):
    return ls.connect(label_studio.settings())


@pytest.fixture(scope="session")
def annotators(label_studio, ls_client, gcs_emulator) -> list[dict]:
    """Three annotator users of the server, each with their own API token: [{id, email, token}]."""
    from datalabel import users

    env = embedded.label_studio_env(gcs_emulator.url, label_studio.database)
    return users.ensure_annotators(ls_client, 3, label_studio.data_dir, env)


@pytest.fixture(scope="session")
def storage_client(gcs_emulator):
    return gcs.client()


@pytest.fixture
def bucket(storage_client):
    """A fresh, empty bucket in the emulator for one test."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    return storage_client.create_bucket(name)


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory) -> Path:
    """The first 60 sample digits as PNG (plus truth.csv) on local disk."""
    from datalabel import samples

    return samples.write_digits(tmp_path_factory.mktemp("digits"), limit=60)


# --- the Docker path ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory):
    """A Docker engine: the running one, or dockerd started for the session (root). Skipped only where none can
    run; on CI (where one can) its absence fails."""
    from docker_helpers import DockerEngine

    engine = DockerEngine(tmp_path_factory.mktemp("docker"))
    if not engine.ok:
        if os.environ.get("CI"):
            pytest.fail(engine.reason)
        pytest.skip(engine.reason)
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def repo_secrets_before():
    return sorted(p.name for p in (ROOT / "secrets").iterdir())


@pytest.fixture(scope="session")
def docker_stack(docker_engine, repo_secrets_before, tmp_path_factory):
    """The Compose stack with the emulator, started by `./docker-shell.sh --docker --emulator` in isolation (own
    project, network, ports, secrets and settings file). DATALABEL_TEST_STACK=DIR keeps it in DIR after the run
    and reuses it next time (for working on these tests)."""
    from docker_helpers import Stack

    keep = os.environ.get("DATALABEL_TEST_STACK")
    stack = Stack.reuse(Path(keep)) if keep else None
    if stack is None:
        folder = Path(keep) if keep else tmp_path_factory.mktemp("stack")
        stack = Stack.start(folder)
    yield stack
    if not keep:
        stack.down()
