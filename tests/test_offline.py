"""The embedded default makes no outbound call: every connection attempt and name lookup of every process of a
full flow (Label Studio, the emulator, both CLIs, DVC) is recorded by an audit hook (tests/audit/sitecustomize.py)
and must go to loopback (or a local socket)."""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

from cli_helpers import run_cli
from versioning_helpers import annotate, sync, tasks_by_image

from datalabel import embedded, samples

AUDIT = Path(__file__).resolve().parent / "audit"
LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "", None}


def is_local(record: dict) -> bool:
    if record["kind"] == "lookup":
        host = record["address"][0]
        return host in LOCAL_NAMES or (isinstance(host, str) and _loopback(host))
    if record["family"] == "AF_UNIX":
        return True
    address = record["address"]
    host = address[0] if isinstance(address, (list, tuple)) else address
    return host in LOCAL_NAMES or _loopback(str(host))


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def test_a_full_flow_of_the_embedded_stack_stays_on_loopback(tmp_path, monkeypatch):
    audit = tmp_path / "audit.jsonl"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(AUDIT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setenv("DATALABEL_AUDIT_FILE", str(audit))
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    root = tmp_path / "stack"
    info = embedded.up(root, embedded.free_port(), embedded.free_port(), limit=12)  # start + demo project
    try:
        env = {**info.env(), "DATASET_REPO": str(tmp_path / "datasets")}
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", info.emulator_url)
        from datalabel import ls
        from datalabel.config import Settings

        client = ls.connect(Settings(url=info.label_studio_url, api_key=info.token))
        truth = samples.read_truth(root / ".stack" / "samples")
        for image, task in sorted(tasks_by_image(client, info.project_id).items())[:6]:  # label
            annotate(client, task.id, truth[image])
        sync(client, info.project_id, "target")
        steps = [
            (["status"], "datalabel"),
            (["stats", str(info.project_id)], "datalabel"),
            (["setup", "--title", "Offline check", "--template", "image-classification", "--labels", "0,1",
              "--source-prefix", embedded.SOURCE_PREFIX, "--target-prefix", "offline-labels/"], "datalabel"),
            (["export", "convert", "--project", str(info.project_id), "-f", "imagefolder", "-o", str(tmp_path / "out")],
             "datalabel"),
            (["init", "--bucket", info.bucket, "--endpoint", info.emulator_url], "dataversion"),
            (["snapshot", "--project", str(info.project_id)], "dataversion"),
            (["commit", "-m", "offline"], "dataversion"),
        ]
        for args, module in steps:
            done = run_cli(*args, env=env, module=module)
            assert done.ok, done
        got = subprocess.run([str(Path(sys.executable).parent / "dvc"), "get", "--rev", "dataset_v1",
                              str(tmp_path / "datasets"), "dataset", "-o", str(tmp_path / "got")],
                             env={**os.environ, **env}, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert got.returncode == 0, got.stderr
        assert len(list((tmp_path / "got").rglob("*.png"))) == 6
    finally:
        embedded.down(root)

    records = [json.loads(line) for line in audit.read_text().splitlines()]
    programs = {" ".join(map(str, r["argv"])) for r in records if r["kind"] == "start"}
    # the hook was in every kind of process of the flow
    for needle in ("label-studio", "-m datalabel.emulator", "-m datalabel ", "-m dataversion", "-m dvc", "dvc get"):
        assert any(needle in p for p in programs), f"no audited process like {needle!r} in {sorted(programs)}"
    attempts = [r for r in records if r["kind"] != "start"]
    assert len(attempts) > 50  # it saw the traffic (Label Studio, the emulator, DVC)
    outbound = [r for r in attempts if not is_local(r)]
    assert outbound == [], f"{len(outbound)} outbound attempt(s), e.g. {outbound[:3]}"
