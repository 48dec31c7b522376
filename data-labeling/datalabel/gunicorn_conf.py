"""gunicorn settings of team mode's web workers (webserver.py): persistent database connections.

Django's default (CONN_MAX_AGE 0) opens a PostgreSQL connection for every request: a backend process forked and a
SCRAM login each time, on the same cores that serve the request. Django's deployment checklist names persistent
connections for production; Label Studio's settings do not set them and read no variable for it. So each worker,
once the app is loaded, keeps its connection for LS_DB_CONN_MAX_AGE seconds (default 300), checked before reuse
(CONN_HEALTH_CHECKS), for at most `workers` connections in all."""
import os


def post_worker_init(worker) -> None:
    from django.conf import settings

    seconds = os.environ.get("LS_DB_CONN_MAX_AGE", "300")
    for db in settings.DATABASES.values():  # the dicts Django's connections read when they connect
        db["CONN_MAX_AGE"] = int(seconds) if seconds.isdigit() else 300
        db["CONN_HEALTH_CHECKS"] = True
