"""The stack's credentials, generated in this one place for both start paths (embedded and Docker).

Files under the secrets folder (git-ignored), each 0600 and written whole or not at all:
  ls_admin_user, ls_admin_password, ls_api_token   Label Studio's admin and its API token
  postgres_password                                 PostgreSQL (the Docker stack's team mode)
  label-studio.env, cli.env, postgres.env           the same values as Compose env files (--compose), read by
                                                    Docker on the host side, so they reach a container whatever
                                                    user it runs as; rewritten from the files above on each start

Generated on first start, kept afterwards; an empty file counts as missing. Values are never printed.
Standard library only: `./docker-shell.sh` runs it as `python3 -m datalabel.credentials` before anything is
installed.
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from pathlib import Path

ADMIN_USER = "admin@example.com"
MAKERS = {
    "ls_admin_user": lambda: ADMIN_USER,
    "ls_admin_password": lambda: secrets.token_urlsafe(18),
    "ls_api_token": lambda: secrets.token_hex(20),
    "postgres_password": lambda: secrets.token_urlsafe(18),
}


def _write_private(path: Path, text: str) -> None:
    """0600 from the first byte, renamed into place when complete."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fp:
            fp.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure(secrets_dir: str | Path, postgres: bool = False) -> dict[str, str]:
    """Generate what is missing, read the rest. Returns {"username", "password", "token"} (+ "postgres")."""
    folder = Path(secrets_dir)
    folder.mkdir(parents=True, exist_ok=True)
    names = [n for n in MAKERS if postgres or n != "postgres_password"]
    values = {}
    for name in names:
        path = folder / name
        value = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
        if not value:
            value = MAKERS[name]()
            _write_private(path, value + "\n")
        values[name] = value
    out = {"username": values["ls_admin_user"], "password": values["ls_admin_password"],
           "token": values["ls_api_token"]}
    if postgres:
        out["postgres"] = values["postgres_password"]
    return out


def write_compose_env_files(secrets_dir: str | Path) -> list[Path]:
    """The Compose env files of the Docker stack, from the credential files."""
    folder = Path(secrets_dir)
    creds = ensure(folder, postgres=True)
    files = {
        "label-studio.env": {"LABEL_STUDIO_USERNAME": creds["username"], "LABEL_STUDIO_PASSWORD": creds["password"],
                             "LABEL_STUDIO_USER_TOKEN": creds["token"], "POSTGRE_PASSWORD": creds["postgres"]},
        "cli.env": {"LABEL_STUDIO_API_KEY": creds["token"]},
        "postgres.env": {"POSTGRES_PASSWORD": creds["postgres"]},
    }
    for name, values in files.items():
        _write_private(folder / name, "".join(f"{k}={v}\n" for k, v in values.items()))
    return [folder / name for name in files]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datalabel.credentials", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("secrets_dir", help="the secrets folder (created if missing)")
    parser.add_argument("--compose", action="store_true", help="also write the Compose env files (Docker stack)")
    args = parser.parse_args(argv)
    try:
        if args.compose:
            write_compose_env_files(args.secrets_dir)
        else:
            ensure(args.secrets_dir)
    except OSError as exc:
        print(f"error: cannot write credentials into {args.secrets_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
