"""What the backend reads for a prediction: the images of the tasks in a /predict request, only from the Label
Studio it was started with (exact origin, its own token) or its configured bucket (`active.ImageLoader` holds the
rules: no local files, no other hosts or ports, size and time caps, a bounded cache).

A task whose image is refused or unreadable gets no prediction; the others in the batch still do, and the caller
learns why per task, in words that do not tell whether a refused reference exists.
"""
from __future__ import annotations

import os

from .. import active, gcs
from ..config import Settings
from ..errors import LabError
from ..tasks import Task


def loader_for(settings: Settings | None) -> active.ImageLoader:
    """The backend's one loader: Label Studio's origin and token from its start, and its bucket (GCS_BUCKET_NAME,
    read directly when this process has bucket access); without one, gs:// images go through Label Studio's
    proxy, which resolves only what the project's storages hold."""
    if settings is None:
        return active.ImageLoader(None, None, use_gcs=False, buckets=set())
    use_gcs = bool(settings.emulator_host or settings.credentials_file or os.environ.get("STORAGE_EMULATOR_HOST"))
    return active.ImageLoader(settings.url, settings.api_key, use_gcs, {settings.bucket} if settings.bucket else set())


def task_features(loader: active.ImageLoader, model, tasks: list[Task], data_key: str | None):
    """(feature rows of the tasks that could be read, their positions in `tasks`, [{task, error}] for the rest)."""
    import numpy as np

    def one(task: Task):
        try:
            return loader.feature(task, data_key, model), None
        except active.ImageRefused as exc:
            return None, str(exc)
        except LabError as exc:
            return None, f"image not read ({type(exc).__name__}): {str(exc)[:200]}"

    outcomes = gcs.parallel(one, tasks, workers=8) if tasks else []
    rows, kept, errors = [], [], []
    for i, (task, (row, error)) in enumerate(zip(tasks, outcomes)):
        if error is None:
            rows.append(row)
            kept.append(i)
        else:
            errors.append({"task": task.id, "error": error})
    matrix = np.vstack(rows) if rows else None
    return matrix, kept, errors
