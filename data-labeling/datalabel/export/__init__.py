"""Export and convert annotations into training formats, from the API or straight from the bucket.

Interface (stable; other tools build on it):

    convert(tasks: Iterable[Task], out_dir: Path, fmt: str, config: LabelConfig, images: ImageSource | None,
            policy: str = "latest", progress=None, *, include_unlabeled=False, frame_size=None) -> dict
        Write `tasks` as `fmt` (json-min, csv, tsv, coco, yolo, voc, imagefolder, mot) into out_dir, atomically:
        everything goes to a temporary folder beside out_dir that is renamed into place when complete; on any
        error the temporary folder is removed and an existing out_dir is left untouched. Returns a report
        (counts per class, items, objects, images fetched/reused). `policy` picks one annotation per task
        (tasks.choose_annotation: latest | ground-truth | majority; json-min and csv also take `all`, a record per
        annotation as Label Studio writes them); skipped/cancelled annotations never count.
        Images already present in a previous export in out_dir (same path, same source URL) are hard-linked,
        not fetched again.

    BucketImages(storage_client)        an ImageSource: fetches gs:// images into the output, in parallel (gcsfs).
    read_target_storage(bucket, prefix, cache=None) -> Iterator[Task]
        Tasks from the JSON files Label Studio's target storage wrote, streamed and merged per task.
    TaskCache(path).sync_source(source, prefix)   the one incremental reader of target storage: fetches only
        new or changed objects from any source with list(prefix) -> {key: version}, read_many(keys) -> [bytes]
        and url(key); BucketObjects is that source for a bucket (google-cloud-storage, parallel requests).
    read_export_file(path) -> Iterator[Task]            tasks from a Label Studio JSON export, streamed.
    export_from_api(client, project_id, export_type, dest) -> Path
        A server-side export in any format Label Studio offers (export snapshot, then download).
    watch(...)                            re-export whenever new or changed annotations arrive.

One module per concern, each importing only those before it in this list:
  naming      unique, safe, stable file names; the items a writer gets (Namer, make_items)
  folder      the output folder: written beside its place, swapped in when complete (MARKER, RUN_ONLY)
  sources     tasks from an export file, target storage (TaskCache, BucketObjects) or the API; bucket images
  parallel    an export file converted on every core, by byte ranges
  conversion  convert, convert_file: tasks -> writer -> folder
  server      Label Studio's own exports (export_from_api)
  watcher     re-export on change (watch)
The writers themselves are in `datalabel.formats`.
"""
from .conversion import FORMATS, Options, check_config, check_frame_size, convert, convert_file, describe_formats
from .folder import MARKER, RUN_ONLY
from .naming import MAX_NAME, Namer, base_name, make_items
from .server import api_formats, check_output_file, export_from_api
from .sources import (BATCH, BucketImages, BucketObjects, ImageSource, ObjectSource, TaskCache, check_cache_file,
                      check_export_file,                       read_export_file, read_target_storage, signature)
from .watcher import WatchSource, export_once, watch

__all__ = ["api_formats", "BATCH", "base_name", "BucketImages", "BucketObjects", "check_cache_file", "check_config", "check_output_file",
           "check_export_file",
           "check_frame_size", "convert", "convert_file", "describe_formats", "export_from_api", "export_once",
           "FORMATS", "ImageSource", "make_items", "MARKER", "MAX_NAME", "Namer", "ObjectSource", "Options",
           "read_export_file", "read_target_storage", "RUN_ONLY", "signature", "TaskCache", "watch", "WatchSource"]
