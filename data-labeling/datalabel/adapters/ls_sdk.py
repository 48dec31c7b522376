"""label-studio-sdk's private parts, here only. Written against label-studio-sdk 2.1.2 (checked on first use).

- `label_studio_sdk._extensions.pager_ext.SyncPagerExt`: the SDK's fix for project listings (a 404 past the last
  page ends the listing), which `LabelStudio` applies and the lean client below needs too;
- `client._client_wrapper`: the generated client's wrapper of auth, base URL and timeouts, which the resource
  clients are built on and whose `httpx_client` serves the endpoints the SDK does not wrap.
"""
from __future__ import annotations

from . import require

PINNED = {"label-studio-sdk": "2.1.2"}
_CLIENT_CLASS = None


def client_class():
    """The SDK's client that also carries the settings it was made from (commands need the URL and bucket later):
    `Client(settings, **kwargs)`, with `settings.url` and `settings.require_api_key()`. Made on first use:
    importing the SDK takes ~1 s, which `--help` and offline commands skip.

    It is the SDK's generated `LabelStudioBase` with the two list fixes of its `LabelStudio` (a 404 past the last
    page ends a listing), not `LabelStudio` itself: that one's project extension imports the label-interface
    helpers and with them pandas, boto3, azure and faker, 150 MB of memory in every command for nothing used here
    (190 MB against 40 MB resident after the import).
    """
    global _CLIENT_CLASS
    if _CLIENT_CLASS is None:
        require(PINNED)
        from label_studio_sdk._extensions.pager_ext import SyncPagerExt
        from label_studio_sdk.base_client import LabelStudioBase
        from label_studio_sdk.projects.client import ProjectsClient
        from label_studio_sdk.tasks.client_ext import TasksClientExt

        class Projects(ProjectsClient):
            def list(self, **kwargs):
                return SyncPagerExt.from_sync_pager(super().list(**kwargs))

        class Client(LabelStudioBase):
            def __init__(self, settings, **kwargs):
                super().__init__(base_url=settings.url, api_key=settings.require_api_key(), **kwargs)
                self.settings = settings
                self._tasks_ext = TasksClientExt(client_wrapper=self._client_wrapper)
                self._projects_ext = Projects(client_wrapper=self._client_wrapper)

            @property
            def tasks(self):
                return self._tasks_ext

            @property
            def projects(self):
                return self._projects_ext

        _CLIENT_CLASS = Client
    return _CLIENT_CLASS


def raw_http(client):
    """The SDK's own HTTP client (same auth, base URL, timeouts) for the endpoints the SDK does not wrap."""
    require(PINNED)
    return client._client_wrapper.httpx_client
