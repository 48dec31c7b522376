"""The project lifecycle as plain functions: label configs, projects, bucket storages, one-shot setup.

Every function checks what it can before calling anything that creates state (labels, config, credentials file,
bucket, prefix), so bad input fails with one actionable line and leaves nothing half made. The CLI commands in
datalabel/commands/ are thin wrappers over these; notebooks and tests call them directly.
"""
from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import gcs, ls, targetexport
from .config import load_credentials
from .errors import ConfigError, LabError, NotFound, ServerError
from .files import exclusive_lock, read_user_text, user_cache
from .labelconfig import TEMPLATES, build_config, parse_config, parse_labels, read_config_file

# --- label configs --------------------------------------------------------------------------------------------


def read_labels(labels: str | list[str] | None = None, labels_file: str | Path | None = None) -> list[str]:
    """Labels from `a,b,c` or a file (one per line, or comma separated); empty or duplicated names are refused."""
    if labels_file:
        text = read_user_text(labels_file, "labels file")
        lines = [line for line in text.splitlines() if not line.strip().startswith("#")]
        return parse_labels(",".join(lines))
    if labels is None:
        raise ConfigError("no labels given: pass --labels a,b,c or --labels-file FILE")
    return parse_labels(labels)


def resolve_config(template: str | None = None, labels: str | list[str] | None = None,
                   labels_file: str | Path | None = None, config_file: str | Path | None = None) -> str:
    """A checked label-config XML: from a template plus labels, or from an XML file."""
    if config_file and template:
        raise ConfigError("pass either --template (with --labels) or --config FILE, not both")
    if config_file:
        return read_config_file(config_file).xml
    if not template:
        raise ConfigError(f"no label config: pass --template ({', '.join(TEMPLATES)}) with --labels, or --config FILE")
    if template not in TEMPLATES:
        raise ConfigError(f"unknown template {template!r}; choose one of: {', '.join(TEMPLATES)}")
    xml = build_config(template, read_labels(labels, labels_file))
    parse_config(xml)
    return xml


# --- projects -------------------------------------------------------------------------------------------------


def _same_config(a: str, b: str) -> bool:
    try:
        x, y = parse_config(a), parse_config(b)
    except LabError:
        return " ".join(a.split()) == " ".join(b.split())
    return ([(c.tag, c.name, c.labels) for c in x.controls] == [(c.tag, c.name, c.labels) for c in y.controls]
            and x.objects == y.objects)


def check_title(title: str | None) -> str:
    """Label Studio takes titles of 3 to 50 characters; say so before calling it."""
    title = (title or "").strip()
    if not title.isprintable():
        raise ConfigError("project title holds a line break or a control character: pass --title \"My project\"")
    if not 3 <= len(title) <= 50:
        raise ConfigError(f"project title must be 3 to 50 characters, got {len(title)}: pass --title \"My project\"")
    return title


def create_project(client, title: str, label_config: str, description: str = ""):
    """Create a project, or reuse the one with this title if its label config is the same. Returns (project, created).

    The config is checked by the server before the project is created; a title taken by a project with a
    different config is an error rather than a silent reuse.
    """
    title = check_title(title)
    existing = ls.find_project(client, title)
    if existing is not None:
        if not _same_config(existing.label_config or "", label_config):
            raise LabError(f"project {title!r} already exists (id {existing.id}) with a different label config; "
                           "pick another --title or delete it first")
        return existing, False
    ls.validate_label_config(client, label_config)
    project, created = ls.ensure_project(client, title, label_config, description)
    return project, created


# --- overlap: how many annotators label each task ---------------------------------------------------------------


def check_overlap(annotators: int | None = None, percent: int | None = None) -> None:
    if annotators is not None and annotators < 1:
        raise ConfigError(f"--annotators must be at least 1 (got {annotators})")
    if percent is not None and not 0 <= percent <= 100:
        raise ConfigError(f"--overlap-percent must be 0 to 100 (got {percent})")


def set_overlap(client, project_id: int, annotators: int | None = None, percent: int | None = None) -> dict:
    """Label Studio's project overlap: `annotators` people label each task (`maximum_annotations`) for `percent`
    of the tasks (`overlap_cohort_percentage`; the others want one annotation). Label Studio picks the cohort
    (tasks with the most annotations first) and recounts which tasks are done."""
    check_overlap(annotators, percent)
    fields = {k: v for k, v in (("maximum_annotations", annotators), ("overlap_cohort_percentage", percent))
              if v is not None}
    if fields:
        with ls.api_errors(f"set the overlap of project {project_id}", client.settings.url):
            client.projects.update(id=project_id, **fields)
    project = ls.get_project(client, project_id)
    return {"project": project_id, "annotators": project.maximum_annotations,
            "percent": project.overlap_cohort_percentage}


