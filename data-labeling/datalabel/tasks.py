"""The one model of Label Studio's task / annotation / prediction JSON.

Export, snapshot and active learning all read Label Studio data through this module, whatever its origin:
an API export (a JSON array of tasks), a JSON file that target storage wrote to the bucket (one task, or one
annotation with its task nested, depending on the server's settings), or JSON lines.

Streaming matters: exports of large projects do not fit in memory, so `iter_tasks` decodes one task at a time.
The array is read in runs of whole tasks by `jsonarray.iter_json_array`.

The classes are msgspec Structs: `decode_tasks` builds them straight from JSON bytes in C (2-3x quicker than
decoding to dicts and then building objects in Python), for input of the usual shape; anything else (a null
where a list belongs, the older annotation-with-nested-task layout, ...) goes through the `from_json`
classmethods, which take any dict Label Studio writes. Both give the same objects for the same input.
"""
from __future__ import annotations

import json
from typing import IO, Any, Iterable, Iterator

import msgspec

from .errors import ConfigError, LabError
from .jsonarray import iter_json_array


# Result types whose `value` carries class names, and the key they use.
LABEL_KEYS = {**{k: k for k in ("choices", "labels", "rectanglelabels", "polygonlabels", "keypointlabels",
                                  "brushlabels", "ellipselabels", "taxonomy")}, "videorectangle": "labels"}

POLICIES = ("latest", "ground-truth", "majority")


