"""Faults, with real servers: a storage emulator or Label Studio killed in the middle of work, a full disk, two
identical commands at the same moment. The outcome must be a one-line error within a bound the user sets
(DATALABEL_RETRY_TIMEOUT) or a correct result; never partial output, a commit or tag of an incomplete version, or a
duplicate; and a plain rerun completes."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from cli_helpers import CliResult, assert_user_error, run_cli, shell_checkout
from versioning_helpers import annotate, sync, tasks_by_image
from waiting import wait_until

from datalabel import embedded, labelconfig, ls, processes, samples
from datalabel.config import Settings
from dataversion import repo

BOUND = 5  # DATALABEL_RETRY_TIMEOUT in these tests: how long a dead endpoint is retried


def storage_for(url: str):
    """A storage client for one emulator (the session's STORAGE_EMULATOR_HOST points elsewhere)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="local", credentials=AnonymousCredentials(), client_options={"api_endpoint": url})


def start(*args: str, env: dict, module: str = "datalabel", cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", module, *args], env={**os.environ, "COLUMNS": "200", **env},
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float) -> tuple[CliResult, float]:
    started = time.monotonic()
    out, err = proc.communicate(timeout=timeout)
    return CliResult(proc.args, proc.returncode, out, err), time.monotonic() - started


def wait_for(predicate, timeout: float = 60, what: str = "condition") -> None:
    wait_until(predicate, timeout, what, interval=0.05)


def connected_to(pid: int, port: int) -> bool:
    """Whether process `pid` has a TCP connection open to 127.0.0.1:`port`."""
    import psutil

    return any(c.raddr and c.raddr.port == port for c in psutil.Process(pid).net_connections(kind="tcp"))


def lock_held(path: Path) -> bool:
    """Whether another holder has the exclusive lock on `path` (files.exclusive_lock), tried without waiting."""
    import fcntl

    if not path.exists():
        return False
    with open(path, "r+") as fp:
        try:
            fcntl.flock(fp, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fp, fcntl.LOCK_UN)
        return False


@contextlib.contextmanager
def own_emulator(data_dir: Path, port: int | None = None, logs: Path | None = None):
    """An emulator of this test alone, on disk (it can be killed and started again on the same port)."""
    port = port or embedded.free_port()
    server = embedded.start_emulator(port, data_dir, log=(logs or data_dir.parent) / f"gcs-{port}.log")
    try:
        yield server
    finally:
        server.stop()


def test_emulator_killed_during_upload_fails_within_the_bound_and_a_rerun_completes(tmp_path):
    folder = samples.write_digits(tmp_path / "digits", limit=600) / "images"
    data = tmp_path / "gcs-data"
    name = f"fault-{uuid.uuid4().hex[:8]}"
    with own_emulator(data) as gcs:
        storage_for(gcs.url).create_bucket(name)
        env = {"STORAGE_EMULATOR_HOST": gcs.url, "GCS_BUCKET_NAME": name, "DATALABEL_RETRY_TIMEOUT": str(BOUND)}
        proc = start("bucket", "upload", str(folder), "--prefix", "images/", env=env)
        wait_for(lambda: len(list(storage_for(gcs.url).list_blobs(name))) >= 20, what="the upload to start")
        gcs.stop()  # the storage API disappears mid-upload
        result, seconds = finish(proc, timeout=120)
        assert_user_error(result, "cannot reach the storage API", code=3)
        assert seconds < 3 * BOUND + 30, f"gave up after {seconds:.0f} s"
        port = gcs.port
    with own_emulator(data, port) as gcs:  # back on the same address with its data
        again = run_cli("bucket", "upload", str(folder), "--prefix", "images/", "--json", env=env)
        assert again.ok, again
        assert len([b for b in storage_for(gcs.url).list_blobs(name)]) == 600


def _dataset(folder: Path, n: int) -> None:
    """A snapshot folder as `dataversion snapshot` leaves it: n images and a manifest."""
    items = []
    for i in range(n):
        path = folder / "digit" / f"img_{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(512))
        items.append({"source": f"gs://b/images/img_{i:05d}.png", "labels": ["digit"], "task": i + 1})
    (folder / "manifest.json").write_text(json.dumps({"items": items, "format": "imagefolder", "counts": {
        "items": n, "per_class": {"digit": n}, "per_annotator": {}}}))


def test_objects_on_disk_but_not_in_the_index_are_removed_at_start(tmp_path):
    """Killed between an object's write and the index's (written when idle), the emulator kept files it does not
    list (17 orphans after one kill mid-upload); its next start removes them, and what it lists still reads."""
    data = tmp_path / "gcs"
    port = embedded.free_port()
    with own_emulator(data, port) as server:
        bkt = storage_for(server.url).create_bucket("orphans")
        for n in range(3):
            bkt.blob(f"kept/{n}.txt").upload_from_string(f"object {n}")
    folder = next(p for p in data.rglob("orphans") if p.is_dir())
    (folder / "kept" / "lost.txt").write_text("written, then killed before the index")
    (folder / "kept" / ".3.txt.999.tmp").write_text("half a write")
    with own_emulator(data, port) as server:
        bkt = storage_for(server.url).bucket("orphans")
        assert sorted(b.name for b in bkt.list_blobs()) == [f"kept/{n}.txt" for n in range(3)]
        assert bkt.blob("kept/1.txt").download_as_bytes() == b"object 1"
    assert sorted(p.name for p in (folder / "kept").iterdir()) == ["0.txt", "1.txt", "2.txt"]


def test_emulator_killed_during_commit_leaves_no_version_and_a_rerun_tags_it(tmp_path):
    data = tmp_path / "gcs-data"
    name = f"fault-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "datasets"
    with own_emulator(data) as gcs:
        storage_for(gcs.url).create_bucket(name)
        repo.init(path, name, endpoint=gcs.url, jobs=4)
        _dataset(path / repo.DATASET_DIR, 1500)
        refs = repo.git(path, "for-each-ref")
        env = {"DATASET_REPO": str(path), "DATALABEL_RETRY_TIMEOUT": str(BOUND), "STORAGE_EMULATOR_HOST": gcs.url}
        proc = start("commit", "-m", "first", env=env, module="dataversion")
        wait_for(lambda: len(list(storage_for(gcs.url).list_blobs(name, prefix="dvc_store/"))) >= 5, timeout=120,
                 what="the push to start")
        gcs.stop()
        result, seconds = finish(proc, timeout=300)
        assert_user_error(result, "nothing was committed or tagged", code=3)
        assert seconds < 4 * BOUND + 60, f"gave up after {seconds:.0f} s"
        assert repo.git(path, "for-each-ref") == refs and repo.version_tags(path) == []
        port = gcs.port
    with own_emulator(data, port):
        again = run_cli("commit", "-m", "first", env=env, module="dataversion")
        assert again.ok, again
        assert repo.version_tags(path) == ["dataset_v1"]


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs: the disk fills up during the write."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        message = f"cannot mount a tmpfs here ({done.stderr.strip()}); the disk-full faults need root"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_disk_full_during_export_is_one_line_and_leaves_nothing(tiny_disk, tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import bench_convert

    source = tmp_path / "export.json"
    bench_convert.make_export(source, 3000)  # its COCO is ~1 MB: four times the disk
    config = tmp_path / "config.xml"
    config.write_text(bench_convert.CONFIG)
    result = run_cli("export", "convert", "--from-file", source, "--config", config, "-f", "coco", "-o",
                     tiny_disk / "coco", "--no-images")
    assert_user_error(result, "No space left on device", code=1)
    assert list(tiny_disk.iterdir()) == []  # no temporary folder, no half export


def test_disk_full_during_snapshot_is_one_line_and_leaves_nothing(tiny_disk, tmp_path, bucket, gcs_emulator):
    config = tmp_path / "config.xml"
    config.write_text(labelconfig.build_config("image-classification", ["a", "b"]))
    for i in range(60):  # 60 x 8 KiB images: twice the disk
        key = f"images/img_{i:03d}.png"
        bucket.blob(key).upload_from_string(b"\x89PNG" + os.urandom(8 << 10))
        task = {"id": i + 1, "data": {"image": f"gs://{bucket.name}/{key}"}, "annotations": [{
            "id": i + 1, "result": [{"type": "choices", "from_name": "choice", "to_name": "image",
                                     "value": {"choices": ["a" if i % 2 else "b"]}}], "was_cancelled": False}]}
        bucket.blob(f"labels/{i + 1}").upload_from_string(json.dumps(task))
    env = {"GCS_BUCKET_NAME": bucket.name, "STORAGE_EMULATOR_HOST": gcs_emulator.url}
    result = run_cli("snapshot", "--label-config", config, "--out", tiny_disk / "dataset", env=env,
                     module="dataversion")
    assert_user_error(result, "No space left on device", code=1)
    assert list(tiny_disk.iterdir()) == []


def test_two_identical_setups_at_the_same_moment_make_one_project(label_studio, ls_client, bucket, digits_dir):
    for png in sorted((digits_dir / "images").glob("*.png"))[:6]:
        bucket.blob(f"images_unlabeled/{png.name}").upload_from_filename(str(png))
    title = f"Twins {bucket.name}"
    args = ["setup", "--title", title, "--template", "image-classification", "--labels", "a,b", "--json"]
    env = {**os.environ, **label_studio.env(bucket.name)}
    for _ in range(2):
        procs = [start(*args, env=env) for _ in range(2)]
        results = [finish(p, timeout=300)[0] for p in procs]
        assert all(r.ok for r in results), results
        assert len({r.json()["project_id"] for r in results}) == 1
        projects = [p for p in ls.list_projects(ls_client) if p.title == title]
        assert len(projects) == 1
        pid = projects[0].id
        assert len(ls.list_storages(ls_client, pid, "source")) == 1
        assert len(ls.list_storages(ls_client, pid, "target")) == 1
        assert ls.get_project(ls_client, pid).task_number == 6


def test_two_setups_from_different_cache_folders_make_one_complete_project(label_studio, ls_client, bucket,
                                                                            digits_dir, tmp_path):
    """A host and a container, or two users: their setup locks are in different cache folders, so both sync the
    one source storage at once, and Label Studio on SQLite fails one ("database is locked") half way. Both end
    with exit 0 and the project holds every image once."""
    for png in sorted((digits_dir / "images").glob("*.png"))[:20]:
        bucket.blob(f"images_unlabeled/{png.name}").upload_from_filename(str(png))
    title = f"Two caches {bucket.name}"
    args = ["setup", "--title", title, "--template", "image-classification", "--labels", "a,b", "--json"]
    for round_ in range(2):
        procs = [start(*args, env={**label_studio.env(bucket.name), "XDG_CACHE_HOME": str(tmp_path / f"cache-{i}")})
                 for i in range(2)]
        results = [finish(p, timeout=300)[0] for p in procs]
        assert all(r.ok for r in results), results
        projects = [p for p in ls.list_projects(ls_client) if p.title == title]
        assert len(projects) == 1, f"round {round_}: {len(projects)} projects"
        tasks = list(ls.iter_task_json(ls_client, projects[0].id, fields="task_only", resolve_uri=False))
        images = sorted(t["data"]["image"] for t in tasks)
        assert len(images) == 20 and len(set(images)) == 20, f"round {round_}: {len(images)} tasks"


def test_label_studio_killed_during_export_and_snapshot(tmp_path, gcs_emulator, storage_client, logs_dir):
    """Label Studio dies while the command waits for its answer: one line naming Label Studio and nothing written
    (no partial output, no temporary folder); after a restart the same command completes.

    The server is frozen (SIGSTOP) before the command starts, so the command connects and sends its request but
    gets no byte back; once its connection is open the server is killed. The command cannot have what it needs:
    the outcome is decided, not a race."""
    token, data = uuid.uuid4().hex, tmp_path / "ls-data"
    port = embedded.free_port()

    def start_ls():
        return embedded.start_label_studio(port, data, "admin@example.com", uuid.uuid4().hex, token,
                                           emulator_url=gcs_emulator.url, log=logs_dir / f"victim-{port}.log")

    server = start_ls()
    try:
        client = ls.connect(Settings(url=server.url, api_key=token))
        name = f"victim-{uuid.uuid4().hex[:8]}"
        storage_client.create_bucket(name)
        pid = embedded.seed_demo(client, name, tmp_path / "samples", limit=120, title="Victim")
        truth = samples.read_truth(tmp_path / "samples")
        for image, task in tasks_by_image(client, pid).items():
            annotate(client, task.id, truth[image])
        sync(client, pid, "target")
        env = {"LABEL_STUDIO_URL": server.url, "LABEL_STUDIO_API_KEY": token, "GCS_BUCKET_NAME": name,
               "STORAGE_EMULATOR_HOST": gcs_emulator.url, "DATALABEL_RETRY_TIMEOUT": str(BOUND)}
        runs = {
            "export": (["export", "convert", "--project", str(pid), "-f", "imagefolder", "-o", str(tmp_path / "out")],
                       "datalabel", tmp_path / "out"),
            "snapshot": (["snapshot", "--project", str(pid), "--out", str(tmp_path / "dataset")], "dataversion",
                         tmp_path / "dataset"),
        }
        for what, (args, module, out) in runs.items():
            os.killpg(server.pid, signal.SIGSTOP)  # accepts connections (the kernel's backlog), answers nothing
            proc = start(*args, env=env, module=module)
            wait_for(lambda: connected_to(proc.pid, port), what=f"{what} to connect to Label Studio")
            processes.stop_pid(server.pid, first=signal.SIGKILL)
            result, _ = finish(proc, timeout=300)
            assert_user_error(result, "Label Studio")
            assert not out.exists(), f"{what} left {out}"
            leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith((".out", ".dataset"))]
            assert leftovers == []
            server = start_ls()
            shutil.rmtree(out, ignore_errors=True)
            again = run_cli(*args, env=env, module=module)
            assert again.ok, again
            assert len(list(out.rglob("*.png"))) == 120
    finally:
        server.stop()


