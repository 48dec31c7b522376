"""The embedded default as docker-shell.sh runs it: first start seeds, second start reuses, down stops."""
from __future__ import annotations

import json
import os

from pathlib import Path

from datalabel import embedded, gcs, ls, webserver
from datalabel.config import Settings


def command_lines() -> dict[int, bytes]:
    out = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                out[int(proc.name)] = (proc / "cmdline").read_bytes()
            except OSError:  # gone meanwhile
                pass
    return out


def assert_secrets_stay_private(root: Path, info) -> None:
    """No process's command line (world-readable) holds the password or token; every file under .stack/ that
    holds one is the owner's only, and so is .stack/ itself."""
    secrets = [info.password.encode(), info.token.encode()]
    leaking = {pid: line[:80] for pid, line in command_lines().items() if any(s in line for s in secrets)}
    assert leaking == {}
    state = root / ".stack"
    assert state.stat().st_mode & 0o777 == 0o700
    holders = []
    for path in state.rglob("*"):
        if path.is_file() and any(s in path.read_bytes() for s in secrets):
            holders.append(path)
            assert path.stat().st_mode & 0o077 == 0, f"{path} holds a secret and others can read it"
    assert any(p.suffix == ".sqlite3" for p in holders), "Label Studio's database holds the token (checked above)"


def test_up_twice_then_down(tmp_path, monkeypatch):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    first = embedded.up(tmp_path, embedded.free_port(), embedded.free_port(), limit=12)
    try:
        assert (tmp_path / "secrets" / "ls_api_token").stat().st_mode & 0o777 == 0o600
        assert_secrets_stay_private(tmp_path, first)
        second = embedded.up(tmp_path, limit=12)
        assert (second.ls_pid, second.gcs_pid, second.project_id) == (first.ls_pid, first.gcs_pid, first.project_id)
        client = ls.connect(Settings(url=second.label_studio_url, api_key=second.token))
        assert [p.title for p in ls.list_projects(client)] == [embedded.DEMO_TITLE]
        assert len(ls.list_storages(client, second.project_id, "source")) == 1
        assert len(ls.list_storages(client, second.project_id, "target")) == 1
        assert ls.get_project(client, second.project_id).task_number == 12
        bkt = gcs.bucket(gcs.client(), embedded.DEMO_BUCKET)
        assert len(list(gcs.list_blobs(bkt, embedded.SOURCE_PREFIX))) == 12
    finally:
        stopped = embedded.down(tmp_path)
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    assert stopped == ["Label Studio", "GCS emulator"]
    assert not embedded.pid_alive(first.ls_pid) and not embedded.pid_alive(first.gcs_pid)
    assert embedded.down(tmp_path) == []


def test_a_restart_keeps_every_address_and_two_starts_at_once_make_one_stack(tmp_path, monkeypatch):
    """What recorded an address (.stack/env, a DVC remote, a connected ML backend) still reaches the servers after
    a restart; two starts at the same moment (two shells) give one stack, and one `down` stops everything."""
    import threading

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    ls_port, gcs_port = embedded.free_port(), embedded.free_port()
    results, errors = [], []

    def start():
        try:
            results.append(embedded.up(tmp_path, ls_port, gcs_port, seed=False))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert errors == [] and len(results) == 2
        a, b = results
        assert (a.ls_pid, a.gcs_pid) == (b.ls_pid, b.gcs_pid), "the second start reused the first one's servers"
        assert embedded.down(tmp_path) == ["Label Studio", "GCS emulator"]
        # the default ports are now taken by someone else: the restart still takes the recorded ones
        again = embedded.up(tmp_path, embedded.free_port(), embedded.free_port(), seed=False)
        assert (again.label_studio_url, again.emulator_url) == (a.label_studio_url, a.emulator_url)
        # the emulator alone died (killed): the next start brings it back on the same address, Label Studio stays
        embedded.stop_pid(again.gcs_pid)
        third = embedded.up(tmp_path, seed=False)
        assert third.emulator_url == again.emulator_url and third.ls_pid == again.ls_pid
        assert embedded.http_ok(third.emulator_url + "/")
    finally:
        embedded.down(tmp_path)
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    alive = [pid for r in results for pid in (r.ls_pid, r.gcs_pid) if embedded.pid_alive(pid)]
    assert alive == []


