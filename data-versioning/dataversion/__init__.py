"""Versioning CLI and library: labeled snapshots as DVC dataset versions.

Importing this package first switches off two things for every gcsfs/DVC use in this process and its children:
DVC's usage analytics, and gcsfs's experimental bucket-type detection, which opens a gRPC channel to the
storage endpoint (against the local emulator it can hang for the length of its retry budget). gcsfs reads
GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT once, at import, so it must be set before gcsfs is imported.
"""
import os

QUIET_ENV = {"DVC_NO_ANALYTICS": "1", "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}

for _key, _value in QUIET_ENV.items():
    os.environ.setdefault(_key, _value)
