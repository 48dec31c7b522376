"""The model interface: what the loop needs of a model, and the pixel model as its default implementation.

A model is an image classifier the loop trains, saves, loads and asks for class probabilities; the ML backend and
`al train` / `al preannotate` know nothing else of it. To plug in a better one (for real photos), subclass
`Classifier` in your own module and pass `--model-class package.module:Class` (or DATALABEL_MODEL_CLASS) to
`al train`, `al preannotate` and `al serve`:

    kind                  a format name written into each saved file and checked when one is read
    feature_key           names what `featurize` computes (features are cached by image and this key)
    featurize(image)      image bytes -> one row of floats (1-D numpy array)
    fit(features, labels) learn from rows and their class names (at least two classes)
    classes               the class names, in the column order of predict_proba
    predict_proba(rows)   (n, len(classes)) probabilities
    to_data() / from_data(data)   everything needed to predict, as JSON data; from_data raises ValueError on
                          anything that does not fit. A file is never a pickle: reading one runs no code.
"""
from __future__ import annotations

import importlib
from typing import Sequence

from ..errors import ConfigError, LabError
from .images import PIXELS, pixels


class Classifier:
    """The interface (subclass it); `LogisticPixels` below is the default."""

    kind: str = ""
    classes: list[str]

    @property
    def feature_key(self) -> str:
        return self.kind

    def featurize(self, image: bytes):
        raise NotImplementedError

    def fit(self, features, labels: Sequence[str]) -> None:
        raise NotImplementedError

    def predict_proba(self, features):
        raise NotImplementedError

    def to_data(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_data(cls, data: dict) -> "Classifier":
        raise NotImplementedError


def make_estimator(seed: int = 0):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000, C=10.0, random_state=seed)


def fit(features, labels: Sequence[str], seed: int = 0):
    """A fitted scikit-learn logistic regression; at least two classes are needed."""
    import numpy as np

    classes = sorted(set(labels), key=lambda x: (len(x), x))
    if len(classes) < 2:
        raise LabError(f"need labels of at least 2 classes to train (have {len(labels)} label(s) of "
                       f"{len(classes)} class(es)); label a few more tasks")
    est = make_estimator(seed)
    est.fit(np.asarray(features), np.asarray(labels))
    return est


class LogisticPixels(Classifier):
    """Logistic regression on downscaled grayscale pixels: trains in well under a second on a CPU. Fit for the
    8x8 digits of the demo; real photos want a model of their own (see the module's doc)."""

    kind = "datalabel-logreg/1"

    def __init__(self, size: int = PIXELS, seed: int = 0, estimator=None):
        self.size = size
        self.seed = seed
        self.estimator = estimator
        self.classes = [str(c) for c in estimator.classes_] if estimator is not None else []

    @property
    def feature_key(self) -> str:
        return f"pixels{self.size}"

    def featurize(self, image: bytes):
        return pixels(image, self.size)

    def fit(self, features, labels: Sequence[str]) -> None:
        self.estimator = fit(features, labels, self.seed)
        self.classes = [str(c) for c in self.estimator.classes_]

    def predict_proba(self, features):
        return self.estimator.predict_proba(features)

    def to_data(self) -> dict:
        est = self.estimator
        return {"size": self.size, "coef": est.coef_.tolist(), "intercept": est.intercept_.tolist(),
                "classes": [str(c) for c in est.classes_], "C": est.C, "max_iter": est.max_iter}

    @classmethod
    def from_data(cls, data: dict) -> "LogisticPixels":
        import numpy as np

        try:
            size = int(data["size"])
            coef = np.asarray(data["coef"], dtype=float)
            intercept = np.asarray(data["intercept"], dtype=float)
            classes = np.asarray([str(c) for c in data["classes"]])
            c_value, max_iter = float(data.get("C", 10.0)), int(data.get("max_iter", 2000))
        except (KeyError, TypeError, ValueError):
            raise ValueError("fields missing or of the wrong type") from None
        rows = 1 if len(classes) == 2 else len(classes)
        if not 1 <= size <= 64 or len(classes) < 2 or coef.shape != (rows, size * size) \
                or intercept.shape != (rows,) or not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
            raise ValueError("the numbers do not fit together")
        est = make_estimator()
        est.set_params(C=c_value, max_iter=max_iter)
        est.coef_, est.intercept_, est.classes_ = coef, intercept, classes
        est.n_features_in_ = size * size
        est.n_iter_ = np.zeros(1, dtype=int)
        return cls(size, estimator=est)


DEFAULT_CLASS = LogisticPixels


def classifier_class(spec: str | type | None) -> type:
    """The model class named by `package.module:Class` (None: the default). ConfigError if it is not one."""
    if spec is None or spec == "":
        return DEFAULT_CLASS
    if isinstance(spec, type):
        cls = spec
    else:
        module_name, _, attr = str(spec).partition(":")
        if not module_name or not attr:
            raise ConfigError(f"--model-class {spec!r}: expected package.module:Class")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"--model-class {spec!r}: cannot import it ({type(exc).__name__})") from None
    if not (isinstance(cls, type) and issubclass(cls, Classifier) and cls.kind):
        raise ConfigError(f"--model-class {spec!r}: not a datalabel.active.Classifier with a `kind`")
    return cls
