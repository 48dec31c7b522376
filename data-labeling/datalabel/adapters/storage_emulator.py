"""gcp-storage-emulator's private parts, here only. Written against gcp-storage-emulator 2026.7.19 (checked
before the server starts).

The emulator as the embedded stack runs it, built from subclasses of the emulator's own classes (nothing of the
emulator or of the standard library is patched in place):

- `WholeFileStore(storage._FileStore)`: every file on disk written beside its place and renamed, so a kill leaves
  the old file or the new one (it writes in place: a half-written `.meta` index is not JSON, and the emulator
  cannot start again);
- `IdleIndexStorage(storage.Storage)`: the index (every object's metadata, as indented JSON) written only on disk,
  at most every second (or ten times the last write's cost) and at exit, instead of on every write, in memory too
  (a bucket of 30,000 objects spent most of a second per upload on it); at start, object files the index does not
  list (written just before a kill) are removed, so what is on disk is what the emulator lists;
- `BackloggedServer(http.server.HTTPServer)`: a listen backlog of 256 instead of socketserver's 5 (parallel
  clients got connection resets and slow retries), and the pending index written in the serving thread between
  requests (`service_actions`), never beside a request in flight;
- `EmulatorServer(server.Server)` and its `APIThread`: the emulator's server with the three above.
"""
from __future__ import annotations

import os
import sys
import time
from functools import partial
from http.server import HTTPServer
from pathlib import Path

from . import require

PINNED = {"gcp-storage-emulator": "2026.7.19"}


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


class BackloggedServer(HTTPServer):
    request_queue_size = 256

    def __init__(self, address, handler, storage) -> None:
        self.storage = storage
        super().__init__(address, handler)

    def service_actions(self) -> None:
        # serve_forever calls it after each request and every 0.5 s when idle
        self.storage.flush()


def server_class():
    """The emulator's Server with whole-file writes, the index written when idle and a deeper backlog."""
    require(PINNED)
    from gcp_storage_emulator import server, storage
    from gcp_storage_emulator.handlers import buckets

    class WholeFileStore(storage._FileStore):
        def write_bytes(self, rel: str, content: bytes) -> None:
            if self._use_memory:
                return super().write_bytes(rel, content)
            path = self._disk_path(self._norm(rel))
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(content)
            os.replace(tmp, path)

    class IdleIndexStorage(storage.Storage):
        def __init__(self, *args, **kwargs) -> None:
            self.pending, self.next_write = False, 0.0
            super().__init__(*args, **kwargs)  # builds its store and reads the index (pruned, below)
            if not self._use_memory_fs:
                self._store = WholeFileStore(use_memory=False, root=self._store._root)

        def _read_config_from_file(self) -> None:
            super()._read_config_from_file()
            if not self._use_memory_fs:
                for key in remove_orphans(self._store._root, self.objects):
                    print(f"removed {key}: on disk but not in the index (written just before a kill)",
                          file=sys.stderr)

        def _write_config_to_file(self) -> None:
            self.pending = not self._use_memory_fs

        def flush(self, force: bool = False) -> None:
            """Write the pending index now if it is due (or `force`)."""
            if self.pending and (force or time.monotonic() >= self.next_write):
                started = time.monotonic()
                self.pending = False
                super()._write_config_to_file()
                self.next_write = time.monotonic() + max(1.0, 10 * (time.monotonic() - started))

    class APIThread(server.APIThread):
        def run(self) -> None:
            self._httpd = BackloggedServer((self._host, self._port), partial(server.RequestHandler, self._storage),
                                           self._storage)
            self.is_running.set()
            self._httpd.serve_forever()

    class EmulatorServer(server.Server):
        def __init__(self, host, port, in_memory, default_bucket=None, data_dir=None, project_number=None) -> None:
            # server.Server.__init__ with the classes above in place of Storage and APIThread
            self._storage = IdleIndexStorage(use_memory_fs=in_memory, data_dir=data_dir,
                                             project_number=project_number)
            if default_bucket:
                buckets.create_bucket(default_bucket, self._storage)
            self._api = APIThread(host, port, self._storage)

        def flush(self) -> None:
            self._storage.flush(force=True)

    return EmulatorServer
