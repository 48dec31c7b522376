"""Label Studio API: the one package that talks to the server, through label-studio-sdk's generated client, one
module a concern; every name is importable from here (`from datalabel import ls; ls.connect()`).

Names follow the SDK's resources (projects, import_storage, export_storage, predictions) so a reader who knows
Label Studio knows where to look. Every SDK/HTTP failure is turned into a LabError with one actionable line.

    client    the connection: client, token check, errors as LabErrors
    projects  find, create, validate a label config, delete
    storages  GCS source and target storages: add, sync, wait, remove
    reads     a project's tasks: paged JSON, the streamed whole-project read, counts
"""
from ..adapters.ls_sdk import raw_http
from .client import api_errors, connect, user_emails, whoami
from .projects import (delete_project, ensure_project, find_project, get_project, list_projects, project_config,
                       settle, validate_label_config)
from .reads import (count_tasks, decode_predictions, iter_task_json, project_predictions, project_tasks,
                    remove_twin_imports)
from .storages import (SYNC_OPTIONS, ensure_source_storage, ensure_target_storage, get_storage, list_storages,
                       remove_storage, same_place, sync_storage, wait_storage)

__all__ = ["SYNC_OPTIONS", "api_errors", "connect", "count_tasks", "decode_predictions", "delete_project",
           "ensure_project", "ensure_source_storage", "ensure_target_storage", "find_project", "get_project",
           "get_storage", "iter_task_json", "list_projects", "list_storages", "project_config", "project_predictions",
           "project_tasks", "raw_http", "remove_storage", "remove_twin_imports", "same_place", "settle",
           "sync_storage", "user_emails", "validate_label_config", "wait_storage", "whoami"]