def project_rows(client) -> list[dict]:
    return [{"id": p.id, "title": p.title, "tasks": p.task_number or 0,
             "labeled": p.num_tasks_with_annotations or 0, "created": str(p.created_at or "")[:19]}
            for p in ls.list_projects(client)]


def describe_project(client, project_id: int) -> dict:
    project = ls.get_project(client, project_id)
    try:
        parsed = parse_config(project.label_config or "")
        labels, kind = parsed.labels, parsed.kind
    except LabError:
        labels, kind = [], "other"
    return {
        "id": project.id, "title": project.title, "description": project.description or "",
        "kind": kind, "labels": labels,
        "tasks": project.task_number or 0, "labeled": project.num_tasks_with_annotations or 0,
        "annotations": project.total_annotations_number or 0,
        "skipped_annotations": project.skipped_annotations_number or 0,
        "predictions": project.total_predictions_number or 0,
        "overlap": {"annotators": project.maximum_annotations, "percent": project.overlap_cohort_percentage},
        "storages": storage_rows(client, project_id),
        "label_config": project.label_config,
    }


def delete_project(client, project_id: int) -> None:
    ls.delete_project(client, project_id)


# --- storages -------------------------------------------------------------------------------------------------


def check_credentials(credentials_file: str | None) -> None:
    """The service-account file must exist and parse before anything is sent."""
    load_credentials(credentials_file)


def matching_files(bucket: str, prefix: str, regex: str = r".*", credentials_file: str | None = None,
                   recursive: bool = True) -> int:
    """How many objects under gs://bucket/prefix Label Studio would import with `regex` (matched on the full
    object name, as Label Studio does; sub-folders only if `recursive`). Raises NotFound for a missing bucket
    or an empty match."""
    try:
        pattern = re.compile(regex)
    except re.error as exc:
        raise ConfigError(f"invalid --regex {regex!r}: {exc}") from None
    bkt = gcs.bucket(gcs.client(credentials_file), bucket)
    top = gcs.norm_prefix(prefix)
    count = sum(1 for blob in gcs.list_blobs(bkt, prefix)
                if pattern.match(blob.name) and (recursive or "/" not in blob.name[len(top):]))
    if count == 0:
        raise NotFound(f"no file under gs://{bucket}/{gcs.norm_prefix(prefix)} matches {regex!r}; "
                       "upload files first (datalabel bucket upload) or fix --prefix/--regex")
    return count


def check_bucket(bucket: str, credentials_file: str | None = None) -> None:
    gcs.bucket(gcs.client(credentials_file), bucket)


def _row(storage, kind: str) -> dict:
    return {"id": storage.id, "kind": kind, "bucket": storage.bucket, "prefix": gcs.norm_prefix(storage.prefix or ""),
            "regex": getattr(storage, "regex_filter", None) if kind == "source" else None,
            "status": str(getattr(storage, "status", "") or "").split(".")[-1],
            "last_sync": str(storage.last_sync or "")[:19], "last_sync_count": storage.last_sync_count}


def storage_rows(client, project_id: int) -> list[dict]:
    return [_row(s, kind) for kind in ("source", "target") for s in ls.list_storages(client, project_id, kind)]


def add_source(client, project_id: int, bucket: str, prefix: str, regex: str = r".*", use_blob_urls: bool = True,
               credentials_file: str | None = None, sync: bool = False, recursive: bool = True) -> dict:
    """Connect gs://bucket/prefix as the project's source (reused if already connected). Optionally sync it."""
    check_credentials(credentials_file)
    ls.get_project(client, project_id)
    files = matching_files(bucket, prefix, regex, credentials_file, recursive)
    storage, created = ls.ensure_source_storage(client, project_id, bucket, prefix, regex=regex,
                                                use_blob_urls=use_blob_urls, credentials_file=credentials_file,
                                                recursive=recursive)
    out = {**_row(storage, "source"), "created": created, "files": files}
    if sync:
        out["synced"] = sync_one(client, storage.id, "source")
    return out


