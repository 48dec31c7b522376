"""Annotator accounts, each with an API token of its own: several people label the same tasks through the real API
(the demo, the tests, the quality benchmark).

How Label Studio 1.23.2 (open source) does it, read in its source:
- an admin creates a user with `POST /api/users/` (users/api.py `UserAPI.perform_create`: the user joins the
  admin's organization); Label Studio makes an API token for every new user (users/models.py, post_save);
- the API hands a token only to its own user (`/api/current-user/token`), so an admin cannot read another's;
- its command `label-studio user --username EMAIL` (server.py `_get_user_info`), run with the server's data
  folder and database settings, prints the user with their token. In the Docker stack the same command runs in
  the Label Studio container: `docker compose exec label-studio label-studio user --username EMAIL`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from . import ls
from .errors import LabError, ServerError

ANNOTATOR_EMAIL = "annotator{n}@localhost"


def ensure_user(client, email: str, first_name: str = "", last_name: str = "") -> dict:
    """The user with this email in the admin's organization, created if missing. Returns {id, email}."""
    with ls.api_errors("list users", client.settings.url):
        for user in client.users.list():
            if (user.email or "").lower() == email.lower():
                return {"id": user.id, "email": user.email}
    with ls.api_errors(f"create user {email}", client.settings.url):
        made = client.users.create(username=email.split("@")[0], email=email, first_name=first_name,
                                   last_name=last_name)
    return {"id": made.id, "email": made.email}


# Run with Label Studio's own settings, as its `label-studio user` command does (server.py: the package folder on
# sys.path, its settings module): the emails come on stdin, {email: token} goes to stdout.
_READ_TOKENS = """
import json, os, sys
import label_studio
sys.path.insert(0, os.path.dirname(label_studio.__file__))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "label_studio.core.settings.label_studio")
import django
django.setup()
from users.models import User
emails = json.load(sys.stdin)
print(json.dumps({u.email: u.auth_token.key for u in User.objects.filter(email__in=emails)}))
"""


def read_tokens(emails: list[str], data_dir: str | Path, env: dict[str, str], timeout: float = 180.0) -> dict:
    """Users' API tokens {email: token}, read as Label Studio's `label-studio user` command reads one, for all of
    them in one process, on the server's data (`data_dir`) with the server's environment `env` (its database)."""
    data_dir = Path(data_dir)
    run_env = {**env, "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir), "LOG_LEVEL": "ERROR"}
    run_env.pop("DJANGO_SETTINGS_MODULE", None)
    try:
        proc = subprocess.run([sys.executable, "-c", _READ_TOKENS], env=run_env, cwd=data_dir, capture_output=True,
                              text=True, timeout=timeout, input=json.dumps(emails))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerError(f"reading the annotators' tokens did not run ({type(exc).__name__})") from None
    try:
        tokens = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {}
    except (ValueError, IndexError):
        tokens = {}
    missing = [e for e in emails if not isinstance(tokens.get(e), str)]
    if missing:
        raise LabError(f"no API token found for {missing[0]} (exit {proc.returncode}); is {data_dir} the data "
                       "folder of this Label Studio?")
    return tokens


def ensure_annotators(client, count: int, data_dir: str | Path, env: dict[str, str]) -> list[dict]:
    """`count` annotator users (annotator1@localhost, ...), made if missing, each with their token:
    [{id, email, token}]. Users are listed once and the tokens read in one process."""
    with ls.api_errors("list users", client.settings.url):
        known = {(u.email or "").lower(): {"id": u.id, "email": u.email} for u in client.users.list()}
    users = []
    for n in range(1, count + 1):
        email = ANNOTATOR_EMAIL.format(n=n)
        users.append(known.get(email) or ensure_user(client, email, "Annotator", str(n)))
    tokens = read_tokens([u["email"] for u in users], data_dir, env)
    return [{**u, "token": tokens[u["email"]]} for u in users]


def write_annotators(path: str | Path, annotators: list[dict]) -> Path:
    """The annotators and their tokens as JSON, readable by the owner only (tokens are passwords)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fp:
        json.dump(annotators, fp, indent=1)
        fp.write("\n")
    return path
