"""The ML backend Label Studio calls for predictions and retraining, and the project side that connects it.

One module per concern, each importing only those before it in this list:
  auth      HTTP basic auth before every route but /health (constant-time comparison)
  fetch     what a prediction may read: Label Studio's origin or the configured bucket, capped
  backend   the model side: versions per project, predictions, the queued retraining worker
  app       the HTTP protocol (Starlette): routes, body cap, errors as incident ids
  server    uvicorn with connection limits and timeouts: serve, start_in_thread
  connect   a project attached to a running backend with its credentials, lined up with its version
The model itself is a plug-in (`active.Classifier`, `--model-class`): nothing here knows pixels.
"""
from .auth import Credentials
from .backend import ANNOTATION_ACTIONS, DEFAULT_KEEP, Backend, project_id_of, trains_on_annotations
from .app import BODY_LIMIT, make_app
from .server import RunningServer, serve, start_in_thread
from .connect import align, connect, retrieve_predictions, wait_for_backend

__all__ = ["align", "ANNOTATION_ACTIONS", "Backend", "BODY_LIMIT", "connect", "Credentials", "DEFAULT_KEEP",
           "make_app", "project_id_of", "retrieve_predictions", "RunningServer", "serve", "start_in_thread",
           "trains_on_annotations", "wait_for_backend"]
