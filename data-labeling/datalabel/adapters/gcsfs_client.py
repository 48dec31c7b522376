"""gcsfs's private parts, here only. Written against gcsfs 2026.10.1 (checked on first use).

- `GCSFileSystem._request.__wrapped__`: the request without gcsfs's retry decorator (6 tries, up to ~35 s, each
  logged with a traceback), so the caller's bounded, quiet retries are the only ones;
- `GCSFileSystem._cat_file` and `_pipe_file`: the coroutines that read and write one object (fsspec's async
  interface), awaited in the caller's own event-loop tasks.
"""
from __future__ import annotations

import os

from . import require

PINNED = {"gcsfs": "2026.10.1"}
_SINGLE_TRY = None


def single_try_filesystem():
    """gcsfs's GCSFileSystem with one attempt per request."""
    global _SINGLE_TRY
    if _SINGLE_TRY is None:
        require(PINNED)
        # gcsfs 2026.x probes the bucket type over gRPC, which hangs against the emulator; read once, at import
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
        import gcsfs

        once = gcsfs.GCSFileSystem._request.__wrapped__

        class SingleTry(gcsfs.GCSFileSystem):
            async def _request(self, *args, **kwargs):
                return await once(self, *args, **kwargs)

        _SINGLE_TRY = SingleTry
    return _SINGLE_TRY


async def cat_file(fs, path: str) -> bytes:
    """The bytes of one object (`bucket/key`), read in the running event loop."""
    return await fs._cat_file(path)


async def pipe_file(fs, path: str, data: bytes, content_type: str) -> None:
    """Write one object (`bucket/key`) in the running event loop, in one request."""
    await fs._pipe_file(path, data, content_type=content_type)
