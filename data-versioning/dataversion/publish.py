"""A version's git side, all or nothing: one commit and its annotated `dataset_vN` tag, pushed together to the
team's git remote (`git push --atomic`), and only then written to the local branch and tags.

The commit and the tag are built as objects first (a temporary index, `commit-tree`, `mktag`); no ref changes
until the remote took both. If the push is rejected because another committer got there first, the command
fetches, rebuilds its one commit on top of theirs (the snapshot's files as this commit has them), takes the
next free number and pushes again. So no local tag ever exists that the remote does not have, and two
committers end up with two versions. Every user value reaches git after `--end-of-options` or `--`.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from datalabel.api import ConfigError, LabError, ServerError

from . import gitauth
from .common import TAG_PREFIX, tool_env

ORIGIN = "origin"
ATTEMPTS = 8
_PSEUDO = re.compile(r"^(?:[A-Z_]*HEAD|HEAD)$")


def git(repo: Path, *args: str, env: dict | None = None, stdin: str | None = None, check: bool = True,
        url: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", *args], cwd=repo, env=env or tool_env(), input=stdin, capture_output=True,
                          text=True, timeout=600)
    if check and proc.returncode != 0:
        raise failure(f"git {args[0]}", proc.stderr, url)
    return proc


def failure(what: str, stderr: str, url: str | None) -> LabError:
    if url:
        hint = gitauth.explain(stderr, url)
        if hint:
            return ConfigError(f"{what}: {hint}")
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    line = next((ln for ln in lines if ln.startswith(("error:", "fatal:", "ERROR:"))), lines[-1] if lines else "?")
    return (ServerError if url else LabError)(f"{what} failed: {line[:400]}")


def origin_url(repo: Path) -> str | None:
    proc = git(repo, "config", "--get", f"remote.{ORIGIN}.url", check=False)
    return proc.stdout.strip() or None


def set_origin(repo: Path, url: str) -> None:
    gitauth.check_url(url)
    if origin_url(repo) is None:
        git(repo, "remote", "add", "--end-of-options", ORIGIN, url)
    else:
        git(repo, "remote", "set-url", "--end-of-options", ORIGIN, url)


def branch(repo: Path) -> str:
    proc = git(repo, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    if proc.returncode != 0:
        raise ConfigError(f"{repo} is not on a branch (detached HEAD); run `git switch main` there first")
    return proc.stdout.strip()


def rev(repo: Path, name: str) -> str | None:
    proc = git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", name, check=False)
    return proc.stdout.strip() or None


def check_tag_name(repo: Path, tag: str) -> str:
    """A tag name from the user: a valid ref name, not an option, not HEAD (or another pseudo-ref), and not
    something this repository already names."""
    if not tag or tag.startswith("-") or _PSEUDO.match(tag) or any(c.isspace() for c in tag):
        raise ConfigError(f"{tag!r} is not a valid tag name; use e.g. {TAG_PREFIX}7, or leave --tag out")
    if git(repo, "check-ref-format", f"refs/tags/{tag}", check=False).returncode != 0:
        raise ConfigError(f"{tag!r} is not a valid tag name; use e.g. {TAG_PREFIX}7, or leave --tag out")
    if rev(repo, tag) or rev(repo, f"refs/tags/{tag}"):
        raise ConfigError(f"tag {tag} already exists (or names another ref); pick another with --tag or leave it "
                          f"out for the next {TAG_PREFIX}N")
    return tag


def number(tag: str) -> int | None:
    return int(tag[len(TAG_PREFIX):]) if re.fullmatch(rf"{TAG_PREFIX}\d+", tag) else None


class Remote:
    """The origin of a dataset repository and its credentials (None url: the repository is local only)."""

    def __init__(self, repo: Path):
        self.repo, self.url = repo, origin_url(repo)
        self.env = gitauth.git_env(self.url)
        self.branch = branch(repo)

    def state(self) -> tuple[str | None, dict[str, str]]:
        """The remote branch tip and its tags (name -> object), by `git ls-remote`."""
        proc = git(self.repo, "ls-remote", "--end-of-options", ORIGIN, f"refs/heads/{self.branch}",
                   "refs/tags/*", env=self.env, url=self.url)
        tip, tags = None, {}
        for line in proc.stdout.splitlines():
            oid, _, ref = line.partition("\t")
            if ref == f"refs/heads/{self.branch}":
                tip = oid
            elif ref.startswith("refs/tags/") and not ref.endswith("^{}"):
                tags[ref[len("refs/tags/"):]] = oid
        return tip, tags

    def sync(self) -> tuple[str | None, dict[str, str]]:
        """Fetch the remote branch and the version tags this clone lacks; returns state()."""
        tip, tags = self.state()
        specs = [f"+refs/heads/{self.branch}:refs/remotes/{ORIGIN}/{self.branch}"] if tip else []
        specs += [f"refs/tags/{t}:refs/tags/{t}" for t in tags
                  if number(t) is not None and not rev(self.repo, f"refs/tags/{t}")]
        if specs:
            git(self.repo, "fetch", "--quiet", "--no-tags", "--end-of-options", ORIGIN, *specs, env=self.env,
                url=self.url)
        return tip, tags


def join(repo: Path) -> None:
    """A repository without commits starts from the remote's branch, when the remote has one."""
    remote = Remote(repo)
    tip, _tags = remote.sync()
    if tip and rev(repo, "HEAD") is None:
        git(repo, "checkout", "--quiet", "-B", remote.branch, f"refs/remotes/{ORIGIN}/{remote.branch}")


def _local_tags(repo: Path) -> list[str]:
    return git(repo, "tag", "--list", f"{TAG_PREFIX}*").stdout.split()


