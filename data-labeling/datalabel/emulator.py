"""The GCS emulator as the embedded stack runs it: gcp-storage-emulator with a deeper listen backlog.

Its single-threaded HTTP server keeps socketserver's default backlog of 5 pending connections, so parallel
clients (uploads, snapshots, Label Studio itself) get connection resets and slow retries. Raising the backlog
changes nothing else about the emulator.

    python -m datalabel.emulator start --host=127.0.0.1 --port=9023 --in-memory
"""
from __future__ import annotations

import socketserver
import sys


def main() -> None:
    socketserver.TCPServer.request_queue_size = 256
    from gcp_storage_emulator.__main__ import main as emulator_main

    emulator_main(sys.argv[1:])


if __name__ == "__main__":
    main()
