"""The GCS emulator as the embedded stack runs it: gcp-storage-emulator with a deeper listen backlog and whole-file
writes.

Its single-threaded HTTP server keeps socketserver's default backlog of 5 pending connections, so parallel
clients (uploads, snapshots, Label Studio itself) get connection resets and slow retries. And it writes its files
(objects and the `.meta` index of all of them) in place: killed in the middle of one, it cannot start again (a
half-written index is not JSON). Here every file on disk is written beside its place and renamed, so a kill leaves
the old file or the new one. Nothing else about the emulator changes.

    python -m datalabel.emulator start --host=127.0.0.1 --port=9023 --in-memory
"""
from __future__ import annotations

import os
import socketserver
import sys


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


def main() -> None:
    socketserver.TCPServer.request_queue_size = 256
    _whole_file_writes()
    from gcp_storage_emulator.__main__ import main as emulator_main

    emulator_main(sys.argv[1:])


if __name__ == "__main__":
    main()
