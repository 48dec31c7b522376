"""Label Studio and the GCS emulator for a benchmark: local processes on free loopback ports, data and logs under
one folder, stopped on the way out (the benchmarks' counterpart of the tests' fixtures)."""
from __future__ import annotations

import os
import secrets
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "data-labeling"))

from datalabel import credentials, embedded, ls  # noqa: E402
from datalabel.config import Settings  # noqa: E402


class Servers(NamedTuple):
    client: object  # the SDK client, as the admin
    label_studio: embedded.Server
    emulator: embedded.Server


@contextmanager
def label_studio_on_emulator(work: Path) -> Iterator[Servers]:
    """Both servers started (STORAGE_EMULATOR_HOST set to the emulator for this process), and a client."""
    token = secrets.token_hex(20)
    logs = work / "logs"
    gcs_server = embedded.start_emulator(embedded.free_port(), log=logs / "gcs.log")
    ls_server = None
    try:
        os.environ["STORAGE_EMULATOR_HOST"] = gcs_server.url
        ls_server = embedded.start_label_studio(embedded.free_port(), work / "ls-data", credentials.ADMIN_USER,
                                                secrets.token_urlsafe(12), token, emulator_url=gcs_server.url,
                                                log=logs / "label-studio.log")
        client = ls.connect(Settings(url=ls_server.url, api_key=token, emulator_host=gcs_server.url))
        yield Servers(client, ls_server, gcs_server)
    finally:
        if ls_server is not None:
            ls_server.stop()
        gcs_server.stop()