def add_target(client, project_id: int, bucket: str, prefix: str, credentials_file: str | None = None,
               sync: bool = False, progress=None) -> dict:
    """Connect gs://bucket/prefix as the place annotations are written to (reused if already connected). A new
    one gets the project's existing annotations written from here first, in parallel and in Label Studio's own
    form (targetexport.py), not by Label Studio's sync inside one request; "written" says how many."""
    check_credentials(credentials_file)
    ls.get_project(client, project_id)
    bkt = gcs.bucket(gcs.client(credentials_file), bucket)
    written = None
    if not any(ls.same_place(st, bucket, prefix) for st in ls.list_storages(client, project_id, "target")):
        written = targetexport.write_annotations(client, project_id, bkt, prefix, progress=progress)
    storage, created = ls.ensure_target_storage(client, project_id, bucket, prefix, credentials_file=credentials_file)
    out = {**_row(storage, "target"), "created": created, "written": written}
    if sync:
        out["synced"] = sync_one(client, storage.id, "target")
    return out


def sync_one(client, storage_id: int, kind: str, timeout: float = 600.0) -> int:
    """Sync one storage and wait for it; returns how many tasks (source) or annotations (target) it moved.

    Label Studio on SQLite takes one writer at a time: two syncs of one storage at once (two identical setups from
    different machines or cache folders) fail one with "database is locked", its import half done. A sync imports
    only what is missing, so that one is run again until it completes (each attempt waits a little longer)."""
    import time

    from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_incrementing

    deadline = time.monotonic() + timeout

    def once() -> int:
        ls.sync_storage(client, storage_id, kind)
        storage = ls.wait_storage(client, storage_id, kind, timeout=max(1.0, deadline - time.monotonic()))
        if kind == "source" and getattr(storage, "project", None):  # a sync beside this one: objects both took
            ls.remove_twin_imports(client, storage.project)
        return storage.last_sync_count or 0

    locked = retry_if_exception(lambda exc: isinstance(exc, ServerError) and "database is locked" in str(exc))
    return Retrying(retry=locked, stop=stop_after_attempt(8) | stop_after_delay(timeout),
                    wait=wait_incrementing(start=0.5, increment=0.5), reraise=True)(once)


def sync(client, project_id: int, direction: str = "both", storage_id: int | None = None) -> list[dict]:
    """Sync the project's storages: source (bucket -> tasks), target (annotations -> bucket), or both."""
    if direction not in ("both", "source", "target"):
        raise ConfigError(f"unknown direction {direction!r}; choose both, source or target")
    ls.get_project(client, project_id)
    kinds = ("source", "target") if direction == "both" else (direction,)
    storages = [(kind, s) for kind in kinds for s in ls.list_storages(client, project_id, kind)]
    if storage_id is not None:
        storages = [(kind, s) for kind, s in storages if s.id == storage_id]
        if not storages:
            raise NotFound(f"project {project_id} has no storage {storage_id} to sync "
                           f"(see `datalabel storage list {project_id}`)")
    if not storages:
        raise NotFound(f"project {project_id} has no {'' if direction == 'both' else direction + ' '}storage to sync; "
                       f"add one with `datalabel storage add-source {project_id} --prefix ...`")
    results = []
    for kind, storage in storages:
        count = sync_one(client, storage.id, kind)
        results.append({**_row(ls.get_storage(client, storage.id, kind), kind), "synced": count})
    return results


def remove_storage(client, project_id: int, storage_id: int | None = None, kind: str | None = None,
                   bucket: str | None = None, prefix: str | None = None) -> list[dict]:
    """Disconnect storages by id, or by bucket+prefix (of one kind, or both). Files and tasks stay."""
    ls.get_project(client, project_id)
    kinds = (kind,) if kind else ("source", "target")
    chosen = []
    for k in kinds:
        for storage in ls.list_storages(client, project_id, k):
            if storage_id is not None and storage.id != storage_id:
                continue
            if bucket is not None and storage.bucket != bucket:
                continue
            if prefix is not None and gcs.norm_prefix(storage.prefix or "") != gcs.norm_prefix(prefix):
                continue
            chosen.append((k, storage))
    if storage_id is None and bucket is None and prefix is None:
        raise ConfigError("say which storage to remove: --id N, or --bucket/--prefix")
    if not chosen:
        raise NotFound(f"project {project_id} has no matching storage (see `datalabel storage list {project_id}`)")
    if storage_id is not None and len(chosen) > 1:
        raise ConfigError(f"storage id {storage_id} exists as both source and target; add --kind source|target")
    rows = []
    for k, storage in chosen:
        ls.remove_storage(client, storage.id, k)
        rows.append(_row(storage, k))
    return rows


# --- one-shot setup -------------------------------------------------------------------------------------------


