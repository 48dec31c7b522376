"""The stack's credentials, generated in this one place for both start paths (embedded and Docker).

Files under the secrets folder (git-ignored), each 0600 and written whole or not at all:
  ls_admin_user, ls_admin_password, ls_api_token   Label Studio's admin and its API token
  ml_backend_user, ml_backend_password              HTTP basic auth of the ML backend (`datalabel al serve`); `al
                                                    connect` hands the same pair to Label Studio
  postgres_password                                 PostgreSQL (the Docker stack's team mode)
  label-studio.env, cli.env, postgres.env           the same values as Compose env files (--compose), read by
                                                    Docker on the host side, so they reach a container whatever
                                                    user it runs as; rewritten from the files above on each start

Generated on first start, kept afterwards; an empty file counts as missing. Values are never printed. Two starts
at once (`al serve` and `al connect` in two terminals) agree: a file is linked into place only if none exists yet,
and the loser reads the winner's value.
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
    "ml_backend_user": lambda: ML_BACKEND_USER,
    "ml_backend_password": lambda: secrets.token_urlsafe(24),
}
ML_BACKEND_USER = "datalabel-ml"
# where `al serve` / `al connect` read the backend's pair before the secrets folder (the CLI container's cli.env)
ML_BACKEND_ENV = ("DATALABEL_ML_BACKEND_USER", "DATALABEL_ML_BACKEND_PASSWORD")


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


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip() if path.is_file() else ""


def _create_private(path: Path, text: str) -> None:
    """Like _write_private, but never replaces a file another start wrote meanwhile (a no-clobber link)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fp:
            fp.write(text)
        try:
            os.link(tmp, path)
        except FileExistsError:
            if _read(path):
                return  # another start won: its value stands
            os.replace(tmp, path)  # an emptied file counts as missing
    finally:
        Path(tmp).unlink(missing_ok=True)


def _ensure_files(folder: Path, names: list[str]) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    values = {}
    for name in names:
        path = folder / name
        if not _read(path):
            _create_private(path, MAKERS[name]() + "\n")
        values[name] = _read(path)
    return values


def ensure(secrets_dir: str | Path, postgres: bool = False) -> dict[str, str]:
    """Generate what is missing, read the rest. Returns {"username", "password", "token", "ml_user",
    "ml_password"} (+ "postgres")."""
    names = [n for n in MAKERS if postgres or n != "postgres_password"]
    values = _ensure_files(Path(secrets_dir), names)
    out = {"username": values["ls_admin_user"], "password": values["ls_admin_password"],
           "token": values["ls_api_token"], "ml_user": values["ml_backend_user"],
           "ml_password": values["ml_backend_password"]}
    if postgres:
        out["postgres"] = values["postgres_password"]
    return out


def ml_backend(secrets_dir: str | Path | None = None) -> tuple[str, str]:
    """The ML backend's basic-auth pair: DATALABEL_ML_BACKEND_USER/_PASSWORD if both are set (the Compose CLI
    container, whose secrets mount is read-only), else the files in the secrets folder ($SECRETS_DIR, else
    ./secrets), generated there on first use. `al serve` and `al connect` both call this, so the pair the backend
    checks is the pair Label Studio is given."""
    user, password = (os.environ.get(name, "").strip() for name in ML_BACKEND_ENV)
    if user and password:
        return user, password
    folder = Path(secrets_dir or os.environ.get("SECRETS_DIR") or "secrets")
    values = _ensure_files(folder, ["ml_backend_user", "ml_backend_password"])
    return values["ml_backend_user"], values["ml_backend_password"]


def write_compose_env_files(secrets_dir: str | Path) -> list[Path]:
    """The Compose env files of the Docker stack, from the credential files."""
    folder = Path(secrets_dir)
    creds = ensure(folder, postgres=True)
    files = {
        "label-studio.env": {"LABEL_STUDIO_USERNAME": creds["username"], "LABEL_STUDIO_PASSWORD": creds["password"],
                             "LABEL_STUDIO_USER_TOKEN": creds["token"], "POSTGRE_PASSWORD": creds["postgres"]},
        "cli.env": {"LABEL_STUDIO_API_KEY": creds["token"], ML_BACKEND_ENV[0]: creds["ml_user"],
                    ML_BACKEND_ENV[1]: creds["ml_password"]},
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
