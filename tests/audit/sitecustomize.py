"""Loaded by every Python process started with this folder on PYTHONPATH (tests/test_offline.py): records each
outbound connection attempt and name lookup, with the process that made it, to $DATALABEL_AUDIT_FILE."""
import json
import os
import sys

_FILE = os.environ.get("DATALABEL_AUDIT_FILE")


def _record(kind, family, address):
    argv = getattr(sys, "orig_argv", sys.argv)[:4]  # the whole command line, `-m module` included
    line = json.dumps({"pid": os.getpid(), "argv": argv, "kind": kind, "family": family, "address": address},
                      default=str)
    fd = os.open(_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _hook(event, args):
    if event == "socket.connect":
        sock, address = args[0], args[1]
        _record("connect", getattr(sock.family, "name", str(sock.family)), address)
    elif event == "socket.getaddrinfo":
        _record("lookup", None, [args[0], args[1]])
    elif event == "socket.gethostbyname":
        _record("lookup", None, [args[0], None])


if _FILE:
    _record("start", None, None)  # proof the hook was loaded into this process
    sys.addaudithook(_hook)
