"""Label Studio served as its production image serves it, for team mode: the app under a multi-worker WSGI server
behind nginx.

`label-studio start` is Django's one-process development server (`runserver`). Label Studio's own production
compose runs the same app (`core.wsgi:application`) under uwsgi workers with nginx in front for static files; here
it is gunicorn (PyPI; uwsgi needs a compiler) with one worker per CPU plus one (LS_WEB_WORKERS to choose), on an
internal loopback port, and Debian's nginx on the public one: it serves /static/ and /react-app/ from the installed
package (what Label Studio's development server reads them from, through Django) and passes the rest to the app.
The database schema and the admin user are made first by `label-studio init`, as `start` makes them.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .errors import ConfigError, ServerError
from .files import write_text_atomic
from .postgres import as_ordinary_user
from .processes import Server, free_port, spawn, venv_bin

NGINX_HINT = "install it (Debian/Ubuntu: apt-get install nginx) or run the one-person default (SQLite)"


def workers(cpus: int | None = None) -> int:
    """Web workers: LS_WEB_WORKERS, else one per CPU plus one (the requests wait on PostgreSQL part of the time)."""
    wanted = os.environ.get("LS_WEB_WORKERS", "")
    if wanted:
        if not wanted.isdigit() or not 1 <= int(wanted) <= 64:
            raise ConfigError(f"LS_WEB_WORKERS={wanted!r}: give a number of web workers from 1 to 64")
        return int(wanted)
    return (cpus or len(os.sched_getaffinity(0)) or 1) + 1


def package_dir() -> Path:
    """The installed label_studio package (found without importing Django's settings)."""
    import importlib.util

    spec = importlib.util.find_spec("label_studio")
    if spec is None or not spec.origin:
        raise ConfigError("label-studio is not installed in this Python; run scripts/ensure-venv.sh")
    return Path(spec.origin).parent


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                           if os.access(p, os.X_OK)), None)
    if not found:
        raise ConfigError(f"team mode serves Label Studio behind nginx, which is not installed; {NGINX_HINT}")
    return found


def nginx_config(port: int, app_port: int, state: Path, static: Path, react: Path) -> str:
    """nginx on 127.0.0.1:port: static files from disk, everything else to the app on app_port. All its files
    (pid, temp folders, log) under `state`; no access log (request paths hold project and task ids)."""
    mime = next((p for p in ("/etc/nginx/mime.types", "/usr/local/nginx/conf/mime.types") if Path(p).exists()), None)
    temp = "\n".join(f"    {name}_temp_path {state / 'tmp' / name};"
                     for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    proxy = (f"proxy_pass http://127.0.0.1:{app_port}; proxy_set_header Host $http_host; "
             "proxy_set_header X-Forwarded-For $remote_addr; proxy_set_header X-Forwarded-Proto $scheme; "
             "proxy_read_timeout 3600s; proxy_send_timeout 3600s;")
    return f"""worker_processes auto;
pid {state / 'nginx.pid'};
error_log {state / 'nginx-error.log'} warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
    {f'include {mime};' if mime else ''}
    default_type application/octet-stream;
    access_log off;
    server_tokens off;
    sendfile on;
    keepalive_timeout 65;
    client_max_body_size 1g;
{temp}
    server {{
        listen 127.0.0.1:{port};
        location = /static/fonts/roboto/roboto.css {{ {proxy} }}
        location /static/ {{ alias {static}/; expires 7d; try_files $uri @app; }}
        location /react-app/ {{ alias {react}/; try_files $uri @app; }}
        location / {{ {proxy} }}
        location @app {{ {proxy} }}
    }}
}}
"""


def init(data_dir: Path, env: dict, log: Path, timeout: float = 600.0) -> None:
    """Migrations and the admin user with its token (from env), as `label-studio start` makes them."""
    cmd = [venv_bin("label-studio"), "init", "--quiet", "--no-browser", "--enable-legacy-api-token",
           "--data-dir", str(data_dir)]
    with os.fdopen(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as out:
        try:
            done = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  cwd=data_dir, umask=0o077, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ServerError(f"Label Studio's migrations did not finish within {timeout:.0f}s; log: {log}") from None
    if done.returncode != 0:
        raise ServerError(f"Label Studio's migrations failed (code {done.returncode}); log: {log}")


def start(port: int, data_dir: Path, env: dict, log: Path, timeout: float = 240.0) -> Server:
    """The app under gunicorn on a free internal port, then nginx on `port`: the app's Server, with nginx's
    address and nginx as its `front`."""
    nginx = nginx_binary()
    pkg = package_dir()
    init(data_dir, env, log)
    app_port = free_port()
    app_env = {**env, "DJANGO_SETTINGS_MODULE": "core.settings.label_studio"}
    cmd = [venv_bin("gunicorn"), "core.wsgi:application", "--chdir", str(pkg), "--bind", f"127.0.0.1:{app_port}",
           "--workers", str(workers()), "--timeout", "3600", "--graceful-timeout", "20", "--error-logfile", "-",
           "--worker-tmp-dir", str(data_dir),
           "--config", "python:datalabel.gunicorn_conf"]  # persistent database connections
    app = spawn("Label Studio (gunicorn)", cmd, app_env, log, f"http://127.0.0.1:{app_port}/health", app_port,
                timeout, cwd=data_dir)
    try:
        state = data_dir.parent / "nginx"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (state / "tmp" / name).mkdir(parents=True, exist_ok=True)
        os.chmod(state, 0o700)
        conf = state / "nginx.conf"
        write_text_atomic(conf, nginx_config(port, app_port, state, pkg / "core" / "static_build",
                                     (pkg.parent / "web" / "dist" / "apps" / "labelstudio").resolve()))
        cmd = as_ordinary_user([nginx, "-p", str(state), "-e", str(state / "nginx-error.log"), "-c", str(conf)])
        web = spawn("nginx", cmd, dict(os.environ), log.with_name("nginx.log"),
                    f"http://127.0.0.1:{port}/health", port, 60.0)
    except BaseException:
        app.stop()
        raise
    # callers see one server: the public address (nginx), stopped together with the app behind it
    app.url, app.port, app.health, app.front = web.url, web.port, web.health, web
    return app
