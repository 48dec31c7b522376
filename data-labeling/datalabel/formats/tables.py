"""JSON-MIN and CSV: one flat record per task, field for field as Label Studio writes them.

Label Studio (label_studio_sdk.converter, which its export runs) builds each record from the task's data, its id,
one key per control that has a result (its values "prettified": a single choice or a single text as a string,
anything else as the list of region values, `original_width`/`original_height` added) and the annotation's
`annotator` (the user's id; an email where the user was expanded), `annotation_id`, `created_at`, `updated_at`,
`lead_time`, and the task's `agreement` where the export has one. CSV has a column for every key of any record
(sorted), lists and objects JSON-encoded as ujson writes them, Python's csv module quoting every non-number
(`QUOTE_NONNUMERIC`), `history` where an annotation has one, and `<name>_transcript` beside a Chat's messages.

Where Label Studio is wrong we are not (README, "Where the output differs"): a data key named like a control is
written as `_data_<key>` in JSON-MIN too (Label Studio overwrites the task's data with the label there, and renames
only in its CSV); an annotator that is no one is null, not the text "None". One record per task (the --policy's
annotation; `--policy all` writes every submitted annotation, newest first, as Label Studio does), and
`file_name` where the export also holds the images.

Both need the whole export before the first byte (the CSV's columns, the data keys to rename), so records are
spooled (pickled: every value keeps its type) to a temporary file and written out at the end: memory stays flat.
"""
from __future__ import annotations

import csv
import json
import os
import pickle
import re
from typing import IO

import msgspec

from ..tasks import Annotation, Task
from .base import Writer, dumps
from .objects import Item

try:  # what Label Studio's CSV writes JSON cells with (it escapes "/" as "\/"); the SDK depends on it
    import ujson

    def _json_cell(value) -> str:
        try:
            return ujson.dumps(value, ensure_ascii=False)
        except OverflowError:  # an integer beyond 64 bits
            return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("/", "\\/")
except ImportError:  # pragma: no cover
    def _json_cell(value) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("/", "\\/")

_CHAT = ("Chat", "chatmessage")
_META = ("annotator", "annotation_id", "created_at", "updated_at", "lead_time")


class Results:
    """An annotation's results grouped by control, as Label Studio's converter groups them: only results of a
    control the config has (a Repeater's `name_{{idx}}` matches `name_0`...), Chat messages, or every result when
    the config has no control at all; each value tagged with its control's tag."""

    def __init__(self, config):
        self.tags = {c.name: c.tag for c in config.controls}
        self.patterns = []  # Label Studio's regex for names with {{variables}}: each becomes ".*", matched at the start
        for name, tag in self.tags.items():
            if "{{" in name:
                self.patterns.append((re.compile(re.sub(r"\{\{[^}]*\}\}", ".*", name)), tag, len(name)))
        self.patterns.sort(key=lambda p: -p[2])

    def tag_of(self, from_name: str) -> str | None:
        tag = self.tags.get(from_name)
        if tag is None:
            for pattern, ptag, _ in self.patterns:
                if pattern.match(from_name):
                    return ptag
        return tag

    def group(self, annotation: Annotation | None) -> dict[str, list[tuple[str, dict]]]:
        out: dict[str, list[tuple[str, dict]]] = {}
        if annotation is None:
            return out
        for region in annotation.result:
            name = region.from_name
            if not name:
                continue
            tag = self.tag_of(name)
            if tag is None:
                if region.type == "chatmessage":
                    tag = "chatmessage"
                elif not self.tags:  # an Interface project (<View></View>): keep every result
                    tag = region.type or "unknown"
                else:
                    continue
            value = {k: v for k, v in region.value.items() if k != "type"}
            if tag != "chatmessage":
                if region.original_width is not None:
                    value["original_width"] = region.original_width
                if region.original_height is not None:
                    value["original_height"] = region.original_height
            out.setdefault(name, []).append((tag, value))
        return out


def prettify(values: list[tuple[str, dict]]):
    """A control's values as Label Studio's JSON-MIN writes them (label_studio_sdk's prettify_result): one result
    with one choice (or one text) as that string, else the list of values (a Chat's as its messages)."""
    out = []
    tag = None
    for tag, value in values:
        choices, text = value.get("choices"), value.get("text")
        if tag == "Choices" and isinstance(choices, list) and len(choices) == 1:
            out.append(choices[0])
        elif tag == "TextArea" and isinstance(text, list) and len(text) == 1:
            out.append(text[0])
        elif tag in _CHAT:
            out.append(value.get("chatmessage", value))
        else:
            out.append(value)
    return out[0] if tag in ("Choices", "TextArea") and len(out) == 1 else out


def chat_transcript(messages) -> str:
    """A Chat's messages as `role: content` lines (Label Studio's CSV column `<name>_transcript`)."""
    lines = []
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        role, content = str(message.get("role", "")), str(message.get("content", ""))
        lines.append((f"{role}: {content}" if content else f"{role}:") if role else content)
    return "\n".join(lines)