@dataclass
class SetupResult:
    project_id: int
    title: str
    project_created: bool
    source_id: int
    source_created: bool
    target_id: int
    target_created: bool
    files: int
    uploaded: dict | None = None
    imported: int = 0
    exported: int = 0
    tasks: int = 0
    cors: list = field(default_factory=list)
    overlap: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@contextlib.contextmanager
def _one_at_a_time(*key: str):
    """Identical setups on this machine run one after the other (two terminals, a retried job): the second finds
    everything made and its sync imports nothing twice. Across machines, creating settles on the lowest id
    (ls.settle). The lock is a file in the user's cache folder, keyed by server and title."""
    name = hashlib.sha256("\0".join(key).encode()).hexdigest()[:16]
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(exclusive_lock(user_cache("locks") / f"setup-{name}.lock"))
        except (OSError, RuntimeError):  # no (writable) home, as for a container user: lowest-id settling holds
            pass
        yield


def setup(client, title: str, label_config: str, bucket: str, source_prefix: str = "images_unlabeled/",
          target_prefix: str = "labels/", regex: str = r".*", use_blob_urls: bool = True,
          credentials_file: str | None = None, upload_from: str | Path | None = None,
          cors_origin: str | None = None, description: str = "", progress=None, recursive: bool = True,
          annotators: int | None = None, overlap_percent: int | None = None) -> SetupResult:
    """Project + source storage + target storage + sync in one go. Idempotent: a second run reuses everything.

    Order matters for "nothing half made": every check (credentials, server, label config, bucket, files under
    the prefix) runs before the first thing is created. `annotators` / `overlap_percent`: the project's overlap
    (set_overlap), set before the tasks are imported.
    """
    title = check_title(title)
    check_overlap(annotators, overlap_percent)
    with _one_at_a_time(client.settings.url, title):
        return _setup(client, title, label_config, bucket, source_prefix, target_prefix, regex, use_blob_urls,
                      credentials_file, upload_from, cors_origin, description, progress, recursive,
                      annotators, overlap_percent)


def _setup(client, title, label_config, bucket, source_prefix, target_prefix, regex, use_blob_urls,
           credentials_file, upload_from, cors_origin, description, progress, recursive,
           annotators=None, overlap_percent=None) -> SetupResult:
    check_credentials(credentials_file)
    parse_config(label_config)
    src, dst = gcs.norm_prefix(source_prefix), gcs.norm_prefix(target_prefix)  # one that could leave its folder: refused
    if src.startswith(dst) or dst.startswith(src):  # Label Studio would import its own annotations as tasks
        raise ConfigError(f"--source-prefix {src!r} and --target-prefix {dst!r} overlap; give two separate folders, "
                          "e.g. --source-prefix images_unlabeled/ --target-prefix labels/")
    existing = ls.find_project(client, title)
    if existing is not None and not _same_config(existing.label_config or "", label_config):
        raise LabError(f"project {title!r} already exists (id {existing.id}) with a different label config; "
                       "pick another --title or delete it first")
    if existing is None:
        ls.validate_label_config(client, label_config)
    store = gcs.client(credentials_file)
    bkt = gcs.bucket(store, bucket)
    if upload_from is not None and not Path(upload_from).is_dir():
        raise ConfigError(f"not a folder: {upload_from}")
    uploaded = None
    if upload_from is not None:
        uploaded = gcs.upload_folder(bkt, upload_from, source_prefix, progress=progress)
    files = matching_files(bucket, source_prefix, regex, credentials_file, recursive)

    project, project_created = create_project(client, title, label_config, description)
    overlap = set_overlap(client, project.id, annotators, overlap_percent)
    try:
        source, source_created = ls.ensure_source_storage(client, project.id, bucket, source_prefix, regex=regex,
                                                          use_blob_urls=use_blob_urls,
                                                          credentials_file=credentials_file, recursive=recursive)
        target, target_created = ls.ensure_target_storage(client, project.id, bucket, target_prefix,
                                                          credentials_file=credentials_file)
    except LabError:
        if project_created:  # Label Studio refused a storage: the project made a moment ago goes too
            ls.delete_project(client, project.id)
        raise
    imported = sync_one(client, source.id, "source")
    exported = sync_one(client, target.id, "target")
    cors = gcs.set_cors(bkt, [cors_origin]) if cors_origin else []
    return SetupResult(project_id=project.id, title=project.title, project_created=project_created,
                       source_id=source.id, source_created=source_created, target_id=target.id,
                       target_created=target_created, files=files, uploaded=uploaded, imported=imported,
                       exported=exported, tasks=ls.get_project(client, project.id).task_number or 0, cors=cors,
                       overlap={k: overlap[k] for k in ("annotators", "percent")})
