"""The Docker path: the compose file is checked without an engine; brought up for real where one answers."""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"


def _spec() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_files_are_valid_for_compose(tmp_path):
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose (Debian package) not installed; run-tests.sh installs it when run as root")
    for name in ("label-studio.env", "cli.env", "postgres.env"):  # what docker-shell.sh writes
        (tmp_path / name).write_text("")
    env = {**os.environ, "GCS_BUCKET_NAME": "some-bucket", "SECRETS_DIR": str(tmp_path)}
    base = [tool, "--profile", "cli", "--profile", "postgres", "-f", str(COMPOSE)]
    out = subprocess.run([*base, "config"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)
    assert set(resolved["services"]) == {"label-studio", "label-studio-app", "labeling-cli", "versioning", "postgres"}
    out = subprocess.run([*base, "-f", str(ROOT / "docker-compose.emulator.yml"), "config"], capture_output=True,
                         text=True, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)["services"]
    assert "gcs-emulator" in resolved
    assert resolved["label-studio"]["environment"]["STORAGE_EMULATOR_HOST"] == "http://gcs-emulator:9023"
    assert resolved["labeling-cli"]["environment"]["GOOGLE_APPLICATION_CREDENTIALS"] == ""


def test_compose_file_follows_the_stack_rules():
    spec = _spec()
    assert "version" not in spec  # Compose spec v2
    services = spec["services"]
    ls = services["label-studio"]
    image, _, tag = ls["image"].partition(":")
    assert image == "heartexlabs/label-studio" and tag and tag != "latest"
    assert ls["environment"]["LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK"] == "true"
    assert "healthcheck" in ls and any("/label-studio/data" in v for v in ls["volumes"])
    assert all(p.startswith("127.0.0.1:") for p in ls["ports"])  # loopback unless the user changes it
    # credentials arrive through an env file Compose reads on the host, not a bind mount the container user
    # may be unable to read
    assert ls["env_file"] == ["${SECRETS_DIR:-./secrets}/label-studio.env"]
    assert not any("secrets" in v for v in ls["volumes"])

    cli = services["labeling-cli"]
    assert cli["build"] == {"context": ".", "dockerfile": "data-labeling/Dockerfile",
                            "args": {"EXTRAS": "${DATALABEL_EXTRAS:-}"}}  # optional parts: none unless asked
    for name in ("LABEL_STUDIO_URL", "GCS_BUCKET_NAME", "GOOGLE_APPLICATION_CREDENTIALS"):
        assert name in cli["environment"]
    assert cli["environment"]["GOOGLE_APPLICATION_CREDENTIALS"].startswith("/secrets/")
    assert "${SECRETS_DIR:-./secrets}:/secrets:ro" in cli["volumes"]
    assert cli["user"] == "${HOST_UID:-1000}:${HOST_GID:-1000}"
    # one base image for both CLI images
    bases = {(ROOT / f).read_text().split("\nFROM ", 1)[1].split()[0]
             for f in ("data-labeling/Dockerfile", "data-versioning/Dockerfile")}
    assert bases == {"python:3.11-slim-bookworm"}

    versioning = services["versioning"]
    assert versioning["build"]["dockerfile"] == "data-versioning/Dockerfile"
    # FUSE with least privilege: the device and CAP_SYS_ADMIN, never privileged; as the user's uid
    assert versioning["devices"] == ["/dev/fuse"] and versioning["cap_add"] == ["SYS_ADMIN"]
    assert "privileged" not in versioning and versioning["user"] == "${HOST_UID:-1000}:${HOST_GID:-1000}"

    assert spec["networks"]["default"] == {"name": "${DATALABEL_NETWORK:-data-labeling-network}", "external": True}
    assert "postgres" in services["postgres"]["profiles"]
    for dockerfile in ("data-labeling/Dockerfile", "data-versioning/Dockerfile"):
        assert (ROOT / dockerfile).is_file(), dockerfile


def test_no_secret_values_in_tracked_files():
    tracked = subprocess.run(["git", "ls-files", "secrets"], capture_output=True, text=True, cwd=ROOT).stdout.split()
    assert sorted(tracked) == ["secrets/.gitignore", "secrets/README.md"]


def test_docker_shell_script_parses_and_explains_itself():
    script = ROOT / "docker-shell.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--local" in out.stdout and "down" in out.stdout
    bad = subprocess.run([str(script), "--nonsense"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown argument" in bad.stderr


def test_label_studio_entrypoint_refuses_empty_credentials(tmp_path):
    """The Label Studio service's entrypoint, run with a stand-in image entrypoint: credentials from the env file
    reach the command; an empty one stops the start with one line and exit 78."""
    entry = _spec()["services"]["label-studio"]["entrypoint"]
    assert entry[:2] == ["/bin/bash", "-c"]
    # Compose turns $$ into $ before the container runs it
    script = entry[2].replace("$$", "$").replace("/label-studio/deploy/docker-entrypoint.sh", str(tmp_path / "entry.sh"))
    (tmp_path / "entry.sh").write_text('#!/bin/sh\nprintf "%s|%s|%s|%s\\n" "$LABEL_STUDIO_USERNAME" '
                                       '"$LABEL_STUDIO_PASSWORD" "$LABEL_STUDIO_USER_TOKEN" "$*"\n')
    (tmp_path / "entry.sh").chmod(0o755)
    assert _spec()["services"]["label-studio-app"]["entrypoint"] == entry  # team mode's app server: the same check
    command = _spec()["services"]["label-studio"]["command"]
    # Compose's default when LS_COMMAND is unset or empty (team mode sets it to nginx)
    assert command.startswith("${LS_COMMAND:-") and command.endswith("}")
    command = shlex.split(command[len("${LS_COMMAND:-"):-1])
    creds = {"LABEL_STUDIO_USERNAME": "admin@example.com", "LABEL_STUDIO_PASSWORD": "-pw with space",
             "LABEL_STUDIO_USER_TOKEN": "0123456789abcdef0123456789abcdef01234567"}
    env = {"PATH": os.environ["PATH"], **creds}
    out = subprocess.run(["bash", "-c", script, entry[3], *command], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("admin@example.com|-pw with space|0123456789abcdef0123456789abcdef01234567|"
                                  "label-studio start --enable-legacy-api-token")
    out = subprocess.run(["bash", "-c", script, entry[3], *command], capture_output=True, text=True,
                         env={**env, "LABEL_STUDIO_PASSWORD": ""})
    assert out.returncode == 78 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "error: LABEL_STUDIO_PASSWORD is empty; run ./docker-shell.sh to generate secrets/label-studio.env"]
