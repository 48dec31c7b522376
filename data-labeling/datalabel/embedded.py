"""The embedded default: Label Studio (from PyPI) and a GCS emulator as local processes on 127.0.0.1.

Used by `./docker-shell.sh` when no Docker engine answers, and by the test fixtures. Everything the user would
otherwise click through is done here: credentials generated into secrets/, bucket created, sample images
uploaded, a demo project with source and target storage, synced. Running it again reuses all of it.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from . import credentials, gcs, ls, output, postgres, samples, users, webserver
from .config import Settings
from .errors import ConfigError, LabError, ServerError
from .files import exclusive_lock, pid_alive, write_text_atomic
from .labelconfig import build_config
# callers (tests, benchmarks) start single servers as embedded.X
from .processes import Server, free_port, http_ok, port_is_free, spawn, stop_pid, venv_bin  # noqa: F401


DEMO_BUCKET = "datalabel-local"
DEMO_TITLE = "Digits demo"
SOURCE_PREFIX = "images_unlabeled/"
TARGET_PREFIX = "labels/"

# Telemetry and outbound calls Label Studio makes unless told not to.
QUIET_ENV = {
    "LATEST_VERSION_CHECK": "false",
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "COLLECT_ANALYTICS": "false",
    "DVC_NO_ANALYTICS": "1",
}


def start_emulator(port: int, data_dir: str | Path | None = None, log: str | Path = "gcs.log",
                   timeout: float = 30.0) -> Server:
    """The GCS emulator on 127.0.0.1:port; in memory unless `data_dir` is given."""
    env = {**os.environ, **QUIET_ENV}
    cmd = [sys.executable, "-m", "datalabel.emulator", "start", "--host=127.0.0.1", f"--port={port}", "--quiet"]
    if data_dir is None:
        cmd.append("--in-memory")
    else:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        env["STORAGE_BASE"] = str(Path(data_dir).resolve())
    return spawn("GCS emulator", cmd, env, Path(log), f"http://127.0.0.1:{port}/", port, timeout)


# Label Studio refuses ML backends and webhooks on private/loopback addresses by default. The embedded stack runs
# its ML backend beside it on 127.0.0.1, so loopback (only) is allowed; every other reserved range stays banned.
_BANNED_EXCEPT_LOOPBACK = (
    "0.0.0.0/8,10.0.0.0/8,100.64.0.0/10,169.254.0.0/16,172.16.0.0/12,192.0.0.0/24,192.0.2.0/24,192.88.99.0/24,"
    "192.168.0.0/16,198.18.0.0/15,198.51.100.0/24,203.0.113.0/24,224.0.0.0/4,233.252.0.0/24,240.0.0.0/4,"
    "255.255.255.255/32,::/128,::ffff:0:0/96,::ffff:0:0:0/96,64:ff9b::/96,64:ff9b:1::/48,100::/64,2001:0000::/32,"
    "2001:20::/28,2001:db8::/32,2002::/16,fc00::/7,fe80::/10,ff00::/8"
)
LOOPBACK_ML_ENV = {
    "ML_BLOCK_LOCAL_IP": "false",
    "USE_DEFAULT_BANNED_SUBNETS": "false",
    "USER_ADDITIONAL_BANNED_SUBNETS": _BANNED_EXCEPT_LOOPBACK,
}


def label_studio_env(emulator_url: str | None, database: dict[str, str] | None = None) -> dict:
    """Environment for the Label Studio process: no telemetry; GCS calls and image proxying go to the emulator;
    SQLite in its data folder unless `database` (postgres.label_studio_env) names a PostgreSQL server."""
    env = {
        **os.environ,
        **QUIET_ENV,
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "DJANGO_DB": "sqlite",
        # no sync of every existing annotation inside the request that adds target storage: `storage add-target`
        # writes them from the CLI first, in parallel (targetexport.py)
        "SYNC_ON_TARGET_STORAGE_CREATION": "false",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        **LOOPBACK_ML_ENV,
        **(database or {}),
    }
    if emulator_url:
        env["STORAGE_EMULATOR_HOST"] = emulator_url
        env["RESOLVER_PROXY_GCS_DOWNLOAD_URL"] = (
            emulator_url + "/download/storage/v1/b/{bucket_name}/o/{blob_name}?alt=media"
        )
    return env


def start_label_studio(port: int, data_dir: str | Path, username: str, password: str, token: str,
                       emulator_url: str | None = None, log: str | Path = "label-studio.log",
                       timeout: float = 240.0, database: dict[str, str] | None = None,
                       production: bool | None = None) -> Server:
    """Label Studio on 127.0.0.1:port. The user and token are created on the first start of `data_dir` (of the
    database, with `database`: see label_studio_env). `production` (default: with PostgreSQL, i.e. team mode):
    the app under gunicorn workers behind nginx (webserver.py), else `label-studio start`'s one process."""
    if not port_is_free(port):
        # Label Studio would silently move to another port; refuse instead
        raise ServerError(f"port {port} is already in use; pick another with --port")
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    env = label_studio_env(emulator_url, database)
    # the admin and token go by environment, never the command line (any local user reads /proc/*/cmdline)
    env.update(LABEL_STUDIO_USERNAME=username, LABEL_STUDIO_PASSWORD=password, LABEL_STUDIO_USER_TOKEN=token)
    env["LABEL_STUDIO_BASE_DATA_DIR"] = str(data_dir)
    if production if production is not None else bool(database):
        return webserver.start(port, data_dir, env, Path(log), timeout)
    cmd = [venv_bin("label-studio"), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
           "--data-dir", str(data_dir),
           "--enable-legacy-api-token"]
    return spawn("Label Studio", cmd, env, Path(log), f"http://127.0.0.1:{port}/health", port, timeout,
                  cwd=data_dir)


