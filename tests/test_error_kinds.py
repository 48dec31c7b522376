"""Exit codes come from the error kinds, not from the call sites: every raise of the LabError family in both
packages is read (ast) and held against what its message says, every flag and variable a message names must
exist, and the README prints the table the code uses. Pure static checks, no server."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import typer

from datalabel import errors

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(ROOT / "data-labeling" / "datalabel").rglob("*.py"),
                  *(ROOT / "data-versioning" / "dataversion").rglob("*.py")])
KINDS = {name: cls for name, cls in vars(errors).items() if isinstance(cls, type) and issubclass(cls, errors.LabError)}

# What a message says -> the kind it must be raised as (and so its exit code)
RULES = [
    (re.compile(r"already in use|cannot listen on", re.I), "ServerError"),
    (re.compile(r"gave up after|no answer after|did not answer|still \S+ after|within \{|timed out", re.I),
     "ServerError"),
    (re.compile(r"cannot reach", re.I), "ServerError"),
    (re.compile(r"\bpass either|, not both|exclude each other|goes with --", re.I), "ConfigError"),
    (re.compile(r"frame.size|not an http\(s\) URL|not a valid bucket name", re.I), "ConfigError"),
    (re.compile(r"duplicated label|no labels given|unknown (format|template|strategy|direction|annotation policy)",
                re.I), "ConfigError"),
]


def message_text(node: ast.expr) -> str:
    """The literal parts of a message (f-string holes become `{`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{" for v in node.values)
    if isinstance(node, ast.BinOp):
        return message_text(node.left) + message_text(node.right)
    return ""


def raise_sites() -> list[tuple[str, int, str, str]]:
    """(file, line, kind, message) for every `raise Kind(...)` / `return Kind(...)` of the LabError family."""
    sites = []
    for path in SOURCES:
        if "build" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Raise, ast.Return)) and isinstance(getattr(node, "exc", None) or
                                                                        getattr(node, "value", None), ast.Call):
                call = node.exc if isinstance(node, ast.Raise) else node.value
                name = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")
                if name in KINDS or name == "error":
                    text = message_text(call.args[0]) if call.args else ""
                    sites.append((str(path.relative_to(ROOT)), node.lineno, name, text))
    return sites


SITES = raise_sites()


def cli_flags() -> set[str]:
    from datalabel.cli import app as labeling
    from dataversion.cli import app as versioning

    flags: set[str] = set()

    def walk(cmd):
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub)
        for param in getattr(cmd, "params", []):
            flags.update(o for o in [*param.opts, *getattr(param, "secondary_opts", [])] if o.startswith("--"))

    for app in (labeling, versioning):
        walk(typer.main.get_command(app))
    shell = (ROOT / "docker-shell.sh").read_text(encoding="utf-8")
    flags.update(re.findall(r"^\s+(--[a-z-]+)\)", shell, re.M))
    return flags


def known_variables() -> set[str]:
    """Every environment variable the code, the Compose files or docker-shell.sh reads or sets."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in [*SOURCES, ROOT / "docker-shell.sh",
                                                             *ROOT.glob("docker-compose*.yml")])
    found = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", text))
    found |= set(re.findall(r"(?:environ(?:\.get)?|setting|getenv|envvar=)\(?\[?[\"']([A-Z][A-Z0-9_]+)", text))
    found |= set(re.findall(r"^\s+([A-Z][A-Z0-9_]+):", text, re.M))  # Compose environment keys
    found |= set(re.findall(r"^\s*([A-Z][A-Z0-9_]+)=", text, re.M))
    found |= set(re.findall(r"[\"']([A-Z][A-Z0-9]*_[A-Z0-9_]+)[\"']", text))  # names the code holds
    found |= {name + "_FILE" for name in found}
    return found


def test_the_walk_sees_the_raise_sites():
    assert len(SITES) > 250
    assert {kind for _, _, kind, _ in SITES} >= {"LabError", "ConfigError", "ServerError", "NotFound"}


def test_every_kind_has_an_exit_code_of_the_table_and_the_readme_prints_it():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, kind in KINDS.items():
        assert kind.exit_code in errors.EXIT_CODES, name
    for code, meaning in errors.EXIT_CODES.items():
        assert f"| {code} | {meaning} |" in readme


@pytest.mark.parametrize("pattern,kind", RULES, ids=[k + ":" + p.pattern[:30] for p, k in RULES])
def test_messages_that_say_the_same_thing_exit_the_same_way(pattern, kind):
    wrong = [f"{f}:{line} raises {k}: {text[:90]}" for f, line, k, text in SITES
             if k != "error" and pattern.search(text) and not issubclass(KINDS[k], KINDS[kind])]
    assert not wrong, "\n".join(wrong)


def test_no_exit_code_is_chosen_at_a_call_site():
    """Only the CLI edge (output.run_app) and the stack's own entry points (embedded.py; the emulator's server
    process, `python -m datalabel.emulator`) turn errors into exit codes."""
    allowed = {"data-labeling/datalabel/output.py", "data-labeling/datalabel/embedded.py",
               "data-labeling/datalabel/credentials.py", "data-labeling/datalabel/emulator.py"}
    found = []
    for path in SOURCES:
        rel = str(path.relative_to(ROOT))
        if "build" in path.parts or rel in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("exit", "Exit") and node.args:
                found.append(f"{rel}:{node.lineno}")
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == "exit_code"
                                                    for t in node.targets):
                found.append(f"{rel}:{node.lineno}")
    assert not found, found


def test_messages_name_only_flags_that_exist():
    flags = cli_flags()
    ours = [(f, line, re.sub(r"`(?!datalabel|dataversion|\./docker-shell)[^`]*`", "", text))  # other tools' flags
            for f, line, _, text in SITES]
    wrong = [f"{f}:{line}: {flag} in {text[:80]!r}" for f, line, text in ours
             for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", text) if flag not in flags]
    assert not wrong, "\n".join(wrong)


def test_messages_name_only_variables_that_exist():
    known = known_variables()
    wrong = [f"{f}:{line}: {name} in {text[:80]!r}" for f, line, _, text in SITES
             for name in re.findall(r"\b([A-Z][A-Z0-9]*_[A-Z0-9_]*[A-Z0-9])\b", text) if name not in known]
    assert not wrong, "\n".join(wrong)


def test_what_the_system_refuses_exits_as_run_app_says():
    """An OSError caught on the way (a folder that cannot be written) is exit 1, as `output.run_app` makes any
    other OSError (EXIT_OS_ERROR): never a usage error (2) in one module and a failure (1) in another."""
    from datalabel.output import EXIT_OS_ERROR

    assert EXIT_OS_ERROR == errors.LabError.exit_code
    wrong = []
    for path in SOURCES:
        if "build" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ExceptHandler) or node.type is None:
                continue
            caught = {getattr(n, "id", getattr(n, "attr", "")) for n in ast.walk(node.type)}
            if not caught & {"OSError", "PermissionError", "IsADirectoryError", "NotADirectoryError"}:
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.Raise) and isinstance(inner.exc, ast.Call) and \
                        getattr(inner.exc.func, "id", "") in ("ConfigError", "NotFound"):
                    wrong.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    assert not wrong, wrong
