"""The task model built two ways: from JSON bytes in C (decode_tasks) and from decoded dicts (Task.from_json).
Pure logic on synthetic Label Studio JSON; the servers' JSON goes through both in test_export / test_active."""
from __future__ import annotations

import io
import json

import pytest

from datalabel.tasks import Task, decode_tasks, iter_tasks


def region(label, score=None, **extra):
    out = {"id": f"r-{label}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
           "original_width": 640, "original_height": 480,
           "value": {"x": 1.5, "y": 2, "width": 10, "height": 20, "rotation": 0, "rectanglelabels": [label]}}
    if score is not None:
        out.update(score=score, scores={label: score, "other": 1 - score})
    return {**out, **extra}


USUAL = [
    {"id": 1, "data": {"image": "gs://b/1.png"}, "meta": {"k": 1}, "project": 3,
     "annotations": [{"id": 10, "completed_by": 7, "result": [region("car")], "was_cancelled": False,
                      "ground_truth": True, "created_at": "2026-11-01T00:00:00Z"}],  # no updated_at
     "predictions": [{"id": 5, "model_version": "v1", "score": 0.5, "result": [region("car", 0.9)]},
                     {"model_version": 3, "result": []}]},
    {"id": 2, "data": {"image": "gs://b/2.png"},
     "annotations": [{"id": 11, "completed_by": {"id": 4, "email": "a@example.org"}, "result": [],
                      "created_at": "2026-11-01T00:00:00Z", "updated_at": "2026-11-02T00:00:00Z"},
                     {"id": 12, "completed_by": None, "result": [region("dog", original_width=640.0)],
                      "was_cancelled": True}]},
    {"id": 2 ** 70, "data": {}, "annotations": []},  # beyond 64 bits: exact both ways
]


def test_tasks_built_from_bytes_equal_tasks_built_from_dicts():
    from_bytes = decode_tasks(json.dumps(USUAL).encode())
    assert from_bytes == [Task.from_json(t) for t in USUAL]
    first = from_bytes[0]
    assert first.annotations[0].completed_by == "7" and first.annotations[0].updated_at == "2026-11-01T00:00:00Z"
    assert [p.model_version for p in first.predictions] == ["v1", "3"]
    assert from_bytes[1].annotations[0].completed_by == "a@example.org"
    assert from_bytes[1].annotations[1].completed_by == "" and from_bytes[2].id == 2 ** 70
    assert from_bytes[2].annotations is not from_bytes[1].predictions  # no shared defaults


def test_other_shapes_take_the_lenient_path_to_the_same_tasks():
    odd = [
        {"id": 1, "data": {"image": "x"}, "annotations": None, "meta": None},  # nulls where lists belong
        {"id": 2, "data": {"image": "y"}, "annotations": [{"id": 3, "result": None, "created_at": None}]},
        # target storage's older layout: an annotation with its task nested
        {"id": 9, "result": [region("car")], "completed_by": 1, "task": {"id": 4, "data": {"image": "z"}}},
    ]
    assert decode_tasks(json.dumps(odd)) == [Task.from_json(t) for t in odd]
    assert [t.id for t in decode_tasks(json.dumps(odd))] == [1, 2, 4]


def test_the_streaming_reader_gives_the_same_tasks(monkeypatch):
    from datalabel import tasks

    built = []
    monkeypatch.setattr(tasks, "decode_tasks", lambda text: built.append(1) or decode_tasks(text))
    usual = USUAL[:2] * 300  # several buffers of the reader; ids within 64 bits keep it on the fast path
    assert list(iter_tasks(io.StringIO(json.dumps(usual, indent=1)))) == [Task.from_json(t) for t in usual]
    assert len(built) > 3  # most tasks came from bytes-to-Struct decoding, a few buffers at a time
    # an id beyond 64 bits sends the reader to its exact path: still the same tasks
    assert list(iter_tasks(io.StringIO(json.dumps(USUAL * 50)))) == [Task.from_json(t) for t in USUAL * 50]


def test_prediction_list_decodes_into_the_task_model_and_refuses_what_is_not_one():
    from datalabel import ls
    from datalabel.errors import ServerError

    body = json.dumps([{"id": 7, "task": 3, "model_version": 2, "score": 0.5, "created_ago": "now", "cluster": None,
                        "result": [{"type": "choices", "from_name": "c", "to_name": "i", "origin": "prediction",
                                    "value": {"choices": ["cat"]}}]}]).encode()
    (pred,) = ls.decode_predictions(body)
    assert (pred.task, pred.id, pred.model_version, pred.score, pred.result[0].labels) == (3, 7, "2", 0.5, ["cat"])
    for bad in (b"<html>", b'{"detail": "x"}', b'[{"result": 5}]'):
        with pytest.raises(ServerError, match="not one"):
            ls.decode_predictions(bad)
