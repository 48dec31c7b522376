"""The labeling side's public core: what other packages (the versioning CLI, notebooks, scripts) may import.

Everything else in `datalabel` is internal and may change between versions; these names keep their meaning.

    errors     LabError (one actionable line) and its kinds ConfigError, ServerError, NotFound; EXIT_CODES
    settings   Settings (flags > environment > ./.env), setting(name), check_url, load_credentials
    output     run_app (a typer app whose errors are one line and an exit code), print_json, print_table, progress,
               next_step (the next phase of a progress line, with its own total and unit);
               cli_options: the typer options both CLIs share (--url, --api-key, --bucket, --json, --policy)
    files      write_text_atomic; load_user_json (a file a person gives: UTF-8, size and nesting limits)
    Label      connect(settings) -> checked SDK client; project_config(client, id) -> LabelConfig
    Studio
    bucket     check_bucket_name, existing_bucket, check_key, split_url, norm_prefix, gs_url_from_ref (untrusted object keys and URLs), storage_client,
               retry_timeout (how long storage calls keep retrying)
    tasks      Task, choose_annotation (the one model of Label Studio's task / annotation JSON)
    configs    LabelConfig, read_config_file
    export     convert (tasks -> a training format, atomically), RUN_ONLY, BucketObjects and TaskCache (the
               incremental reader of target storage)
    quality    snapshot_quality (a dataset version's agreement figures and flagged-task count)
"""
from .commands import options as cli_options
from .config import Settings, check_url, load_credentials, setting
from .errors import EXIT_CODES, ConfigError, LabError, NotFound, ServerError
from .export import RUN_ONLY, BucketObjects, TaskCache, convert
from .files import load_user_json, write_text_atomic
from .gcs import (RETRY_TIMEOUT_ENV, check_bucket_name, check_key, gs_url_from_ref, norm_prefix, retry_timeout,
                  split_url)
from .gcs import bucket as existing_bucket
from .gcs import client as storage_client
from .labelconfig import LabelConfig, read_config_file
from .ls import connect, project_config
from .output import next_step, print_json, print_table, progress, run_app
from .quality import snapshot_quality
from .tasks import Task, choose_annotation

__all__ = ["BucketObjects", "check_bucket_name", "check_key", "check_url", "choose_annotation", "cli_options",
           "ConfigError", "connect", "convert", "EXIT_CODES", "existing_bucket", "gs_url_from_ref", "LabelConfig", "LabError",
           "load_credentials", "load_user_json", "next_step", "norm_prefix", "NotFound", "print_json", "print_table", "progress", "project_config",
           "read_config_file", "retry_timeout", "RETRY_TIMEOUT_ENV", "run_app", "RUN_ONLY", "ServerError", "setting",
           "Settings", "snapshot_quality", "split_url", "storage_client", "Task", "TaskCache", "write_text_atomic"]
