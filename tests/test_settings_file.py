"""The `.env` settings file: read by python-dotenv as Compose reads it, and written by docker-shell.sh so that both
read back exactly what was meant."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cli_helpers import assert_user_error, run_cli
from datalabel.config import read_dotenv
from datalabel.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_comments_quotes_export_and_escapes(tmp_path):
    env = tmp_path / ".env"
    env.write_text(
        "# a comment line\n"
        "\n"
        "PLAIN=http://127.0.0.1:8080\n"
        "export EXPORTED=yes\n"
        "TRAILING=value # a comment after the value\n"
        "HASH_INSIDE=a#b\n"
        "SINGLE='  spaced # not a comment $HOME '\n"
        'DOUBLE="line one\\nline two \\"quoted\\""\n'
        "ESCAPED_SINGLE='it\\'s'\n"
        "SPACES_AROUND = padded \n"
        "REFERENCE=${PLAIN}/api\n"
        "EMPTY=\n"
        "NO_EQUALS\n",
        encoding="utf-8")
    values = read_dotenv(env)
    assert values == {
        "PLAIN": "http://127.0.0.1:8080",
        "EXPORTED": "yes",
        "TRAILING": "value",
        "HASH_INSIDE": "a#b",
        "SINGLE": "  spaced # not a comment $HOME ",
        "DOUBLE": 'line one\nline two "quoted"',
        "ESCAPED_SINGLE": "it's",
        "SPACES_AROUND": "padded",
        "REFERENCE": "${PLAIN}/api",  # as written: no expansion (as before python-dotenv)
        "EMPTY": "",
    }


def test_a_quote_left_open_is_an_error_naming_the_line_not_the_value(tmp_path):
    env = tmp_path / ".env"
    env.write_text('GCS_BUCKET_NAME=ok\nLABEL_STUDIO_API_KEY="secret-token-value\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_dotenv(env)
    message = str(caught.value)
    assert "line 2 (LABEL_STUDIO_API_KEY)" in message and "secret-token-value" not in message


def test_the_cli_reads_a_quoted_exported_env_file_against_the_server(label_studio, tmp_path):
    """No setting in the environment: the URL and token come from ./.env written with quotes, `export` and
    comments, and the CLI lists the server's projects with them."""
    (tmp_path / ".env").write_text(
        "# written by hand\n"
        f"export LABEL_STUDIO_URL=\"{label_studio.url}\"  # the local server\n"
        f"LABEL_STUDIO_API_KEY='{label_studio.token}'\n", encoding="utf-8")
    result = run_cli("projects", "list", "--json", cwd=tmp_path,
                     env={"STORAGE_EMULATOR_HOST": os.environ["STORAGE_EMULATOR_HOST"]})
    assert result.ok, str(result)
    assert isinstance(result.json(), list)

    (tmp_path / ".env").write_text(f"LABEL_STUDIO_URL='{label_studio.url}\n", encoding="utf-8")
    assert_user_error(run_cli("projects", "list", cwd=tmp_path), "line 1 (LABEL_STUDIO_URL)", 2)


def _set_compose_var(env_file: Path, key: str, value: str) -> subprocess.CompletedProcess:
    """docker-shell.sh's own set_compose_var (and die), cut out of the script and run on a scratch file."""
    script = (ROOT / "docker-shell.sh").read_text()
    functions = []
    for name in ("die", "set_compose_var"):
        start = script.index(f"\n{name}() {{") + 1
        end = script.index("\n}\n", start) + 3 if not script[start:].split("\n", 1)[0].endswith("}") \
            else script.index("\n", start) + 1
        functions.append(script[start:end])
    program = "set -euo pipefail\n" + "".join(functions) + 'set_compose_var "$1" "$2"\n'
    return subprocess.run(["bash", "-c", program, "bash", key, value], capture_output=True, text=True,
                          env={**os.environ, "COMPOSE_ENV": str(env_file)}, timeout=30)


@pytest.mark.parametrize("value", [
    "docker-compose.yml:docker-compose.emulator.yml", "./secrets", "", "8080",
    "/home/a user/my #1 secrets", "  padded  ", 'with "double" quotes'])
def test_docker_shell_writes_values_dotenv_reads_back_the_same(tmp_path, value):
    env_file = tmp_path / ".env"
    env_file.write_text("MINE=kept # a line of the user's\n")
    for key in ("SECRETS_DIR", "SECRETS_DIR"):  # written twice: replaced, not appended
        done = _set_compose_var(env_file, key, value)
        assert done.returncode == 0, done.stderr
    assert read_dotenv(env_file) == {"MINE": "kept", "SECRETS_DIR": value}


@pytest.mark.parametrize("value", ["it's", "back\\slash", "two\nlines", "/data/$HOME/x", "${NOT_EXPANDED}"])
def test_docker_shell_refuses_a_value_the_file_cannot_keep(tmp_path, value):
    done = _set_compose_var(tmp_path / ".env", "SECRETS_DIR", value)
    assert done.returncode == 2 and "error: SECRETS_DIR holds a quote, a backslash, a $ or a line break" in done.stderr
    assert not (tmp_path / ".env").exists()