class _TableWriter(Writer):
    """Spools one record per item; `finish` writes them once the data keys and control names of the whole export
    are known."""

    class_ids_matter = False
    file = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.results = Results(self.config)
        self.data_keys: dict[str, None] = {}
        self.output_keys: dict[str, None] = {}
        self.spool_path = self.root / f".{self.file}.part"
        self.spool: IO[bytes] = open(self.spool_path, "wb")
        self.pickler = pickle.Pickler(self.spool, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def source_key(cls, config) -> str | None:
        media = ("Image", "Video", "Audio")
        key = config.target_key({c.tag for c in config.controls}, media)
        return key or next((key for tag, key in config.objects.values() if tag in media and key), None)

    def image_dests(self, item: Item) -> list[str]:
        # the table needs no image: copy one only where the config shows one (a Chat or text project has none)
        return super().image_dests(item) if self.media_key else []

    def write(self, item: Item) -> None:
        ann, task = item.annotation, item.task
        groups = self.results.group(ann)
        outputs = [(name, prettify(values), any(tag in _CHAT for tag, _ in values)) for name, values in groups.items()]
        self.data_keys.update(dict.fromkeys(task.data))
        self.output_keys.update(dict.fromkeys(groups))
        self.pickler.dump((task.data, task.id, outputs, self.meta(ann, task), item.placed[0] if item.placed else None))
        self.pickler.clear_memo()
        if ann is not None:
            for label in ann.labels:
                self.class_id(label)
        self.items += 1

    @staticmethod
    def meta(ann: Annotation | None, task: Task) -> dict:
        if ann is None:
            out = dict.fromkeys(_META)
        else:
            out = {"annotator": ann.annotator, "annotation_id": ann.id, "created_at": ann.created_at or None,
                   "updated_at": ann.updated_at or None, "lead_time": ann.lead_time}
            if ann.history:
                out["history"] = ann.history
        if task.agreement is not msgspec.UNSET:  # the export has one (Label Studio Enterprise)
            out["agreement"] = task.agreement
        return out

    def records(self):
        """The spooled records, data keys that clash with a control's name renamed `_data_<key>`."""
        rename = self.rename
        with open(self.spool_path, "rb") as fp:
            unpickler = pickle.Unpickler(fp)
            while True:
                try:
                    data, task_id, outputs, meta, file_name = unpickler.load()
                except EOFError:
                    return
                if rename:
                    data = {rename.get(k, k): v for k, v in data.items()}
                yield data, task_id, outputs, meta, file_name

    def abort(self) -> None:
        if not self.spool.closed:
            self.spool.close()

    def finish(self) -> dict:
        self.spool.close()
        self.rename = {k: f"_data_{k}" for k in self.data_keys if k in self.output_keys}
        try:
            self.write_out()
        finally:
            os.unlink(self.spool_path)
        return {"file": self.file}

    def write_out(self) -> None:
        raise NotImplementedError


class JsonMinWriter(_TableWriter):
    name = "json-min"
    file = "result.json"

    def write_out(self) -> None:
        with open(self.root / self.file, "w", encoding="utf-8") as fp:
            fp.write("[")
            first = True
            for data, task_id, outputs, meta, file_name in self.records():
                record = dict(data)
                if task_id is not None:
                    record["id"] = task_id
                for name, value, _ in outputs:
                    record[name] = value
                meta.pop("history", None)  # only Label Studio's CSV carries it
                record.update(meta)
                if file_name is not None:
                    record["file_name"] = file_name
                fp.write(("\n" if first else ",\n") + dumps(record))
                first = False
            fp.write("\n]\n")


class CsvWriter(_TableWriter):
    name = "csv"
    file = "result.csv"
    delimiter = ","

    def write_out(self) -> None:
        columns = dict.fromkeys(_META)
        for record in map(self.row, self.records()):  # a first pass names every column
            columns.update(dict.fromkeys(record))
        with open(self.root / self.file, "w", encoding="utf-8", newline="") as fp:
            out = csv.DictWriter(fp, fieldnames=sorted(columns), quoting=csv.QUOTE_NONNUMERIC, delimiter=self.delimiter)
            out.writeheader()
            for record in map(self.row, self.records()):
                out.writerow(record)

    @staticmethod
    def row(rec) -> dict:
        """One CSV row as Label Studio's csv2.prepare_annotation makes it (the same keys overwrite the same way)."""
        data, task_id, outputs, meta, file_name = rec
        row: dict = {}
        if task_id is not None:
            row["id"] = task_id
        for name, value, chat in outputs:
            row[name] = value if isinstance(value, str) else _json_cell(value)
            if chat:
                row[f"{name}_transcript"] = chat_transcript(value)
        for key, value in data.items():
            row[key] = _json_cell(value) if isinstance(value, (dict, list)) else value
        annotator = meta["annotator"]
        row["annotator"] = annotator if annotator is None or isinstance(annotator, str) else str(annotator)
        for key in _META[1:]:
            row[key] = meta[key]
        if "agreement" in meta:
            row["agreement"] = meta["agreement"]
        if meta.get("history"):
            row["history"] = _json_cell(meta["history"])
        if file_name is not None:
            row["file_name"] = file_name
        return row


class TsvWriter(CsvWriter):
    """Label Studio's TSV: its CSV with tabs between the cells."""

    name = "tsv"
    file = "result.tsv"
    delimiter = "\t"
