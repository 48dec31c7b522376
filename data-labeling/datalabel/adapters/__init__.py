"""Adapters: the only modules that reach into a dependency's private attributes or modules, one per dependency.

Each was written against the exact versions it names at its top (the ones in requirements.lock) and checks, on
first use, that those are installed: a private part can change in any release, so another version fails with one
line naming the version to install instead of misbehaving. tests/test_structure.py fails on a private attribute
or module of a third-party package used anywhere else.

    ls_sdk            label-studio-sdk: the lean client class, its HTTP client
    gcs_client        google-cloud-storage (and google-cloud-core, google-api-core under it): connection pool,
                      credentials, the default retry predicate
    gcsfs_client      gcsfs: one attempt per request, the async object read
    storage_emulator  gcp-storage-emulator: whole-file writes, the index written when idle, a deeper backlog
"""
from __future__ import annotations

from importlib import metadata

from ..errors import ConfigError

_verified: set[tuple[str, str]] = set()


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def require(pinned: dict[str, str]) -> None:
    """ConfigError (one line) unless every distribution of `pinned` is installed at exactly its version."""
    for distribution, written_for in pinned.items():
        if (distribution, written_for) in _verified:
            continue
        found = installed_version(distribution)
        if found != written_for:
            raise ConfigError(f"{distribution} {found or '(not installed)'} is installed, but datalabel's adapter for it "
                              f"was written against {written_for}: install {distribution}=={written_for} "
                              "(requirements.lock)")
        _verified.add((distribution, written_for))
