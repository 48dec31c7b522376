"""The GCS emulator as the embedded stack runs it: gcp-storage-emulator with a deeper listen backlog, whole-file
writes, and its index written when idle (adapters/storage_emulator.py says why and how).

Its single-threaded HTTP server keeps socketserver's default backlog of 5 pending connections, so parallel
clients (uploads, snapshots, Label Studio itself) get connection resets and slow retries. And it writes its files
(objects and the `.meta` index of all of them) in place: killed in the middle of one, it cannot start again (a
half-written index is not JSON). Here every file on disk is written beside its place and renamed, so a kill leaves
the old file or the new one. And it rewrites that index on every write: here it is written only on disk, at most
every second and at exit; a hard kill can lose the last second of index entries, never the index; so at start,
object files the index does not list (written just before a kill) are removed, and what is on disk is what the
emulator lists. Nothing else about the emulator changes; its other subcommands (wipe, create_bucket) are its own.

    python -m datalabel.emulator start --host=127.0.0.1 --port=9023 --in-memory
"""
from __future__ import annotations

import logging
import signal
import sys

from .adapters.storage_emulator import server_class
from .errors import LabError


def main(argv: list[str] | None = None) -> None:
    from gcp_storage_emulator.__main__ import main as emulator_main
    from gcp_storage_emulator.__main__ import prepare_args_parser

    argv = sys.argv[1:] if argv is None else argv
    args = prepare_args_parser()[0].parse_args(argv)
    if args.subcommand != "start":
        emulator_main(argv)
        return
    root = logging.getLogger("")  # as the emulator's own `start` sets up its log
    root.addHandler(logging.StreamHandler())
    root.setLevel(logging.CRITICAL if args.quiet else logging.DEBUG)
    try:
        make = server_class()
    except LabError as exc:  # another emulator version than the adapter was written against
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    server = make(args.host, args.port, in_memory=args.no_store_on_disk, default_bucket=args.default_bucket,
                  data_dir=args.data_dir, project_number=args.project_number)
    # SIGTERM (how the stack stops it) ends the serving loop like Ctrl-C, so the pending index is written
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.run()
    finally:
        server.flush()


if __name__ == "__main__":
    main()
