"""A bucket's CORS rules: let the labeling UI's origin read the bucket's objects, without touching other origins' rules."""
from __future__ import annotations

import urllib.parse
from typing import Iterable

from ..errors import ConfigError
from .retry import api_call


CORS_METHODS = ("GET", "HEAD")


def get_cors(bkt) -> list[dict]:
    api_call(f"read bucket {bkt.name!r}", bkt.reload)
    return list(bkt.cors or [])


def check_origin(origin: str) -> str:
    """A browser origin (scheme://host[:port]); ConfigError otherwise, "*" too (every site could read the bucket)."""
    value = (origin or "").strip().rstrip("/")
    if "*" in value:
        raise ConfigError(f"origin {origin!r} would let every web site read the bucket; give Label Studio's origin, "
                          "e.g. --origin http://127.0.0.1:8080")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise ConfigError(f"not a browser origin: {origin!r}; give scheme://host[:port], e.g. http://127.0.0.1:8080")
    return value


def _without(rules: list[dict], origins: set[str]) -> list[dict]:
    """The rules with `origins` taken out; a rule left with no origin is dropped, every other rule kept as is."""
    out = []
    for rule in rules:
        rule = dict(rule)
        kept = [o for o in rule.get("origin", []) if o.rstrip("/") not in origins]
        if kept:
            rule["origin"] = kept
            out.append(rule)
        elif not rule.get("origin"):
            out.append(rule)  # not ours to judge: a rule without origins stays
    return out


def set_cors(bkt, origins: list[str], methods: Iterable[str] = CORS_METHODS, max_age: int = 3600) -> list[dict]:
    """Let browsers on `origins` read the bucket's objects (the labeling UI loads images straight from it).

    Only the rule for these origins changes: rules for other origins (another app's) are kept as they are."""
    wanted = [check_origin(o) for o in origins if o and o.strip()]
    if not wanted:
        raise ConfigError("no CORS origin given: pass --origin https://your-label-studio")
    rule = {"origin": wanted, "method": list(methods),
            "responseHeader": ["Content-Type", "Content-Length", "Range"], "maxAgeSeconds": max_age}
    bkt.cors = _without(get_cors(bkt), set(wanted)) + [rule]
    api_call(f"set CORS on bucket {bkt.name!r}", bkt.patch)
    return get_cors(bkt)


def remove_cors(bkt, origins: list[str] | None) -> list[dict]:
    """Take `origins` out of the bucket's CORS rules (every rule with `origins` None); the rest stays.
    Returns the rules left."""
    bkt.cors = [] if origins is None else _without(get_cors(bkt), {check_origin(o) for o in origins})
    api_call(f"remove CORS from bucket {bkt.name!r}", bkt.patch)
    return get_cors(bkt)