def test_a_stop_during_start_leaves_no_orphan(tmp_path, monkeypatch):
    """`down` while another shell is still starting the stack waits for it, then stops everything it started."""
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    started: list = []
    thread = threading.Thread(target=lambda: started.append(embedded.up(tmp_path, embedded.free_port(),
                                                                         embedded.free_port(), seed=False)))
    thread.start()
    wait_for(lambda: lock_held(tmp_path / ".stack" / "lock"), what="the start to hold the stack lock")
    try:
        stopped = embedded.down(tmp_path)  # waits for the lock, so for the whole start
        thread.join(300)
        assert started, "the start finished"
        info = started[0]
        assert stopped == ["Label Studio", "GCS emulator"], "down stopped what the start in progress started"
        assert not embedded.pid_alive(info.ls_pid) and not embedded.pid_alive(info.gcs_pid)
    finally:
        embedded.down(tmp_path)
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    assert not embedded.pid_alive(started[0].ls_pid) and not embedded.pid_alive(started[0].gcs_pid)


def test_the_stack_restarted_while_an_ml_backend_is_connected(tmp_path, monkeypatch):
    """Label Studio and the backend each recorded the other's address; after `down` + `up` both still reach each
    other: predictions are served, and a new annotation retrains through Label Studio's webhook."""
    from datalabel import active, mlbackend

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    root = tmp_path / "stack"
    info = embedded.up(root, embedded.free_port(), embedded.free_port(), limit=30)
    backend = server = None
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", info.emulator_url)
        settings = Settings(url=info.label_studio_url, api_key=info.token)
        client = ls.connect(settings)
        truth = samples.read_truth(root / ".stack" / "samples")
        tasks = sorted(active.load_tasks(client, info.project_id), key=lambda t: t.id)
        train = [t for t in tasks if active.task_split(t) == "train"]
        for task in train[:16]:
            annotate(client, task.id, truth[active.media_url(task).rsplit("/", 1)[-1]])
        backend = mlbackend.Backend(tmp_path / "models", settings)
        active.train_project(client, info.project_id, backend.models_dir)
        pair = mlbackend.Credentials("ml", "restart-test")
        server, url = mlbackend.start_in_thread(backend, pair)
        assert mlbackend.connect(client, info.project_id, url, pair)["state"] == "CO"

        assert embedded.down(root) == ["Label Studio", "GCS emulator"]
        again = embedded.up(root, limit=30)
        assert (again.label_studio_url, again.emulator_url) == (info.label_studio_url, info.emulator_url)
        client = ls.connect(settings)
        probe = train[-1]
        mlbackend.retrieve_predictions(client, info.project_id, [probe.id])
        assert active.load_tasks_by_id(client, [probe.id])[0].predictions
        trainings = backend.trainings
        annotate(client, train[16].id, truth[active.media_url(train[16]).rsplit("/", 1)[-1]])
        wait_for(lambda: backend.trainings > trainings, timeout=120, what="a retrain after the restart")
        assert backend.wait_idle(120) and backend.last_error is None
    finally:
        if server is not None:
            server.shutdown()
        if backend is not None:
            backend.stop()
        embedded.down(root)


def test_two_shells_started_at_once_make_one_stack_and_down_stops_it(tmp_path):
    """`./docker-shell.sh --local` twice at the same moment (two terminals) on one checkout: one Label Studio, one
    emulator, and `./docker-shell.sh down` leaves none running."""
    checkout, env = shell_checkout(tmp_path / "checkout")
    shell = ["bash", str(checkout / "docker-shell.sh")]

    def ours() -> list[int]:
        found = []
        for proc in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                if proc.name.isdigit() and str(checkout).encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
        return found

    try:
        procs = [subprocess.Popen([*shell, "--local"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=600) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        info = json.loads((checkout / ".stack" / "stack.json").read_text())
        urls = {line for out, _ in outs for line in out.splitlines() if line.startswith("Label Studio:")}
        assert urls == {f"Label Studio: {info['label_studio_url']}"}, outs
        assert embedded.pid_alive(info["ls_pid"]) and embedded.pid_alive(info["gcs_pid"])
        assert embedded.http_ok(info["label_studio_url"] + "/health")
    finally:
        down = subprocess.run([*shell, "down"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    assert not embedded.pid_alive(info["ls_pid"]) and not embedded.pid_alive(info["gcs_pid"])
    assert ours() == []
