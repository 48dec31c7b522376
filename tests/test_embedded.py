"""The embedded default as docker-shell.sh runs it: first start seeds, second start reuses, down stops."""
from __future__ import annotations

import os

from datalabel import embedded, gcs, ls
from datalabel.config import Settings


def test_up_twice_then_down(tmp_path, monkeypatch):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    first = embedded.up(tmp_path, embedded.free_port(), embedded.free_port(), limit=12)
    try:
        assert (tmp_path / "secrets" / "ls_api_token").stat().st_mode & 0o777 == 0o600
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
