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
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import ls
from .errors import LabError, ServerError
from .processes import venv_bin

ANNOTATOR_EMAIL = "annotator{n}@localhost"
_TOKEN = re.compile(r"'token': '([0-9A-Za-z]+)'")


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


def read_token(email: str, data_dir: str | Path, env: dict[str, str], timeout: float = 180.0) -> str:
    """A user's API token, from Label Studio's `label-studio user` command run on the server's data (`data_dir`)
    with the server's environment `env` (its database settings)."""
    data_dir = Path(data_dir)
    cmd = [venv_bin("label-studio"), "user", "--username", email, "--data-dir", str(data_dir)]
    run_env = {**env, "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir)}
    try:
        proc = subprocess.run(cmd, env=run_env, cwd=data_dir, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerError(f"`label-studio user` for {email} did not run ({type(exc).__name__})") from None
    found = _TOKEN.search(proc.stdout)
    if proc.returncode != 0 or not found:
        raise LabError(f"`label-studio user --username {email}` printed no token (exit {proc.returncode}); "
                       f"is {data_dir} the data folder of this Label Studio?")
    return found.group(1)


def ensure_annotators(client, count: int, data_dir: str | Path, env: dict[str, str]) -> list[dict]:
    """`count` annotator users (annotator1@localhost, ...), made if missing, each with their token:
    [{id, email, token}]."""
    users = [ensure_user(client, ANNOTATOR_EMAIL.format(n=n), "Annotator", str(n)) for n in range(1, count + 1)]
    with ThreadPoolExecutor(max_workers=min(4, max(1, count))) as pool:
        tokens = list(pool.map(lambda u: read_token(u["email"], data_dir, env), users))
    return [{**u, "token": t} for u, t in zip(users, tokens)]


def write_annotators(path: str | Path, annotators: list[dict]) -> Path:
    """The annotators and their tokens as JSON, readable by the owner only (tokens are passwords)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fp:
        json.dump(annotators, fp, indent=1)
        fp.write("\n")
    return path
