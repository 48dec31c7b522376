"""Every task's data and meta kept in a project's target-storage cache (export.TaskCache), for the warm reads
(warm.py): the tasks Label Studio updated since the last run, from its Data Manager list with only id, data and
meta (filtered on updated_at: a new task, an edited one and an annotated one are updated); the whole list again
when the task count no longer adds up (deletions). `stats --incremental` keeps it up to date too."""
from __future__ import annotations

import json

from . import ls
from .export import TaskCache

_DATA_TABLE = "CREATE TABLE IF NOT EXISTS taskdata (id INTEGER PRIMARY KEY, updated TEXT, body BLOB)"


def _updated_since(since: str | None) -> dict | None:
    if not since:
        return None
    if "." not in since:  # Label Studio writes whole seconds without a fraction; its filter wants one
        since = since.replace("Z", ".000000Z")
    return {"conjunction": "and", "items": [{"filter": "filter:tasks:updated_at", "operator": "greater",
                                             "type": "Datetime", "value": since}]}


def sync_task_data(store: TaskCache, client, project_id: int, expected: int) -> bool:
    """Bring the cache's copy of every task's data and meta up to date; True if it covers the project's
    `expected` tasks exactly (else the whole list is read once more: tasks were deleted)."""
    store.db.execute(_DATA_TABLE)
    since = store.get_state("taskdata_since") or None
    if _list_into(store, client, project_id, since) == expected:
        return True
    return since is not None and _list_into(store, client, project_id, None) == expected


def _list_into(store: TaskCache, client, project_id: int, since: str | None) -> int:
    """Tasks updated after `since` (all of them without) into the cache; returns how many tasks it holds."""
    db = store.db
    if since is None:
        db.execute("DELETE FROM taskdata")
    newest, rows = since or "", []
    for task in ls.iter_task_json(client, project_id, fields="task_only", filters=_updated_since(since),
                                  resolve_uri=False, include="id,data,meta,updated_at"):
        if isinstance(task.get("id"), int):
            updated = str(task.get("updated_at") or "")
            newest = max(newest, updated)
            rows.append((task["id"], updated, json.dumps({"data": task.get("data") or {},
                                                          "meta": task.get("meta") or {}}).encode()))
    db.executemany("INSERT OR REPLACE INTO taskdata VALUES (?, ?, ?)", rows)
    db.commit()
    store.set_state("taskdata_since", newest)
    return db.execute("SELECT COUNT(*) FROM taskdata").fetchone()[0]