@dataclass
class StackInfo:
    label_studio_url: str
    emulator_url: str
    bucket: str
    username: str
    password: str
    token: str
    project_id: int | None
    ls_pid: int
    gcs_pid: int
    database: str = "sqlite"
    postgres_url: str | None = None
    pg_pid: int | None = None
    web_pid: int | None = None  # nginx in front of Label Studio (team mode)

    def env(self) -> dict[str, str]:
        """What a shell needs to use the CLIs against this stack."""
        return {"LABEL_STUDIO_URL": self.label_studio_url, "LABEL_STUDIO_API_KEY": self.token,
                "GCS_BUCKET_NAME": self.bucket, "STORAGE_EMULATOR_HOST": self.emulator_url}


def seed_demo(client, bucket: str, samples_dir: Path, limit: int | None = None, progress=None,
              title: str = DEMO_TITLE) -> int:
    """Bucket + sample images + demo project with source/target storage, synced. Idempotent. Returns project id."""
    store = gcs.client()
    bkt = gcs.ensure_bucket(store, bucket)
    folder = samples.write_digits(samples_dir, limit=limit)
    gcs.upload_folder(bkt, folder / "images", SOURCE_PREFIX, progress=progress)
    config = build_config("image-classification", samples.DIGIT_LABELS)
    project, _ = ls.ensure_project(client, title, config, "Sample digits from scikit-learn, served from the local bucket")
    source, _ = ls.ensure_source_storage(client, project.id, bucket, SOURCE_PREFIX, regex=r".*\.png$")
    target, _ = ls.ensure_target_storage(client, project.id, bucket, TARGET_PREFIX)
    ls.sync_storage(client, source.id, "source")
    ls.wait_storage(client, source.id, "source")
    return project.id


@contextlib.contextmanager
def _stack_lock(state: Path):
    """One start or stop of a stack at a time (two shells started at once): the second waits, then reuses."""
    state.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(state / "lock"):
        yield


DATABASES = ("sqlite", "postgresql")


def up(root: str | Path, ls_port: int = 8080, gcs_port: int = 9023, seed: bool = True, limit: int | None = None,
       progress=None, secrets_dir: str | Path | None = None, database: str | None = None,
       pg_port: int = 5432) -> StackInfo:
    """Start (or reuse) the embedded stack under `root` and seed it. State lives in root/.stack; credentials in
    `secrets_dir` (default: $SECRETS_DIR, else root/secrets). `database`: Label Studio's, "sqlite" (a file in its
    data folder) or "postgresql" (a local server, data in root/.stack/postgres); default: the last start's choice,
    else sqlite."""
    if database is not None and database not in DATABASES:
        raise ConfigError(f"unknown database {database!r}; choose one of: {', '.join(DATABASES)}")
    with _stack_lock(Path(root).resolve() / ".stack"):
        return _up(root, ls_port, gcs_port, seed, limit, progress, secrets_dir, database, pg_port)