def test_team_mode_on_a_local_postgresql_from_docker_shell(tmp_path):
    """`./docker-shell.sh --local --postgres`: Label Studio's tasks and annotations live in a PostgreSQL whose
    cluster is under .stack/, on 127.0.0.1 only, password from secrets/; `down` stops it; a plain start keeps team
    mode and its data; LS_DATABASE=sqlite goes back and stops PostgreSQL."""
    import subprocess

    import psycopg

    from cli_helpers import shell_checkout

    checkout, env = shell_checkout(tmp_path / "checkout")
    shell = ["bash", str(checkout / "docker-shell.sh")]

    def start(*args, **extra):
        done = subprocess.run([*shell, "--local", *args], env={**env, **extra}, cwd=tmp_path, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout, json.loads((checkout / ".stack" / "stack.json").read_text())

    def query(info, sql):
        password = (checkout / "secrets" / "postgres_password").read_text().strip()
        port = int(info["postgres_url"].rsplit(":", 1)[1])
        with psycopg.connect(host="127.0.0.1", port=port, user="labelstudio", password=password,
                             dbname="labelstudio") as conn:
            return conn.execute(sql).fetchone()[0]

    try:
        out, info = start("--postgres")
        assert info["database"] == "postgresql" and "Database:     PostgreSQL postgresql://127.0.0.1:" in out
        assert query(info, "SELECT count(*) FROM task") == 6
        assert query(info, "SHOW listen_addresses") == "127.0.0.1"
        assert not (checkout / ".stack" / "label-studio" / "label_studio.sqlite3").exists()
        assert (checkout / ".stack" / "postgres").stat().st_mode & 0o777 == 0o700
        assert_production_server(info)
        token = (checkout / "secrets" / "ls_api_token").read_text().strip()
        client = ls.connect(Settings(url=info["label_studio_url"], api_key=token))
        task = next(iter(ls.iter_task_json(client, info["project_id"])))
        client.annotations.create(id=task["id"], result=[{"type": "choices", "from_name": "label", "to_name": "image",
                                                          "value": {"choices": ["3"]}}])
        assert query(info, "SELECT count(*) FROM task_completion") == 1
        # the web workers keep their database connections between requests (gunicorn_conf.py): connections of
        # Label Studio opened before these requests run their queries (with Django's default every request has
        # its own, closed at its end)
        before = query(info, "SELECT now()").isoformat()
        for _ in range(2 * webserver.workers()):
            ls.get_project(client, info["project_id"])
        reused = query(info, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'labelstudio' "
                             f"AND backend_start < '{before}' AND state_change > '{before}'")
        assert reused >= 1
        password = (checkout / "secrets" / "postgres_password").read_bytes().strip()
        assert [pid for pid, line in command_lines().items() if password in line] == []

        down = subprocess.run([*shell, "down"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0 and "PostgreSQL" in down.stdout and "nginx" in down.stdout, down
        assert not any(embedded.pid_alive(info[key]) for key in ("pg_pid", "ls_pid", "web_pid"))

        _, again = start()  # no flag: team mode was remembered, its data kept, the demo not made twice
        assert again["database"] == "postgresql" and again["project_id"] == info["project_id"]
        assert query(again, "SELECT count(*) FROM task") == 6
        assert query(again, "SELECT count(*) FROM task_completion") == 1

        _, back = start(LS_DATABASE="sqlite")
        assert back["database"] == "sqlite" and back["pg_pid"] is None and back["web_pid"] is None
        assert not embedded.pid_alive(again["pg_pid"]) and not embedded.pid_alive(again["web_pid"])
        # the one-person default stays `label-studio start`'s one process
        assert b"label-studio\x00start" in (Path("/proc") / str(back["ls_pid"]) / "cmdline").read_bytes()
        assert worker_pids(back["ls_pid"]) == []
        assert (checkout / ".stack" / "label-studio" / "label_studio.sqlite3").exists()
    finally:
        subprocess.run([*shell, "down"], env=env, cwd=tmp_path, capture_output=True, timeout=120)
    for key in ("ls_pid", "gcs_pid", "pg_pid", "web_pid"):
        assert not embedded.pid_alive(info[key])


def test_a_restart_keeps_the_demo_size_and_refuses_a_taken_port(tmp_path, monkeypatch):
    """A plain restart (no DEMO_LIMIT) keeps a 3-image demo at 3 tasks; the recorded emulator port held by another
    process is one line naming GCS_EMULATOR_PORT (no silent move that .dvc/config and a connected ML backend would
    miss); with GCS_EMULATOR_PORT set to a free port the emulator moves there."""
    import socket

    import pytest

    from datalabel.errors import ConfigError

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("GCS_EMULATOR_PORT", raising=False)
    first = embedded.up(tmp_path, embedded.free_port(), embedded.free_port(), limit=3)
    try:
        embedded.down(tmp_path)
        again = embedded.up(tmp_path)
        client = ls.connect(Settings(url=again.label_studio_url, api_key=again.token))
        assert ls.get_project(client, again.project_id).task_number == 3
        embedded.down(tmp_path)
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the emulator's closed connections linger
        holder.bind(("127.0.0.1", int(first.emulator_url.rsplit(":", 1)[1])))
        holder.listen()
        try:
            with pytest.raises(ConfigError, match="GCS_EMULATOR_PORT"):
                embedded.up(tmp_path, seed=False)
            assert not embedded.pid_alive(json.loads((tmp_path / ".stack" / "stack.json").read_text())["ls_pid"])
            moved = embedded.free_port()
            monkeypatch.setenv("GCS_EMULATOR_PORT", str(moved))
            assert embedded.up(tmp_path, gcs_port=moved, seed=False).emulator_url.endswith(f":{moved}")
        finally:
            holder.close()
    finally:
        embedded.down(tmp_path)
        os.environ.pop("STORAGE_EMULATOR_HOST", None)


def worker_pids(parent: int) -> list[int]:
    """Processes whose parent is `parent` (gunicorn's workers)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def assert_production_server(info: dict) -> None:
    """Team mode serves Label Studio as its production image does: the WSGI app under gunicorn workers (one per
    CPU plus one) behind nginx, which answers the public address and serves static files itself."""
    import urllib.request

    from datalabel import webserver

    assert embedded.pid_alive(info["web_pid"])
    assert b"gunicorn" in (Path("/proc") / str(info["ls_pid"]) / "cmdline").read_bytes()
    assert len(worker_pids(info["ls_pid"])) == webserver.workers()
    with urllib.request.urlopen(info["label_studio_url"] + "/static/images/favicon.ico", timeout=10) as resp:
        assert resp.headers["Server"] == "nginx" and resp.headers["Cache-Control"] == "max-age=604800"
        assert resp.read() == (webserver.package_dir() / "core" / "static_build" / "images" / "favicon.ico").read_bytes()
    with urllib.request.urlopen(info["label_studio_url"] + "/health", timeout=10) as resp:
        assert resp.status == 200 and resp.headers["Server"] == "nginx"
