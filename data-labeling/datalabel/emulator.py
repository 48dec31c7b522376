"""The GCS emulator as the embedded stack runs it: gcp-storage-emulator with a deeper listen backlog, whole-file
writes, and its index written when idle.

Its single-threaded HTTP server keeps socketserver's default backlog of 5 pending connections, so parallel
clients (uploads, snapshots, Label Studio itself) get connection resets and slow retries. And it writes its files
(objects and the `.meta` index of all of them) in place: killed in the middle of one, it cannot start again (a
half-written index is not JSON). Here every file on disk is written beside its place and renamed, so a kill leaves
the old file or the new one. And it rewrites that index (every object's metadata, as indented JSON) on every
write, in memory too, where nothing reads it: a bucket of 30,000 objects spent most of a second per upload on it.
Here the index is written only on disk, at most every second (or ten times the last write's cost) and at exit; a
hard kill can lose the last second of index entries, never the index; so at start, object files the index does
not list (written just before a kill) are removed, and what is on disk is what the emulator lists. Nothing else
about the emulator changes.

    python -m datalabel.emulator start --host=127.0.0.1 --port=9023 --in-memory
"""
from __future__ import annotations

import os
import signal
import socketserver
import sys
import time
from pathlib import Path


def _whole_file_writes() -> None:
    from gcp_storage_emulator import storage

    in_place = storage._FileStore.write_bytes

    def write_bytes(self, rel: str, content: bytes) -> None:
        if self._use_memory:
            return in_place(self, rel, content)
        path = self._disk_path(self._norm(rel))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(content)
        os.replace(tmp, path)

    storage._FileStore.write_bytes = write_bytes


def _index_written_when_idle():
    """Defer the emulator's index writes; returns `flush(force=False)`, which writes what is pending."""
    from http import server as http_server

    from gcp_storage_emulator import storage

    write_now = storage.Storage._write_config_to_file
    pending: list = []
    clock = {"next": 0.0}

    def mark(self) -> None:
        if not self._use_memory_fs and self not in pending:
            pending.append(self)

    def flush(force: bool = False) -> None:
        if pending and (force or time.monotonic() >= clock["next"]):
            started = time.monotonic()
            while pending:
                write_now(pending.pop())
            cost = time.monotonic() - started
            clock["next"] = time.monotonic() + max(1.0, 10 * cost)

    # serve_forever calls service_actions in the serving thread after each request and every 0.5 s when idle,
    # so the index is written where the objects change, never beside a request in flight
    storage.Storage._write_config_to_file = mark
    http_server.HTTPServer.service_actions = lambda self: flush()
    return flush


def remove_orphans(root: Path, objects: dict) -> list[str]:
    """Files under root/<bucket>/ that the index (`objects`: bucket -> key -> metadata) does not list, and
    leftover temporary files: removed. Returns them as bucket/key."""
    from gcp_storage_emulator.storage import RESUMABLE_DIR, SOFT_DELETE_DIR, _FileStore

    removed = []
    if not root.is_dir():
        return removed
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.name in (RESUMABLE_DIR, SOFT_DELETE_DIR):
            continue
        listed = {_FileStore._norm(key) for key in objects.get(folder.name, {})}
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.relative_to(folder).as_posix() not in listed:
                path.unlink()
                removed.append(f"{folder.name}/{path.relative_to(folder).as_posix()}")
    return removed


def _orphans_removed_at_start() -> None:
    from gcp_storage_emulator import storage

    read = storage.Storage._read_config_from_file

    def read_and_prune(self) -> None:
        read(self)
        if not self._use_memory_fs:
            for key in remove_orphans(self._store._root, self.objects):
                print(f"removed {key}: on disk but not in the index (written just before a kill)", file=sys.stderr)

    storage.Storage._read_config_from_file = read_and_prune


def main() -> None:
    socketserver.TCPServer.request_queue_size = 256
    _whole_file_writes()
    _orphans_removed_at_start()
    flush = _index_written_when_idle()
    from gcp_storage_emulator.__main__ import main as emulator_main

    # SIGTERM (how the stack stops it) ends the serving loop like Ctrl-C, so the pending index is written
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        emulator_main(sys.argv[1:])
    finally:
        flush(force=True)


if __name__ == "__main__":
    main()
