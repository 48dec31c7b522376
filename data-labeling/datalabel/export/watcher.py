"""Re-export whenever new or changed annotations arrive (a bucket prefix or a project)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import LabError
from ..labelconfig import LabelConfig
from .conversion import convert
from .folder import MARKER
from .sources import BucketObjects, ImageSource, TaskCache


@dataclass
class WatchSource:
    """Where a watcher looks: a bucket prefix (target storage) or a project through the API."""

    bucket: object | None = None
    prefix: str = ""
    client: object | None = None
    project_id: int | None = None

    def sync(self, cache: TaskCache, progress=None) -> dict:
        if self.bucket is not None:
            return cache.sync_source(BucketObjects(self.bucket), self.prefix, progress)
        if self.client is not None and self.project_id is not None:
            return cache.sync_api(self.client, self.project_id, progress)
        raise LabError("nothing to watch: give a bucket prefix or a project")


def export_once(source: WatchSource, cache: TaskCache, out_dir: str | Path, fmt: str, config: LabelConfig,
                images: ImageSource | None = None, policy: str = "latest", progress=None, force: bool = False,
                **options) -> dict:
    """One watch cycle: fetch what changed; if anything did (or no export exists yet), re-export.

    Only new/changed target files (or tasks whose annotations changed) are fetched; tasks are then re-read from
    the local cache and images already in the previous export are linked, not downloaded again.
    """
    out_dir = Path(out_dir)
    changes = source.sync(cache)
    key = f"{fmt}|{policy}|{config.digest}|{out_dir.absolute()}"
    fresh = cache.get_state("export") == key and (out_dir / MARKER).exists()
    if fresh and not force and not (changes["new"] or changes["changed"] or changes["removed"]):
        return {"changed": False, "fetched": changes}
    report = convert(cache.tasks(), out_dir, fmt, config, images, policy, progress, **options)
    cache.set_state("export", key)
    report["changed"] = True
    report["fetched"] = changes
    return report


def watch(source: WatchSource, out_dir: str | Path, fmt: str, config: LabelConfig, images: ImageSource | None = None,
          policy: str = "latest", interval: float = 30.0, cycles: int | None = None, state: str | Path | None = None,
          on_cycle: Callable[[dict], None] | None = None, **options) -> None:
    """Poll `source` every `interval` seconds and re-export when annotations change; `cycles` bounds the loop."""
    out_dir = Path(out_dir)
    state = Path(state) if state else out_dir.with_name(f".{out_dir.name}.state.sqlite")
    with TaskCache(state) as cache:
        n = 0
        while cycles is None or n < cycles:
            if n:
                time.sleep(interval)
            report = export_once(source, cache, out_dir, fmt, config, images, policy, **options)
            if on_cycle:
                on_cycle(report)
            n += 1