def _up(root, ls_port, gcs_port, seed, limit, progress, secrets_dir, database, pg_port) -> StackInfo:
    root = Path(root).resolve()
    state = root / ".stack"
    info_file = state / "stack.json"
    state.mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o700)  # server data, logs and the stack's state: the owner's only
    previous = json.loads(info_file.read_text()) if info_file.exists() else None
    database = database or (previous or {}).get("database") or "sqlite"
    limit = limit if limit is not None else (previous or {}).get("demo_limit")  # a restart keeps the demo's size
    creds = credentials.ensure(secrets_dir or os.environ.get("SECRETS_DIR") or root / "secrets",
                               postgres=database == "postgresql")

    if previous and pid_alive(previous["gcs_pid"]) and http_ok(previous["emulator_url"] + "/"):
        gcs_url, gcs_pid = previous["emulator_url"], previous["gcs_pid"]
    else:
        port = _stable_port(previous and previous.get("emulator_url"), gcs_port, "GCS_EMULATOR_PORT")
        server = start_emulator(port, state / "gcs", log=state / "logs" / "gcs.log")
        gcs_url, gcs_pid = server.url, server.pid
    pg_url = pg_pid = db_env = None
    previous_pg = previous and previous.get("pg_pid")
    if database == "postgresql":
        if previous_pg and pid_alive(previous_pg) and postgres.accepts(_port_of(previous["postgres_url"])):
            pg_url, pg_pid = previous["postgres_url"], previous_pg
        else:
            port = _stable_port(previous and previous.get("postgres_url"), pg_port, "POSTGRES_PORT")
            server = postgres.start(port, state / "postgres", creds["postgres"], log=state / "logs" / "postgres.log")
            pg_url, pg_pid = server.url, server.pid
        db_env = postgres.label_studio_env(_port_of(pg_url), creds["postgres"])
    ls_alive = previous and pid_alive(previous["ls_pid"]) and http_ok(previous["label_studio_url"] + "/health")
    if ls_alive and (previous["emulator_url"], previous.get("database", "sqlite"), previous.get("postgres_url")) \
            != (gcs_url, database, pg_url):
        # it points at an emulator or a database that is gone or not the one asked for: restart it on the new ones
        _stop_label_studio(previous)
        ls_alive = False
    if database == "sqlite" and previous_pg and pid_alive(previous_pg):
        stop_pid(previous_pg, first=signal.SIGINT)  # back to SQLite: the PostgreSQL of the last start is not used
    if ls_alive:
        ls_url, ls_pid, web_pid = previous["label_studio_url"], previous["ls_pid"], previous.get("web_pid")
    else:
        port = _stable_port(previous and previous.get("label_studio_url"), ls_port, "LABEL_STUDIO_PORT")
        server = start_label_studio(port, state / "label-studio", creds["username"], creds["password"],
                                    creds["token"], gcs_url, log=state / "logs" / "label-studio.log",
                                    database=db_env)
        ls_url, ls_pid = server.url, server.pid
        web_pid = server.front.pid if server.front else None

    info = StackInfo(ls_url, gcs_url, DEMO_BUCKET, creds["username"], creds["password"], creds["token"],
                     None, ls_pid, gcs_pid, database, pg_url, pg_pid, web_pid)
    write_text_atomic(info_file, json.dumps({**asdict(info), "password": None, "token": None, "demo_limit": limit},
                                            indent=2))
    if seed:
        os.environ["STORAGE_EMULATOR_HOST"] = gcs_url
        client = ls.connect(Settings(url=ls_url, api_key=creds["token"], bucket=DEMO_BUCKET))
        info.project_id = seed_demo(client, DEMO_BUCKET, state / "samples", limit=limit, progress=progress)
        write_text_atomic(info_file, json.dumps({**asdict(info), "password": None, "token": None, "demo_limit": limit}, indent=2))
    return info


def add_annotators(root: str | Path, client, count: int, secrets_dir: str | Path | None = None) -> dict:
    """`count` annotator users of the embedded stack under `root`, each with their own API token (users.py), written
    to secrets/annotators.json (the owner's only). Returns {"annotators": [...], "file": path}."""
    state = Path(root).resolve() / ".stack"
    if not (state / "stack.json").is_file():
        raise ConfigError(f"no embedded stack under {Path(root).resolve()}: annotator tokens are read where Label "
                          "Studio keeps its data (start it with ./docker-shell.sh, or in the Docker stack run "
                          "`docker compose exec label-studio label-studio user --username EMAIL`)")
    info = json.loads((state / "stack.json").read_text())
    secrets = Path(secrets_dir or os.environ.get("SECRETS_DIR") or Path(root) / "secrets")
    database = None
    if info.get("database") == "postgresql":
        creds = credentials.ensure(secrets, postgres=True)
        database = postgres.label_studio_env(_port_of(info["postgres_url"]), creds["postgres"])
    env = label_studio_env(info.get("emulator_url"), database)
    made = users.ensure_annotators(client, count, state / "label-studio", env)
    path = users.write_annotators(secrets / "annotators.json", made)
    return {"annotators": [{k: a[k] for k in ("id", "email")} for a in made], "file": str(path)}


