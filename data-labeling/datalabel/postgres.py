"""A local PostgreSQL for the embedded stack's team mode, as the Compose `postgres` profile runs one in a container.

Debian's `postgresql` package provides the binaries (/usr/lib/postgresql/N/bin); the cluster lives under the
stack's folder (.stack/postgres), listens on 127.0.0.1 only, and takes the password generated into secrets/.
PostgreSQL refuses to run as root, so when we are root it runs in a user namespace where our uid is an ordinary
one: its files stay ours outside (no chown, no other system user, no world-readable folders on the way).
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

from .errors import ConfigError, ServerError
from .processes import Server, port_is_free, spawn

USER = "labelstudio"
DATABASE = "labelstudio"
INSTALL_HINT = "install it (Debian/Ubuntu: apt-get install postgresql) or run without --postgres"


def bindir() -> Path:
    """The newest PostgreSQL server binaries installed, Debian's layout first, else whatever is on PATH."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if versions:
        return versions[-1].parent
    found = shutil.which("postgres") or shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise ConfigError(f"PostgreSQL is not installed (no postgres binary found); {INSTALL_HINT}")


def as_ordinary_user(cmd: list[str]) -> list[str]:
    """`cmd` as run by a non-root uid: unchanged unless we are root, else inside a user namespace."""
    if os.geteuid() != 0:
        return cmd
    if not shutil.which("unshare"):
        raise ConfigError("PostgreSQL will not run as root and `unshare` (util-linux) is missing to run it as "
                          "another user; install util-linux or start the stack as an ordinary user")
    inner = pwd.getpwnam("nobody")  # any non-zero uid that has a name: initdb looks its user up
    return ["unshare", "--user", f"--map-user={inner.pw_uid}", f"--map-group={inner.pw_gid}", *cmd]


def initialized(data_dir: Path) -> bool:
    return (data_dir / "PG_VERSION").exists()


def init(data_dir: Path, password: str, log: Path) -> None:
    """A new cluster in `data_dir`: superuser `labelstudio`, password authentication everywhere, UTF-8."""
    bins = bindir()
    tmp = data_dir.with_name(data_dir.name + ".init")
    shutil.rmtree(tmp, ignore_errors=True)  # a half-made cluster from an interrupted first start
    cmd = as_ordinary_user([str(bins / "initdb"), "-D", str(tmp), "-U", USER, "--pwfile=/dev/stdin",
                            "-A", "scram-sha-256", "-E", "UTF8", "--no-locale"])
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        done = subprocess.run(cmd, input=password.encode() + b"\n", stdout=out, stderr=subprocess.STDOUT,
                              umask=0o077)
    if done.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ServerError(f"PostgreSQL initdb failed (code {done.returncode}); log: {log}")
    tmp.rename(data_dir)  # whole or not at all: a cluster is only ever found complete


def server_command(data_dir: Path, port: int) -> list[str]:
    """The postgres server on 127.0.0.1:port, its socket in its own folder (not the system's /run/postgresql)."""
    return as_ordinary_user([str(bindir() / "postgres"), "-D", str(data_dir), "-h", "127.0.0.1", "-p", str(port),
                             "-k", str(data_dir)])


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def ensure_database(port: int, password: str, data_dir: Path, timeout: float = 60.0) -> None:
    """Create Label Studio's database once; waits until the server takes logins (it accepts TCP before)."""
    import psycopg

    def refused(exc: BaseException) -> bool:
        return "password authentication failed" in str(exc)

    def create() -> None:
        with psycopg.connect(host="127.0.0.1", port=port, user=USER, password=password, dbname="postgres",
                             autocommit=True, connect_timeout=5) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
                conn.execute(f"CREATE DATABASE {DATABASE}")

    try:  # still starting: tried again; a wrong password: at once
        Retrying(retry=retry_if_exception(lambda e: isinstance(e, psycopg.OperationalError) and not refused(e)),
                 stop=stop_after_delay(timeout), wait=wait_fixed(0.5), reraise=True)(create)
    except psycopg.OperationalError as exc:
        if refused(exc):
            raise ConfigError(f"PostgreSQL in {data_dir} does not take the password in secrets/postgres_password "
                              "(was it regenerated?): restore it, or remove that folder to start an empty "
                              "database") from None
        raise ServerError(f"PostgreSQL on 127.0.0.1:{port} did not take logins within {timeout:.0f}s: "
                          f"{str(exc).strip().splitlines()[0]}") from None


def label_studio_env(port: int, password: str) -> dict[str, str]:
    """What Label Studio reads to use this server (its settings' POSTGRE_* names)."""
    return {"DJANGO_DB": "default", "POSTGRE_HOST": "127.0.0.1", "POSTGRE_PORT": str(port), "POSTGRE_USER": USER,
            "POSTGRE_PASSWORD": password, "POSTGRE_NAME": DATABASE}


def start(port: int, data_dir: str | Path, password: str, log: str | Path = "postgres.log",
          timeout: float = 60.0) -> Server:
    """PostgreSQL on 127.0.0.1:port with its cluster in `data_dir` (made on the first start) and Label Studio's
    database in it. Stopped with SIGINT (PostgreSQL's fast shutdown; SIGTERM would wait for every client)."""
    if not port_is_free(port):
        raise ServerError(f"port {port} is already in use; pick another with POSTGRES_PORT")
    data_dir, log = Path(data_dir), Path(log)
    if not initialized(data_dir):
        init(data_dir, password, log)
    # no telemetry to switch off here: PostgreSQL makes no outbound calls
    server = spawn("PostgreSQL", server_command(data_dir, port), dict(os.environ), log,
                   f"postgresql://127.0.0.1:{port}", port, timeout, ready=lambda: accepts(port))
    server.stop_signal = signal.SIGINT
    server.url = f"postgresql://127.0.0.1:{port}"
    try:
        ensure_database(port, password, data_dir, timeout)
    except Exception:
        server.stop()
        raise
    return server
