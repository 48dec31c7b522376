"""How git reaches the team's dataset remote: credentials from the secrets folder, handed to git through its
environment only (`GIT_SSH_COMMAND`, a credential helper that reads the token file), never in argv, in a URL,
in a log or in `.git/config`.

Files in the secrets folder ($SECRETS_DIR, else ./secrets), each 0600:
  git_ssh_key       an SSH deploy key (the private half) for ssh://host/... or user@host:path remotes
  git_known_hosts   the SSH server's host key(s), as `ssh-keyscan` prints them; SSH remotes need it (host keys
                    are checked, never trusted on first use)
  git_token         an HTTPS token (a GitHub fine-grained token, a GitLab deploy token ...) for https:// remotes
  git_user          the user name that goes with the token (default: git)
"""
from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

from datalabel.api import ConfigError

from .common import tool_env

SECRETS_ENV = "SECRETS_DIR"
SSH_KEY, KNOWN_HOSTS, TOKEN, TOKEN_USER = "git_ssh_key", "git_known_hosts", "git_token", "git_user"
_SCP_LIKE = re.compile(r"^(?:[^@/\s]+@)?(?P<host>[^/:\s]+):(?!//)")


def secrets_dir() -> Path:
    return Path(os.environ.get(SECRETS_ENV) or "secrets").resolve()


def kind(url: str) -> str:
    """"http" (http:// or https://), "ssh" (ssh:// or user@host:path) or "local" (a path or file://)."""
    if re.match(r"^https?://", url, re.IGNORECASE):
        return "http"
    if re.match(r"^(?:git\+)?ssh://", url, re.IGNORECASE) or (_SCP_LIKE.match(url) and not Path(url).exists()):
        return "ssh"
    return "local"


def is_url(repo: str) -> bool:
    """Whether a --repo value names a remote repository (read over the network) rather than a local folder."""
    return kind(str(repo)) in ("http", "ssh") or str(repo).startswith("file://")


def check_url(url: str) -> str:
    """A git remote URL from the user: no option-like value, no whitespace, and no credentials inside it (they
    would land in .git/config and in every message that prints the URL)."""
    if not url or url.startswith("-") or any(c.isspace() or ord(c) < 32 for c in url):
        raise ConfigError(f"not a git remote URL: {url!r}; use https://host/org/repo.git or "
                          "ssh://git@host/org/repo.git")
    if kind(url) == "http":
        parts = urlsplit(url)
        if parts.password is not None or parts.username is not None:
            raise ConfigError("the git remote URL holds a user name or token; put the token in "
                              f"{secrets_dir() / TOKEN} (0600) and use the URL without it")
        if not parts.hostname:
            raise ConfigError(f"not a git remote URL: {url!r} (no host)")
    return url


def _private(path: Path) -> Path | None:
    """A secrets file if it exists: refused when others may read it (as ssh refuses such a key)."""
    if not path.is_file():
        return None
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(f"{path} may be read by others (mode {mode:o}); run: chmod 600 {path}")
    return path


def host_port(url: str) -> tuple[str, int | None]:
    if "://" in url:
        parts = urlsplit(url)
        return parts.hostname or "", parts.port
    match = _SCP_LIKE.match(url)
    return (match.group("host") if match else ""), None


def git_env(url: str | None) -> dict[str, str]:
    """tool_env() plus what git needs to reach `url` with the credentials of the secrets folder."""
    env = tool_env()
    for name in ("GIT_ASKPASS", "SSH_ASKPASS"):
        env.pop(name, None)
    if not url:
        return env
    folder = secrets_dir()
    if kind(url) == "ssh":
        known = folder / KNOWN_HOSTS
        if not known.is_file():
            host, port = host_port(url)
            raise ConfigError(f"no {known}: SSH host keys are checked, never trusted blindly; after checking the "
                              f"server's fingerprint, add it: {keyscan_hint(host, port, known)}")
        cmd = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}",
               "-o", "GlobalKnownHostsFile=/dev/null", "-o", "UpdateHostKeys=no"]
        key = _private(folder / SSH_KEY)
        if key:
            cmd += ["-o", "IdentitiesOnly=yes", "-i", str(key)]
        env["GIT_SSH_COMMAND"] = " ".join(shlex.quote(part) for part in cmd)
        env["GIT_SSH_VARIANT"] = "ssh"
    elif kind(url) == "http":
        token = _private(folder / TOKEN)
        if token:
            user_file = folder / TOKEN_USER
            user = user_file.read_text(encoding="utf-8").strip() if user_file.is_file() else "git"
            # the helper prints the token from its file: it never appears in a command line or a config file
            helper = (f'!f() {{ test "$1" = get || exit 0; printf "username=%s\\n" {shlex.quote(user)}; '
                      f'printf "password=%s\\n" "$(cat {shlex.quote(str(token))})"; }}; f')
            env.update({"GIT_CONFIG_COUNT": "2", "GIT_CONFIG_KEY_0": "credential.helper", "GIT_CONFIG_VALUE_0": "",
                        "GIT_CONFIG_KEY_1": "credential.helper", "GIT_CONFIG_VALUE_1": helper})
    return env


def keyscan_hint(host: str, port: int | None, known: Path) -> str:
    return f"ssh-keyscan {f'-p {port} ' if port else ''}{host} >> {known}"


def explain(stderr: str, url: str) -> str | None:
    """One actionable line for the failures a person can fix (host key, credentials), else None."""
    folder = secrets_dir()
    host, port = host_port(url)
    if re.search(r"Host key verification failed|host key is known|HOST IDENTIFICATION HAS CHANGED", stderr):
        return (f"the SSH host key of {host} is not the one in {folder / KNOWN_HOSTS} (unknown or changed); check "
                f"the server's fingerprint, then add it: {keyscan_hint(host, port, folder / KNOWN_HOSTS)}")
    if "Permission denied (publickey" in stderr:
        return (f"the SSH server {host} refused the key {folder / SSH_KEY}; add its public half to the repository "
                "as a deploy key with write access")
    if re.search(r"Authentication failed|HTTP 40[13]|could not read Username|terminal prompts disabled", stderr):
        return (f"the git server {host} refused the credentials; put a token with write access to the repository in "
                f"{folder / TOKEN} (0600)")
    return None