def _stop_label_studio(previous: dict) -> None:
    for key in ("web_pid", "ls_pid"):  # nginx first: no request reaches a stopping app
        if pid_alive(previous.get(key)):
            stop_pid(previous[key])


def _stable_port(previous_url: str | None, wanted: int, variable: str) -> int:
    """The port a server had on the last start, so every component that recorded its address (.stack/env, a
    dataset repository's DVC remote, a connected ML backend) still reaches it; else `wanted`; else any. A recorded
    port another process holds is an error naming `variable` (never a silent move those records would miss),
    unless `variable` asks for another port."""
    if previous_url:
        port = _port_of(previous_url)
        if port_is_free(port):
            return port
        asked = os.environ.get(variable, "")
        if not (asked.isdigit() and int(asked) != port):
            raise ConfigError(f"port {port}, where the last start put this server (.stack/stack.json), is taken by "
                              f"another process; stop that process, or set {variable} to a free port to move it")
    return wanted if port_is_free(wanted) else free_port()


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[-1].split("/")[0])


def down(root: str | Path) -> list[str]:
    """Stop the embedded stack's servers; data stays for the next start."""
    state = Path(root).resolve() / ".stack"
    if not state.is_dir():
        return []
    with _stack_lock(state):  # a start in progress finishes first, so what it starts is stopped too
        if not (state / "stack.json").exists():
            return []
        previous = json.loads((state / "stack.json").read_text())
        stopped = []
        # Label Studio first: PostgreSQL's fast shutdown would cut its connections under it
        for name, key, sig in (("nginx", "web_pid", signal.SIGTERM), ("Label Studio", "ls_pid", signal.SIGTERM), ("GCS emulator", "gcs_pid", signal.SIGTERM),
                               ("PostgreSQL", "pg_pid", signal.SIGINT)):
            if pid_alive(previous.get(key)):
                stop_pid(previous[key], first=sig)
                stopped.append(name)
        return stopped


def main(argv: list[str] | None = None) -> int:
    """`python -m datalabel.embedded up|down|env` — what docker-shell.sh calls without a Docker engine."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m datalabel.embedded",
                                     description="Run the stack natively: Label Studio + GCS emulator on 127.0.0.1.")
    parser.add_argument("action", choices=["up", "down"], help="up: start (or reuse) and seed; down: stop")
    parser.add_argument("--root", default=os.getcwd(), help="project folder holding .stack/ and secrets/")
    parser.add_argument("--port", type=int, default=int(os.environ.get("LABEL_STUDIO_PORT", 8080)))
    parser.add_argument("--gcs-port", type=int, default=int(os.environ.get("GCS_EMULATOR_PORT", 9023)))
    parser.add_argument("--env-file", help="write the shell environment (export lines) to this file")
    parser.add_argument("--no-seed", action="store_true", help="start the servers only")
    parser.add_argument("--database", choices=DATABASES, default=os.environ.get("LS_DATABASE") or None,
                        help="Label Studio's database (default: the last start's, else sqlite; $LS_DATABASE)")
    parser.add_argument("--pg-port", type=int, default=int(os.environ.get("POSTGRES_PORT", 5432)),
                        help="PostgreSQL's port when it is started (default 5432, else a free one)")
    args = parser.parse_args(argv)
    try:
        if args.action == "down":
            stopped = down(args.root)
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
            return 0
        with output.progress("uploading sample images", unit="images") as advance:
            limit = int(os.environ["DEMO_LIMIT"]) if os.environ.get("DEMO_LIMIT", "").isdigit() else None
            info = up(args.root, args.port, args.gcs_port, seed=not args.no_seed, limit=limit, progress=advance,
                      database=args.database, pg_port=args.pg_port)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.env_file:
        lines = [f"export {k}={v}" for k, v in info.env().items()]
        fd = os.open(args.env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fp:
            fp.write("\n".join(lines) + "\n")
    print(f"Label Studio: {info.label_studio_url}")
    if info.project_id:
        print(f"Demo project: {info.label_studio_url}/projects/{info.project_id}/data")
    print(f"Login:        {info.username}  (password in secrets/ls_admin_password)")
    print("API token:    secrets/ls_api_token")
    print(f"GCS emulator: {info.emulator_url}  bucket {info.bucket}")
    if info.postgres_url:
        print(f"Database:     PostgreSQL {info.postgres_url}/{postgres.DATABASE}  (data in .stack/postgres)")
    if info.web_pid:
        print(f"Web server:   nginx in front of gunicorn, {webserver.workers()} workers (LS_WEB_WORKERS)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