# gc=False: instances are not tracked by the cyclic collector (they hold no references back to each other): cheaper
class Region(msgspec.Struct, gc=False):
    """One item of an annotation's or prediction's `result` list."""

    type: str
    value: dict
    from_name: str = ""
    to_name: str = ""
    id: str | None = None
    original_width: int | float | None = None
    original_height: int | float | None = None
    score: int | float | None = None
    scores: dict | None = None  # per-class probabilities a model attached (active learning's margin/entropy)
    # the region this one belongs to (a keypoint drawn on a rectangle: one pose instance)
    parent_id: str | None = msgspec.field(default=None, name="parentID")

    @property
    def labels(self) -> list[str]:
        key = LABEL_KEYS.get(self.type)
        found = self.value.get(key, []) if key else []
        # taxonomy values are paths (lists); keep the leaf
        return [v[-1] if isinstance(v, list) else v for v in found]

    @classmethod
    def from_json(cls, obj: dict) -> "Region":
        if not isinstance(obj, dict):
            raise LabError(f"a region of an annotation's result is {type(obj).__name__}, not an object")
        get = obj.get  # positional and one bound method: this runs once per region of large exports
        scores = get("scores")
        parent = get("parentID")
        return cls(get("type", ""), get("value") or {}, get("from_name", ""), get("to_name", ""), get("id"),
                   get("original_width"), get("original_height"), get("score"),
                   scores if isinstance(scores, dict) else None, parent if isinstance(parent, str) else None)

    def to_json(self) -> dict:
        out = {"type": self.type, "value": self.value, "from_name": self.from_name, "to_name": self.to_name}
        for key in ("id", "original_width", "original_height", "score", "scores"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.parent_id is not None:
            out["parentID"] = self.parent_id
        return out


def _user(completed_by: Any) -> str:
    """Label Studio writes `completed_by` as an id, an object with email, or nothing."""
    if type(completed_by) is int:  # the common case first
        return str(completed_by)
    if isinstance(completed_by, dict):
        return str(completed_by.get("email") or completed_by.get("id") or "")
    return "" if completed_by is None else str(completed_by)


class Annotation(msgspec.Struct, gc=False):
    id: int | None
    result: list[Region]
    completed_by: str | int | dict | None = ""  # always a str once built (see __post_init__)
    was_cancelled: bool = False
    ground_truth: bool = False
    created_at: str = ""
    updated_at: str = ""
    lead_time: float | int | None = None  # seconds spent; this, `history` (Enterprise), `annotator`: for JSON-MIN/CSV
    history: list | None = None
    # who, as Label Studio's JSON-MIN names them: the user's id, an expanded user's email (set when built, never read)
    annotator: int | str | None = msgspec.field(default=None, name="~datalabel-annotator~")

    def __post_init__(self) -> None:
        by = self.completed_by
        self.annotator = by.get("email") if isinstance(by, dict) else by or None
        if type(by) is not str:  # an id (the common case: no call) or an object with email
            self.completed_by = str(by) if type(by) is int else _user(by)
        if not self.updated_at:
            self.updated_at = self.created_at

    @property
    def labels(self) -> list[str]:
        return [label for region in self.result for label in region.labels]

    @classmethod
    def from_json(cls, obj: dict) -> "Annotation":
        get = obj.get
        region = Region.from_json
        created, lead, history = get("created_at") or "", get("lead_time"), get("history")
        return cls(get("id"), [region(r) for r in get("result") or ()], get("completed_by"),
                   bool(get("was_cancelled")), bool(get("ground_truth")), created, get("updated_at") or created,
                   lead if type(lead) in (int, float) else None, history if isinstance(history, list) else None)


class Prediction(msgspec.Struct, gc=False):
    result: list[Region]
    model_version: str | int | float | None = ""  # always a str once built
    score: int | float | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        if type(self.model_version) is not str:
            self.model_version = str(self.model_version or "")

    @classmethod
    def from_json(cls, obj: dict) -> "Prediction":
        return cls(
            result=[Region.from_json(r) for r in obj.get("result") or []],
            model_version=str(obj.get("model_version") or ""),
            score=obj.get("score"),
            id=obj.get("id"),
        )

    def to_json(self) -> dict:
        out: dict = {"result": [r.to_json() for r in self.result], "model_version": self.model_version}
        if self.score is not None:
            out["score"] = self.score
        return out


class Task(msgspec.Struct, gc=False):
    id: int | None
    data: dict
    annotations: list[Annotation] = []  # msgspec gives each instance its own empty list / dict
    # Label Studio's JSON export lists predictions by id only: those ids are dropped (ls.project_tasks adds the
    # predictions themselves)
    predictions: list[Prediction | int] = []
    meta: dict = {}
    project: int | None = None
    agreement: Any = msgspec.UNSET  # Label Studio Enterprise's, for JSON-MIN and CSV; UNSET where the export has none

    def __post_init__(self) -> None:
        if self.predictions and type(self.predictions[0]) is int:
            self.predictions = [p for p in self.predictions if type(p) is not int]

    @property
    def valid_annotations(self) -> list[Annotation]:
        """Annotations that count: skipped/cancelled ones never do."""
        return [a for a in self.annotations if not a.was_cancelled]

    @property
    def is_labeled(self) -> bool:
        return bool(self.valid_annotations)

    def media_url(self, key: str | None = None) -> str | None:
        """The task's media reference (gs://..., http..., /data/...). `key` is the config's data key."""
        if key:
            return self.data.get(key)
        for name in ("image", "img", "video", "audio", "url"):
            if isinstance(self.data.get(name), str):
                return self.data[name]
        for value in self.data.values():
            if isinstance(value, str) and (value.startswith(("gs://", "s3://", "http://", "https://", "/data/"))):
                return value
        return None

    def pick(self, policy: str = "latest") -> Annotation | None:
        return choose_annotation(self, policy)

    @classmethod
    def from_json(cls, obj: dict) -> "Task":
        """Parse a task, or an annotation with its task nested (older target-storage layout)."""
        if not isinstance(obj, dict):
            raise LabError(f"expected a Label Studio task object, got {type(obj).__name__}")
        if "data" not in obj and isinstance(obj.get("task"), dict):
            task = cls.from_json(obj["task"])
            ann = Annotation.from_json(obj)
            if not any(a.id == ann.id and ann.id is not None for a in task.annotations):
                task.annotations.append(ann)
            return task
        get = obj.get
        tid, data, anns, predictions = get("id"), get("data"), get("annotations") or [], get("predictions")
        if not isinstance(data, dict) or not (tid is None or type(tid) is int) or not isinstance(anns, list) \
                or not all(isinstance(a, dict) and isinstance(a.get("result") or [], list) for a in anns):
            raise LabError(f"not a Label Studio task (id {str(tid)[:20]!r}): 'id' must be a whole number, 'data' an "
                           "object, 'annotations' a list of objects; give Label Studio's JSON export")
        return cls(tid, data, [Annotation.from_json(a) for a in anns],
                   [Prediction.from_json(p) for p in predictions if isinstance(p, dict)] if predictions else [],
                   get("meta") or {}, get("project"), get("agreement", msgspec.UNSET))


def choose_annotation(task: Task, policy: str = "latest") -> Annotation | None:
    """Pick the annotation that stands for a task when several people labeled it.

    - latest: the most recently updated annotation.
    - ground-truth: an annotation marked ground truth if any, else the latest.
    - majority: the annotation whose label set most annotators agree on (ties: latest).
    Skipped / cancelled annotations are never chosen.
    """
    if policy not in POLICIES:
        raise ConfigError(f"unknown annotation policy {policy!r}; choose one of: {', '.join(POLICIES)}")
    anns = task.annotations
    if len(anns) == 1:  # the common case: nothing to choose between, whatever the policy
        return None if anns[0].was_cancelled else anns[0]
    valid = task.valid_annotations
    if len(valid) < 2:
        return valid[0] if valid else None
    by_time = sorted(valid, key=lambda a: (a.updated_at, a.id or 0))
    if policy == "latest":
        return by_time[-1]
    if policy == "ground-truth":
        truth = [a for a in by_time if a.ground_truth]
        return (truth or by_time)[-1]
    if policy == "majority":
        votes: dict[tuple, int] = {}
        for ann in valid:
            key = tuple(sorted(ann.labels))
            votes[key] = votes.get(key, 0) + 1
        best = max(votes.values())
        winners = {key for key, n in votes.items() if n == best}
        return [a for a in by_time if tuple(sorted(a.labels)) in winners][-1]
    raise AssertionError(policy)  # every policy is handled above


_TASK_LIST = msgspec.json.Decoder(list[Task])


def decode_tasks(body: bytes | bytearray | str) -> list[Task]:
    """The tasks of a JSON array: built in C when every task has the usual shape, else through the lenient
    `Task.from_json` (the same objects either way). ValueError if the JSON is invalid."""
    try:
        return _TASK_LIST.decode(body)
    except msgspec.ValidationError:  # valid JSON of another shape (rare): the stdlib keeps every number exact
        return [Task.from_json(obj) for obj in json.loads(body)]


def iter_tasks(source: IO[str] | str | Iterable[dict]) -> Iterator[Task]:
    """Tasks from a file object, a path, or an iterable of already-decoded dicts."""
    if isinstance(source, str):
        with open(source, encoding="utf-8") as fp:
            yield from iter_tasks(fp)
        return
    if not hasattr(source, "read"):
        yield from map(Task.from_json, source)
        return
    for obj in iter_json_array(source, decode_run=decode_tasks):
        yield obj if type(obj) is Task else Task.from_json(obj)


def merge_tasks(tasks: Iterable[Task]) -> list[Task]:
    """Fold several records of the same task (one per annotation file) into one task each."""
    merged: dict[Any, Task] = {}
    for task in tasks:
        key = task.id if task.id is not None else id(task)
        have = merged.get(key)
        if have is None:
            merged[key] = task
            continue
        seen = {a.id for a in have.annotations}
        have.annotations.extend(a for a in task.annotations if a.id not in seen or a.id is None)
    return list(merged.values())