def next_tag(names) -> str:
    numbers = [n for n in map(number, names) if n is not None]
    return f"{TAG_PREFIX}{max(numbers, default=0) + 1}"


def _parent(repo: Path, head: str | None, tip: str | None, branch_name: str) -> str | None:
    if tip is None or head is None or head == tip:
        return head or tip
    if git(repo, "merge-base", "--is-ancestor", tip, head, check=False).returncode == 0:
        return head  # local commits the remote has not seen yet go along
    if git(repo, "merge-base", "--is-ancestor", head, tip, check=False).returncode == 0:
        return tip
    raise ConfigError(f"the local {branch_name} and {ORIGIN}/{branch_name} have diverged; run `git pull --rebase` "
                      f"in {repo}, then commit again")


def _tree(repo: Path, parent: str | None, files: list[str]) -> str:
    """The parent's tree with `files` as they are in the workspace (a temporary index; the real one is untouched)."""
    gitdir = Path(git(repo, "rev-parse", "--absolute-git-dir").stdout.strip())
    index = gitdir / f"dataversion-index.{os.getpid()}"
    env = {**tool_env(), "GIT_INDEX_FILE": str(index)}
    try:
        git(repo, "read-tree", *([parent] if parent else ["--empty"]), env=env)
        git(repo, "add", "--", *files, env=env)
        return git(repo, "write-tree", env=env).stdout.strip()
    finally:
        index.unlink(missing_ok=True)


def _objects(repo: Path, parent: str | None, tree: str, tag: str, message: str) -> tuple[str, str]:
    """The version's commit (the parent itself if it already holds this tree) and its annotated tag object."""
    if parent and git(repo, "rev-parse", f"{parent}^{{tree}}").stdout.strip() == tree:
        done = [t for t in git(repo, "tag", "--points-at", parent).stdout.split() if number(t) is not None]
        if done:
            raise LabError(f"the snapshot is the same as {done[0]}; nothing new to version")
        commit = parent  # an earlier run committed but never tagged: that commit becomes the version
    else:
        commit = git(repo, "commit-tree", tree, *(["-p", parent] if parent else []), "-F", "-",
                     stdin=message + "\n").stdout.strip()
    ident = git(repo, "var", "GIT_COMMITTER_IDENT").stdout.strip()
    body = f"object {commit}\ntype commit\ntag {tag}\ntagger {ident}\n\n{message}\n"
    return commit, git(repo, "mktag", stdin=body).stdout.strip()


def _update_local(repo: Path, branch_name: str, head: str | None, commit: str, tag: str, tag_obj: str,
                  files: list[str], pushed: bool) -> None:
    """Branch, tag (and the remote-tracking branch) in one ref transaction; then index and workspace follow."""
    lines = ["start"]
    if commit != head:
        lines.append(f"update refs/heads/{branch_name} {commit} {head or '0' * 40}")
    lines.append(f"create refs/tags/{tag} {tag_obj}")
    if pushed:
        lines.append(f"update refs/remotes/{ORIGIN}/{branch_name} {commit}")
    git(repo, "update-ref", "--stdin", stdin="\n".join(lines + ["prepare", "commit"]) + "\n")
    if commit == head:
        return
    git(repo, "reset", "--quiet")  # the index follows the branch; the workspace keeps the snapshot's files
    if head:  # files another committer changed come in as they are in the new commit
        changed = git(repo, "diff", "--name-status", "--no-renames", head, commit, "--").stdout.splitlines()
        for status, _, path in (line.partition("\t") for line in changed):
            if path in files:
                continue
            if status == "D":
                (repo / path).unlink(missing_ok=True)
            else:
                git(repo, "checkout", commit, "--", path)


def record(repo: Path, files: list[str], tag: str | None, message: str | None, default_message) -> dict:
    """Commit `files` as a new version and tag it; with a remote, push both at once (retrying on a race)."""
    remote = Remote(repo)
    taken = []
    for _ in range(ATTEMPTS):
        tip, remote_tags = remote.sync() if remote.url else (None, {})
        if tag and tag in remote_tags:
            raise ConfigError(f"tag {tag} already exists on {ORIGIN}; pick another with --tag or leave it out")
        name = tag or next_tag([*_local_tags(repo), *remote_tags])
        text = message or default_message(name)
        head = rev(repo, "HEAD")
        parent = _parent(repo, head, tip, remote.branch)
        commit, tag_obj = _objects(repo, parent, _tree(repo, parent, files), name, text)
        if remote.url:
            # versions made before the repository had a remote go along, so the remote holds the whole history
            earlier = [f"refs/tags/{t}:refs/tags/{t}" for t in _local_tags(repo)
                       if number(t) is not None and t not in remote_tags]
            proc = git(repo, "push", "--atomic", "--quiet", "--end-of-options", ORIGIN,
                       f"{commit}:refs/heads/{remote.branch}", f"{tag_obj}:refs/tags/{name}", *earlier,
                       env=remote.env, check=False)
            if proc.returncode != 0:
                now_tip, now_tags = remote.state()
                if now_tip != tip or name in now_tags:  # someone else pushed meanwhile: rebuild on theirs
                    taken.append(name)
                    continue
                raise failure(f"git push to {ORIGIN}", proc.stderr, remote.url)
        _update_local(repo, remote.branch, head, commit, name, tag_obj, files, bool(remote.url))
        return {"tag": name, "commit": commit, "message": text, "git_remote": remote.url, "taken": taken}
    raise ServerError(f"git push to {ORIGIN}: still rejected after {ATTEMPTS} attempts (others keep pushing); "
                      "run the same command again")
