"""Reading a large JSON array one item at a time, in runs of whole items decoded in C.

Kept by hand instead of ijson: on 20,000 Label Studio tasks, ijson (yajl2_c backend) plus building the tasks takes
4.2x as long, and decoding the whole file at once 1.9x as long with 5.6x the memory (`benchmarks/bench_machinery.py`,
"reader").
"""
from __future__ import annotations

import json
from typing import IO, Any, Callable, Iterator

from .errors import LabError
from .files import no_json_constant

try:  # orjson decodes several times faster; the stdlib decoder does the same job without it
    import orjson
except ImportError:  # pragma: no cover
    orjson = None

# orjson reads integers beyond 64 bits as floats. After mapping digits to "0" and the characters a number can
# follow (whitespace [ , : -) to "|", "|" + 19 zeros marks text that might hold such an integer (a float's
# fraction follows "." and does not match); that input goes to the stdlib decoder, which keeps them exact.
_NUMBER_MAP = bytes(48 if 48 <= i <= 57 else 124 if chr(i) in " \t\r\n[,:-" else i for i in range(256))
_LONG_INT = b"|" + b"0" * 19


def iter_json_array(fp: IO[str], chunk_size: int = 1 << 16, decode_run: Callable[[str], list] | None = None
                    ) -> Iterator[Any]:
    """Yield the items of a top-level JSON array one at a time without loading the whole file.

    Also accepts a single object or JSON lines, which is what target storage and some tools write.

    Fast path for arrays of objects: the separator between two items (e.g. `},\n{"id":`) is learned from the
    first ones; the buffered items up to the last such separator are decoded in one orjson call (or by
    `decode_run`, given the text of those items in brackets). A separator inside an item makes that call fail
    (an item cut short never parses), so the next candidate or the stdlib decoder takes over: the result is
    always the same, only the speed differs (and items of the slow path come as decoded JSON, not decode_run's).
    """
    decoder = json.JSONDecoder(parse_constant=no_json_constant)
    buf = ""
    pos = 0
    base = 0  # characters of the input before buf[0]
    eof = False
    sep = None  # learned text from the end of one top-level object to the first key of the next
    failures = 0
    fast_ok = orjson is not None

    def fill() -> bool:
        nonlocal buf, pos, base, eof, fast_ok
        if eof:
            return False
        chunk = fp.read(chunk_size)
        if not chunk:
            eof = True
            return False
        if fast_ok:  # every character is checked once, with the end of the previous chunk
            probe = ("|" + buf[-19:] + chunk).encode("utf-8", "surrogatepass").translate(_NUMBER_MAP)
            fast_ok = probe.find(_LONG_INT) < 0
        base += pos
        buf = buf[pos:] + chunk
        pos = 0
        return True

    def skip(chars: str) -> None:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in chars:
                pos += 1
            if pos < len(buf) or not fill():
                return

    def learn(end: int) -> str | None:
        start = end
        while start < len(buf) and buf[start] in " \t\r\n,":
            start += 1
        colon = buf.find(":", start, start + 80)
        if colon < 0 or buf[start] != "{" or buf.count(",", end, start) != 1:
            return None
        return buf[end - 1:colon + 1]

    def fast() -> list | None:
        nonlocal pos, failures
        k = buf.rfind(sep, pos)
        if k < 0 and fill():  # at most part of one more item is buffered: read on
            k = buf.rfind(sep, pos) if fast_ok else -1
        for _ in range(3):
            if k < 0:
                return None
            try:
                items = (decode_run or orjson.loads)("[" + buf[pos:k + 1] + "]")
            except ValueError:  # the candidate was inside an item (or the JSON is invalid: the slow path says so)
                k = buf.rfind(sep, pos, k)
                continue
            pos = k + 1
            return items
        failures += 1
        return None

    skip(" \t\r\n")
    if pos >= len(buf):
        return
    in_array = buf[pos] == "["
    if in_array:
        pos += 1
    while True:
        skip(" \t\r\n," if in_array else " \t\r\n")
        if pos >= len(buf):
            if in_array:
                raise LabError("truncated JSON: the array is not closed")
            return
        if in_array and buf[pos] == "]":
            pos += 1
            skip(" \t\r\n")
            if pos < len(buf):
                raise LabError(f"text after the JSON array at character {base + pos}: {buf[pos:pos + 20]!r}")
            return
        if sep is not None and fast_ok and buf[pos] == "{" and failures < 32:
            items = fast()
            if items:
                yield from items
                continue
        while True:
            try:
                item, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as exc:
                if fill():
                    continue
                raise LabError(f"invalid JSON near character {base + exc.pos}: {exc.msg}") from None
            # a number at the end of a buffer could continue in the next chunk
            if end == len(buf) and not eof and not isinstance(item, (dict, list, str)):
                if fill():
                    continue
            break
        pos = end
        if in_array and sep is None and orjson is not None and isinstance(item, dict):
            sep = learn(end)
        yield item
