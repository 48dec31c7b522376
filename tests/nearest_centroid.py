"""A model plugged into the loop through the interface alone (`--model-class nearest_centroid:NearestCentroid`):
nearest class mean on 4x4 pixels. Used by tests/test_active.py."""
from __future__ import annotations

import numpy as np

from datalabel import active


class NearestCentroid(active.Classifier):
    kind = "test-nearest-centroid/1"
    feature_key = "pixels4"

    def __init__(self, centroids=None, classes=None):
        self.centroids = centroids
        self.classes = list(classes or [])

    def featurize(self, image: bytes):
        return active.pixels(image, 4)

    def fit(self, features, labels):
        x, y = np.asarray(features), np.asarray(labels)
        self.classes = sorted(set(labels))
        self.centroids = np.vstack([x[y == c].mean(axis=0) for c in self.classes])

    def predict_proba(self, features):
        d = ((np.asarray(features)[:, None, :] - self.centroids[None]) ** 2).sum(axis=2)
        w = np.exp(-d)
        return w / w.sum(axis=1, keepdims=True)

    def to_data(self):
        return {"centroids": self.centroids.tolist(), "classes": self.classes}

    @classmethod
    def from_data(cls, data):
        centroids = np.asarray(data["centroids"], dtype=float)
        if centroids.ndim != 2 or centroids.shape != (len(data["classes"]), 16):
            raise ValueError("the numbers do not fit together")
        return cls(centroids, [str(c) for c in data["classes"]])
